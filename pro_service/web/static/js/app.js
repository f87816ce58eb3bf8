/* Small progressive enhancements for every page. The pages work without this file. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var body = document.body;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  /* Confirm before destructive or paging actions: <form data-confirm="…">. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm") ||
      (event.submitter && event.submitter.getAttribute("data-confirm"));
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  /* Times marked data-local (the audit log, stored in UTC) are shown in the reader's own time zone; the
     UTC text stays as the title, and is what shows without this file. */
  var stamps = document.querySelectorAll("time[data-local]");
  if (stamps.length && window.Intl) {
    var format = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
    Array.prototype.forEach.call(stamps, function (stamp) {
      var when = new Date(stamp.getAttribute("datetime"));
      if (isNaN(when)) { return; }
      stamp.title = stamp.textContent;
      stamp.textContent = format.format(when);
    });
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    Array.prototype.forEach.call(document.querySelectorAll("[data-local-zone]"), function (label) {
      label.textContent = "(" + zone + ")";
    });
  }

  /* A form that came back with problems: focus their summary, so a screen reader reads it first and the
     links inside lead to each field (WCAG 3.3.1). */
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }

  /* The queue's filters apply with their button, not on change: a select changes on the first arrow key,
     and reloading the page under a keyboard user is a change of context (WCAG 3.2.2). */

  /* Schedule form: say when the chosen time falls inside quiet hours. */
  var time = document.getElementById("time");
  var quietWarning = document.getElementById("quiet-warning");
  if (time && quietWarning && time.dataset.quietStart) {
    var checkQuiet = function () {
      var t = time.value, s = time.dataset.quietStart, e = time.dataset.quietEnd;
      var quiet = !!t && (s <= e ? (t >= s && t < e) : (t >= s || t < e));
      quietWarning.hidden = !quiet;
    };
    time.addEventListener("input", checkQuiet);
    checkQuiet();
  }

  /* Idle sign-out. Real activity (keys, pointer, scroll, touch) is reported to the server at most once a
     minute, so someone reading or typing stays signed in; an unattended screen goes to the sign-in page
     so no patient information stays on it. The server enforces the same limit on its own. A page that can
     hide its patient data in place (the triage queue's privacy screen) sets window.proOnIdle; it is then
     told when the server takes activity again (window.proOnActive). */
  if (!body.dataset.signedIn) { return; }
  var idleMs = parseFloat(body.dataset.idleSeconds || "900") * 1000;
  var lastActivity = Date.now();
  var lastPing = Date.now();
  var warning = document.getElementById("idle-warning");
  var countdown = document.getElementById("idle-countdown");
  var pingEvery = Math.min(60000, idleMs / 3);
  var hidden = false;  // proOnIdle took the idle screen over

  function ping() {
    lastPing = Date.now();
    fetch("/session/ping", {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) {
      if (r.status === 401) { signOut(); }
      else if (r.ok && hidden) { hidden = false; if (window.proOnActive) { window.proOnActive(); } }
    }).catch(function () {});
  }
  function activity() {
    lastActivity = Date.now();
    if (hidden) { if (Date.now() - lastPing > 5000) { ping(); } return; }
    if (warning && !warning.hidden) { warning.hidden = true; ping(); }
    else if (Date.now() - lastPing > pingEvery) { ping(); }
  }
  ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"].forEach(function (name) {
    window.addEventListener(name, activity, { passive: true, capture: true });
  });
  function signOut() {
    if (window.proOnIdle && window.proOnIdle()) {
      hidden = true;
      if (warning) { warning.hidden = true; }
      return;
    }
    var next = window.location.pathname + window.location.search;
    window.location.assign("/login?idle=1&next=" + encodeURIComponent(next));
  }
  window.proSignOut = signOut;
  setInterval(function () {
    if (hidden) { return; }
    var left = idleMs - (Date.now() - lastActivity);
    if (left <= 0) { signOut(); return; }
    if (warning && left <= Math.min(60000, idleMs / 2)) {
      if (countdown) { countdown.textContent = Math.ceil(left / 1000) + " seconds"; }
      warning.hidden = false;
    }
  }, 1000);
})();
