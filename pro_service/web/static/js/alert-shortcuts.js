/* Keyboard shortcuts on the alert page (issue 14): a acknowledges, n goes to the note, r goes to the
   resolve form (an outcome and a RAG grade are still chosen by hand). Never while typing in a field, nor
   with a modifier key, so the browser's and the screen reader's own keys keep working. */
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function focusFirst(selector) {
    var found = document.querySelector(selector);
    if (!found) { return false; }
    found.focus();
    found.scrollIntoView({ block: "center" });
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.repeat) { return; }
    if (typing(event.target)) { return; }
    var done = false;
    switch (event.key) {
      case "a": {
        var form = document.querySelector("form.action-ack");
        if (form) {
          if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
          done = true;
        }
        break;
      }
      case "n":
        done = focusFirst("form.action-note textarea");
        break;
      case "r":
        done = focusFirst("form.action-resolve input[name=outcome]");
        break;
      default:
        return;
    }
    if (done) { event.preventDefault(); }
  });
})();
