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

  /* Filters apply as soon as they change. */
  var filters = document.getElementById("queue-filters");
  if (filters) {
    filters.addEventListener("change", function () { filters.submit(); });
  }

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
     so no patient information stays on it. The server enforces the same limit on its own. */
  if (!body.dataset.signedIn) { return; }
  var idleMs = parseFloat(body.dataset.idleSeconds || "900") * 1000;
  var lastActivity = Date.now();
  var lastPing = Date.now();
  var warning = document.getElementById("idle-warning");
  var countdown = document.getElementById("idle-countdown");
  var pingEvery = Math.min(60000, idleMs / 3);

  function ping() {
    lastPing = Date.now();
    fetch("/session/ping", {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) { if (r.status === 401) { signOut(); } }).catch(function () {});
  }
  function activity() {
    lastActivity = Date.now();
    if (warning && !warning.hidden) { warning.hidden = true; ping(); }
    else if (Date.now() - lastPing > pingEvery) { ping(); }
  }
  ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"].forEach(function (name) {
    window.addEventListener(name, activity, { passive: true, capture: true });
  });
  function signOut() {
    var next = window.location.pathname + window.location.search;
    window.location.assign("/login?idle=1&next=" + encodeURIComponent(next));
  }
  window.proSignOut = signOut;
  setInterval(function () {
    var left = idleMs - (Date.now() - lastActivity);
    if (left <= 0) { signOut(); return; }
    if (warning && left <= Math.min(60000, idleMs / 2)) {
      if (countdown) { countdown.textContent = Math.ceil(left / 1000) + " seconds"; }
      warning.hidden = false;
    }
  }, 1000);
})();
