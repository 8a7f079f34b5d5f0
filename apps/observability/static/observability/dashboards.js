// Draws the dashboard's charts from the data the server rendered (json_script), with the
// vendored Chart.js (static/observability/vendor). No request leaves the page.
(function () {
  "use strict";
  var source = document.getElementById("series-data");
  if (!source || typeof Chart === "undefined") { return; }
  var series = JSON.parse(source.textContent);
  function label(t) { return String(t).replace("T", " ").slice(0, 16); }
  function line(canvas, labels, datasets, yTitle) {
    return new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, spanGaps: true,
        scales: { y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var kind = canvas.dataset.chart;
    if (kind === "rates") {
      line(canvas, series.map(function (r) { return label(r.t); }), [
        { label: "per intent (with retries)", data: series.map(function (r) { return r.intent_rate; }) },
        { label: "first attempt", data: series.map(function (r) { return r.first_attempt_rate; }) },
        { label: "per attempt", data: series.map(function (r) { return r.attempt_rate; }) }
      ], "%");
    } else if (kind === "attempts") {
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: series.map(function (r) { return label(r.t); }),
          datasets: [
            { label: "approved", data: series.map(function (r) { return r.approved || 0; }) },
            { label: "not approved", data: series.map(function (r) { return (r.attempts || 0) - (r.approved || 0); }) }
          ]
        },
        options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
      });
    } else if (kind === "finance-volume" || kind === "finance-balance") {
      var key = kind === "finance-volume" ? "volume" : "merchant_balance";
      var labels = Array.from(new Set(series.map(function (r) { return label(r.t); })));
      var currencies = Array.from(new Set(series.map(function (r) { return r.currency; })));
      line(canvas, labels, currencies.map(function (c) {
        var byLabel = {};
        // minor units to the currency's major unit (exponent from the server: JPY 0, KWD 3)
        series.filter(function (r) { return r.currency === c; }).forEach(function (r) {
          byLabel[label(r.t)] = r[key] === null ? null : Number(r[key]) / Math.pow(10, r.exponent);
        });
        return { label: c.toUpperCase(), data: labels.map(function (l) { return byLabel[l] === undefined ? null : byLabel[l]; }) };
      }));
    }
    canvas.dataset.drawn = "true";
  });
})();
