/* Patient-phone simulator: keep the thread scrolled to the newest text and refresh it every 3 seconds.
   Only the thread's contents are replaced: a refused reply's error (#sim-error, role="alert") sits outside
   it and stays in view until the server stops rendering it (a reply goes through, or it is dismissed). */
(function () {
  "use strict";
  var thread = document.getElementById("phone-thread");
  if (!thread) { return; }
  var url = thread.getAttribute("data-poll-url");
  var lastId = 0;
  function lastMessageId() {
    var items = thread.querySelectorAll("[data-message-id]");
    return items.length ? parseInt(items[items.length - 1].getAttribute("data-message-id"), 10) : 0;
  }
  function scrollDown() { thread.scrollTop = thread.scrollHeight; }
  lastId = lastMessageId();
  scrollDown();
  var input = document.getElementById("sim-body");
  if (input) { input.focus(); }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401 && window.proSignOut) { window.proSignOut(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (data && data.last_id !== lastId) {
          thread.innerHTML = data.html;
          lastId = data.last_id;
          scrollDown();
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 3000);
})();
