// The console's own script (the CSP allows no inline script): CSRF header for htmx requests,
// readable messages when an htmx request fails, confirmation of destructive forms, and charts.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the page's CSRF token, as forms carry it in a hidden field.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  function showRequestError(text) {
    var box = document.getElementById("request-error");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
  }

  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("request-error");
    var status = event.detail.xhr ? event.detail.xhr.status : "?";
    if (box) { showRequestError((box.dataset.message || "").replace("{status}", status)); }
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("request-error");
    if (box) { showRequestError(box.dataset.offline || ""); }
  });

  // <form data-confirm="Question?">: asks before submitting.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);

  // <canvas data-chart="ID"> with <script type="application/json" id="ID">{Chart.js config}</script>:
  // drawn when the page declares /static/vendor/chart.umd.min.js (block `scripts`).
  function drawCharts(root) {
    if (!window.Chart || !root.querySelectorAll) { return; }
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.chartDrawn) { return; }
      var source = document.getElementById(canvas.dataset.chart);
      if (!source) { return; }
      try {
        new window.Chart(canvas, JSON.parse(source.textContent));
        canvas.dataset.chartDrawn = "true";
      } catch (error) {
        console.error("chart " + canvas.dataset.chart + " could not be drawn", error);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:load", function (event) { drawCharts(event.detail.elt); });
})();
