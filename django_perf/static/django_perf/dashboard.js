/* django-perf dashboard: keep the page fresh by polling its JSON endpoint.
 *
 * The endpoint returns the page's fragments already rendered (cards, charts as
 * SVG, tables) under "html", keyed by name; each replaces the element whose id
 * is "perf-<name>". No library, no network but the page's own endpoint.
 */
(function () {
  "use strict";

  // Times as the page first shows them (the server's H:i:s in its TIME_ZONE), not in the
  // browser's own zone and locale.
  function timeFormat(zone) {
    var options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    try {
      var zoned = Object.assign({ timeZone: zone || undefined }, options);
      return new Intl.DateTimeFormat("en-GB", zoned);
    } catch (e) {  // a zone this browser does not know
      return new Intl.DateTimeFormat("en-GB", options);
    }
  }

  function start() {
    var root = document.querySelector(".perf[data-poll-url]");
    if (!root) return;
    var url = root.getAttribute("data-poll-url");
    var every = Math.max(2, parseInt(root.getAttribute("data-refresh"), 10) || 10) * 1000;
    var patience = every - 1000;
    var clock = timeFormat(root.getAttribute("data-time-zone"));
    var toggle = document.getElementById("perf-auto");
    var status = document.getElementById("perf-status");
    var timer = null;
    var busy = false;
    var stored = null;
    try { stored = window.localStorage.getItem("django-perf-auto-refresh"); } catch (e) {}
    if (toggle && stored === "off") toggle.checked = false;

    function say(text, failed) {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("perf-failed", !!failed);
    }

    // A poll with no answer a second before the next is due is given up and reported, so
    // that a stalled request cannot stop the refreshing for good: the next tick tries again.
    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      var controller = new AbortController();
      var deadline = window.setTimeout(function () { controller.abort(); }, patience);
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" },
                   signal: controller.signal })
        .then(function (response) {
          var type = response.headers.get("Content-Type") || "";
          if (type.indexOf("application/json") === -1) {
            throw new Error(response.redirected ? "signed out; reload the page to sign in"
                                                : "HTTP " + response.status);
          }
          return response.json().then(function (data) {
            if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
            return data;
          });
        })
        .then(function (data) {
          Object.keys(data.html || {}).forEach(function (name) {
            var element = document.getElementById("perf-" + name);
            if (element) element.innerHTML = data.html[name];
          });
          root.setAttribute("data-refreshed", String(data.generated_at));
          say("Read from the " + data.store + " store at " +
              clock.format(new Date(data.generated_at * 1000)), false);
        })
        .catch(function (error) {
          say("Refresh failed: " + (controller.signal.aborted
            ? "no answer in " + patience / 1000 + " s" : error.message), true);
        })
        .then(function () {
          window.clearTimeout(deadline);
          busy = false;
        });
    }

    function schedule() {
      if (timer) window.clearInterval(timer);
      timer = null;
      if (!toggle || toggle.checked) timer = window.setInterval(refresh, every);
    }

    if (toggle) {
      toggle.addEventListener("change", function () {
        try {
          window.localStorage.setItem("django-perf-auto-refresh", toggle.checked ? "on" : "off");
        } catch (e) {}
        schedule();
        if (toggle.checked) refresh();
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && (!toggle || toggle.checked)) refresh();
    });
    schedule();
  }

  // The invalidation form: show only the fields the chosen kind uses.
  function kinds() {
    var form = document.getElementById("perf-invalidate");
    if (!form) return;
    function update() {
      var checked = form.querySelector("input[name=kind]:checked");
      var kind = checked ? checked.value : "key";
      var model = kind === "model";
      ["values"].forEach(function (name) {
        var row = form.querySelector(".field-" + name);
        if (row) row.hidden = model;
      });
      ["model", "pks"].forEach(function (name) {
        var row = form.querySelector(".field-" + name);
        if (row) row.hidden = !model;
      });
    }
    form.addEventListener("change", update);
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { start(); kinds(); });
  } else {
    start();
    kinds();
  }
})();
