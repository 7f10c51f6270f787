// Live refresh: rewrite the stat cells of every [data-destination] row every 2 s, and
// the depth chart every 5 s. Without JavaScript the page shows numbers as of its load.
(function () {
  var refreshed = 0;
  function refreshStats() {
    if (!document.querySelector("[data-destination]")) return;
    fetch("/api/stats", {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).then(function (data) {
      data.destinations.forEach(function (d) {
        document.querySelectorAll('[data-destination="' + d.index + '"]').forEach(function (row) {
          Object.keys(d.cells).forEach(function (name) {
            var cell = row.querySelector('[data-stat="' + name + '"]');
            if (cell) cell.textContent = d.cells[name];
          });
          var error = row.querySelector("td.error");
          if (error) error.textContent = d.error || "";
        });
      });
      refreshed += 1;
      document.body.dataset.refreshed = String(refreshed);
    }).catch(function () {});
  }
  function refreshChart() {
    var box = document.getElementById("chart-container");
    if (!box) return;
    fetch(box.dataset.chartUrl, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }).then(function (html) { box.innerHTML = html; }).catch(function () {});
  }
  setInterval(refreshStats, 2000);
  setInterval(refreshChart, 5000);
})();
