/* The triage queue updates itself: every 5 seconds it fetches the rows and counts (a passive request:
   it does not keep the session alive). A new urgent alert, or one raised to urgent, shows a banner and is
   announced to screen readers (aria-live="assertive"). */
(function () {
  "use strict";
  var table = document.getElementById("queue-table");
  if (!table) { return; }
  var url = table.getAttribute("data-poll-url");
  var tbody = document.getElementById("queue-rows");
  var banner = document.getElementById("urgent-banner");
  var bannerText = document.getElementById("urgent-banner-text");
  var bannerLink = document.getElementById("urgent-banner-link");
  var live = document.getElementById("queue-live");
  var updated = document.getElementById("queue-updated");
  var baseTitle = document.title;
  var known = {};
  Array.prototype.forEach.call(tbody.querySelectorAll("tr[data-alert-id]"), function (row) {
    known[row.getAttribute("data-alert-id")] = row.getAttribute("data-urgency");
  });
  var failures = 0;

  document.getElementById("urgent-banner-dismiss").addEventListener("click", function () {
    banner.hidden = true;
  });

  function announce(alerts) {
    var fresh = alerts.filter(function (a) {
      return a.urgency === "urgent" && known[a.id] !== "urgent";
    });
    alerts.forEach(function (a) { known[a.id] = a.urgency; });
    if (!fresh.length) { return; }
    var first = fresh[0];
    var more = fresh.length > 1 ? " (and " + (fresh.length - 1) + " more)" : "";
    bannerText.textContent = first.category + more + ".";
    bannerLink.href = first.url;
    banner.hidden = false;
    live.textContent = "";
    setTimeout(function () {
      live.textContent = "New urgent alert: " + first.category + more + ".";
    }, 50);
    fresh.forEach(function (a) {
      var row = tbody.querySelector('tr[data-alert-id="' + a.id + '"]');
      if (row) { row.classList.add("is-new"); }
    });
  }

  function render(data) {
    tbody.innerHTML = data.rows;  // server-rendered, escaped by Jinja
    ["urgent", "same_day", "routine"].forEach(function (u) {
      var el = document.getElementById("count-" + u);
      if (el) { el.textContent = data.counts[u] || 0; }
      var open = document.getElementById("count-open-" + u);
      if (open) { open.textContent = (data.open_counts[u] || 0) + " not acknowledged"; }
    });
    var urgent = data.counts.urgent || 0;
    document.title = (urgent ? "(" + urgent + " urgent) " : "") + baseTitle;
    announce(data.alerts);
    var now = new Date();
    updated.textContent = "Open and acknowledged alerts, most urgent first, then oldest. Updated " +
      now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) + ".";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          if (window.proSignOut) { window.proSignOut(); } else { window.location.assign("/login?idle=1"); }
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data) { failures = 0; render(data); }
      })
      .catch(function () {
        failures += 1;
        if (failures >= 3) {
          updated.textContent = "Cannot reach the server: the list may be out of date. Retrying…";
        }
      })
      .then(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 5000);
})();
