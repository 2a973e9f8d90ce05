/*
 * Draws a Chart.js chart for every <canvas data-stream> on the page and keeps it live
 * through StreamClient. The server-rendered payload shows at once; the subscribe snapshot
 * and later updates replace it.
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

  function drawChart(canvas, payload) {
    return new Chart(canvas, {
      type: chartType(payload),
      data: {
        labels: payload.labels,
        datasets: [{ label: datasetLabel(payload), data: payload.values, borderWidth: 2, spanGaps: false }],
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
    this.chart = drawChart(canvas, initial);
  }

  LiveChart.prototype.update = function (payload, version) {
    if (this.chart.config.type !== chartType(payload)) {
      // The series' aggregation changed: a bar chart becomes a line or back.
      this.chart.destroy();
      this.chart = drawChart(this.canvas, payload);
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
      onStatus: function (status, reason) {
        if (!indicator) return;
        indicator.textContent = statusLabels[status] || status;
        indicator.dataset.status = status;
        indicator.dataset.reason = reason || "";
        indicator.title = reason ? "Live updates: " + status + " (" + (reasonLabels[reason] || reason) + ")" : "Live updates: " + status;
      },
    });
    window.streamClient = client;
    document.querySelectorAll("canvas[data-stream]").forEach(function (canvas) {
      const initial = JSON.parse(document.getElementById(canvas.dataset.payloadId).textContent);
      const live = new LiveChart(canvas, initial);
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
  }

  document.addEventListener("DOMContentLoaded", start);
})();
