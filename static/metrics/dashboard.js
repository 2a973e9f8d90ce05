/*
 * Draws a Chart.js chart for every <canvas data-stream> on the page and keeps it live
 * through StreamClient. The server-rendered payload shows at once; the subscribe snapshot
 * and later updates replace it. Each card says when its data last changed (by this
 * browser's clock) and briefly highlights the points that just changed.
 */
(function () {
  "use strict";

  const statusLabels = { connecting: "connecting", connected: "connected", reconnecting: "reconnecting" };
  const reasonLabels = {
    closed: "the connection closed",
    stale: "no heartbeat from the server",
    timeout: "the server did not answer",
    suspended: "the page was in the back/forward cache",
  };
  const weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  // How long a changed point stays highlighted, in ms.
  const FRESH_MS = 2000;
  const COLOR = "rgb(54, 162, 235)";
  const FILL = "rgba(54, 162, 235, 0.5)";
  const HIGHLIGHT = "rgb(245, 158, 11)";
  const liveCharts = [];

  function chartType(payload) {
    return payload.aggregation === "sum" ? "bar" : "line";
  }

  function datasetLabel(payload) {
    return payload.series + (payload.unit ? " (" + payload.unit + ")" : "");
  }

  // Labels stay ISO dates (the payload's own); the axis shows them as "Mon 23".
  function dayTick(value) {
    const label = this.getLabelForValue(value);
    return weekdays[value] ? weekdays[value] + " " + Number(String(label).slice(8, 10)) : label;
  }

  // "updated 3 s ago": how long ago, by this browser's clock, the data last changed.
  function ago(ms) {
    const seconds = Math.floor(ms / 1000);
    if (seconds < 1) return "updated just now";
    if (seconds < 60) return "updated " + seconds + " s ago";
    if (seconds < 3600) return "updated " + Math.floor(seconds / 60) + " min ago";
    return "updated " + Math.floor(seconds / 3600) + " h ago";
  }

  function drawChart(canvas, payload, isFresh) {
    // Scriptable colors and radii: a point that just changed stands out until it is not fresh.
    const pick = function (fresh, plain) {
      return function (context) { return isFresh(context.dataIndex) ? fresh : plain; };
    };
    return new Chart(canvas, {
      type: chartType(payload),
      data: {
        labels: payload.labels,
        datasets: [{
          label: datasetLabel(payload),
          data: payload.values,
          borderWidth: 2,
          spanGaps: false,
          borderColor: COLOR,
          backgroundColor: pick(HIGHLIGHT, FILL),
          pointBackgroundColor: pick(HIGHLIGHT, FILL),
          pointBorderColor: pick(HIGHLIGHT, COLOR),
          pointRadius: pick(7, 3),
        }],
      },
      options: {
        animation: { duration: 200 },
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { callback: dayTick, maxRotation: 0 } }, y: { beginAtZero: payload.aggregation === "sum" } },
      },
    });
  }

  function card(canvas) {
    return canvas.closest("[data-card]");
  }

  function showNotice(canvas, selector, text) {
    const box = card(canvas);
    const notice = box && box.querySelector(selector);
    if (!notice) return;
    if (text !== undefined) notice.textContent = text;
    notice.hidden = false;
  }

  function LiveChart(canvas, initial) {
    this.canvas = canvas;
    const box = card(canvas);
    this.label = box && box.querySelector("[data-updated]");
    this.changedAt = null;
    this.fresh = new Set();
    this.freshTimer = null;
    this.isFresh = (index) => this.fresh.has(index);
    this.chart = drawChart(canvas, initial, this.isFresh);
  }

  // Returns the indexes whose day or value differ from what the chart shows.
  LiveChart.prototype.changes = function (payload) {
    const data = this.chart.data;
    const values = data.datasets[0].data;
    const changed = [];
    payload.values.forEach(function (value, i) {
      if (value !== values[i] || payload.labels[i] !== data.labels[i]) changed.push(i);
    });
    return changed;
  };

  LiveChart.prototype.markFresh = function (changed) {
    this.changedAt = Date.now();
    this.fresh = new Set(changed);
    this.canvas.dataset.fresh = changed.join(",");
    clearTimeout(this.freshTimer);
    this.freshTimer = setTimeout(() => {
      this.fresh = new Set();
      delete this.canvas.dataset.fresh;
      this.chart.update();
    }, FRESH_MS);
    this.showAge();
  };

  LiveChart.prototype.showAge = function () {
    if (!this.label || this.changedAt === null) return;
    this.label.textContent = ago(Date.now() - this.changedAt);
    this.label.title = "Last change received at " + new Date(this.changedAt).toLocaleTimeString();
    this.label.dataset.changedAt = String(this.changedAt);
  };

  LiveChart.prototype.update = function (payload, version) {
    const changed = this.changes(payload);
    if (changed.length) this.markFresh(changed);
    if (this.chart.config.type !== chartType(payload)) {
      // The series' aggregation changed: a bar chart becomes a line or back.
      this.chart.destroy();
      this.chart = drawChart(this.canvas, payload, this.isFresh);
    } else {
      this.chart.data.labels = payload.labels;
      this.chart.data.datasets[0].data = payload.values;
      this.chart.data.datasets[0].label = datasetLabel(payload);
      this.chart.update();
    }
    this.canvas.dataset.version = String(version);
    const box = card(this.canvas);
    const meta = box && box.querySelector("[data-aggregation]");
    if (meta) meta.textContent = payload.aggregation + (payload.unit ? " · " + payload.unit : "");
  };

  LiveChart.prototype.gone = function () {
    const box = card(this.canvas);
    if (box) box.classList.add("gone");
    showNotice(this.canvas, "[data-gone]");
  };

  function start() {
    const indicator = document.getElementById("connection-status");
    const client = new StreamClient(null, {
      onStatus: function (status, reason, transport) {
        if (!indicator) return;
        indicator.textContent = statusLabels[status] || status;
        indicator.dataset.status = status;
        indicator.dataset.reason = reason || "";
        indicator.dataset.transport = transport || "";
        const over = transport === "sse" ? " over Server-Sent Events" : "";
        indicator.title = reason ? "Live updates: " + status + over + " (" + (reasonLabels[reason] || reason) + ")" : "Live updates: " + status + over;
      },
    });
    window.streamClient = client;
    document.querySelectorAll("canvas[data-stream]").forEach(function (canvas) {
      const initial = JSON.parse(document.getElementById(canvas.dataset.payloadId).textContent);
      const live = new LiveChart(canvas, initial);
      liveCharts.push(live);
      const params = { series: canvas.dataset.series, week: canvas.dataset.week };
      client.subscribe(canvas.dataset.stream, params, {
        onUpdate: function (payload, version) { live.update(payload, version); },
        onGone: function () { live.gone(); },
        onRevoked: function () {
          showNotice(canvas, "[data-error]", "Live updates stopped: you may no longer see this series.");
        },
        onError: function (status, errors) {
          // The page was rendered from this series: a 404 now means it was deleted since.
          if (status === 404) { live.gone(); return; }
          showNotice(canvas, "[data-error]", "Live updates refused (" + status + "): " + (errors || []).map(function (e) { return typeof e === "string" ? e : JSON.stringify(e); }).join(" "));
        },
      });
    });
    // One timer keeps every "updated … ago" current.
    setInterval(function () { liveCharts.forEach(function (live) { live.showAge(); }); }, 1000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
