// Live results: poll the results feed every second and update the bars, numbers and the poll's
// state (open or closed) in place.
(function () {
  "use strict";
  var root = document.querySelector("[data-results-url]");
  if (!root) {
    return;
  }
  var url = root.getAttribute("data-results-url");
  var status = root.querySelector(".live-status");
  var INTERVAL_MS = 1000;

  function percent(share) {
    return Math.round(share * 1000) / 10;
  }

  function render(data) {
    var closed = data.state === "closed";
    root.querySelector(".state-closed").hidden = !closed;
    root.querySelector(".state-open").hidden = closed;
    root.querySelector(".total-count").textContent = String(data.total);
    data.options.forEach(function (option) {
      var row = root.querySelector('[data-key="' + CSS.escape(option.key) + '"]');
      if (!row) {
        return;
      }
      var value = percent(option.share);
      row.querySelector(".count").textContent = String(option.count);
      row.querySelector(".share").textContent = String(value);
      var bar = row.querySelector("progress");
      bar.value = value;
      bar.textContent = value + "%";
    });
  }

  function setStatus(text) {
    if (status.textContent !== text) {
      status.textContent = text;
    }
  }

  function poll() {
    if (document.hidden) {
      // No point refreshing a page nobody looks at; resume when it is visible again.
      window.setTimeout(poll, INTERVAL_MS);
      return;
    }
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        render(data);
        setStatus("Updated live every second.");
      })
      .catch(function () {
        setStatus("Live updates paused; retrying…");
      })
      .finally(function () {
        window.setTimeout(poll, INTERVAL_MS);
      });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
