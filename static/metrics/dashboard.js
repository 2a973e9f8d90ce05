/*
 * Draws a Chart.js chart for every <canvas data-stream> on the page and keeps it live
 * through StreamClient. The server-rendered payload shows at once; the subscribe snapshot
 * and later updates replace it.
 */
(function () {
  "use strict";

  const statusLabels = { connecting: "connecting", connected: "connected", reconnecting: "reconnecting" };

  function drawChart(canvas, payload) {
    return new Chart(canvas, {
      type: canvas.dataset.chartType || "bar",
      data: {
        labels: payload.labels,
        datasets: [{ label: payload.series + (payload.unit ? " (" + payload.unit + ")" : ""), data: payload.values, borderWidth: 2 }],
      },
      options: { animation: { duration: 200 }, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } },
    });
  }

  function redraw(chart, canvas, payload, version) {
    chart.data.labels = payload.labels;
    chart.data.datasets[0].data = payload.values;
    chart.data.datasets[0].label = payload.series + (payload.unit ? " (" + payload.unit + ")" : "");
    chart.update();
    canvas.dataset.version = String(version);
    const card = canvas.closest("[data-card]");
    const meta = card && card.querySelector("[data-aggregation]");
    if (meta) meta.textContent = payload.aggregation + (payload.unit ? " · " + payload.unit : "");
  }

  function start() {
    const indicator = document.getElementById("connection-status");
    const client = new StreamClient(null, {
      onStatus: function (status) {
        if (!indicator) return;
        indicator.textContent = statusLabels[status] || status;
        indicator.dataset.status = status;
      },
    });
    window.streamClient = client;
    document.querySelectorAll("canvas[data-stream]").forEach(function (canvas) {
      const initial = JSON.parse(document.getElementById(canvas.dataset.payloadId).textContent);
      const chart = drawChart(canvas, initial);
      const params = { series: canvas.dataset.series, week: canvas.dataset.week };
      client.subscribe(canvas.dataset.stream, params, {
        onUpdate: function (payload, version) { redraw(chart, canvas, payload, version); },
        onGone: function () {
          const card = canvas.closest("[data-card]");
          if (card) card.classList.add("gone");
          const notice = card && card.querySelector("[data-gone]");
          if (notice) notice.hidden = false;
        },
        onError: function (status, errors) {
          const card = canvas.closest("[data-card]");
          const notice = card && card.querySelector("[data-error]");
          if (notice) { notice.hidden = false; notice.textContent = "Live updates refused (" + status + "): " + JSON.stringify(errors); }
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
