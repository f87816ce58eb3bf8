/* The triage queue is a watch screen.
   - Every second it asks the server "anything new since version v?" (nearly always a 204, nothing rendered)
     and patches the rows in place by alert id: new rows inserted, changed rows patched, gone rows removed.
     The row holding keyboard focus is never moved or re-created, so focus (and a screen reader's place)
     survives every update. The poll is passive: it never extends the session.
   - A new open urgent alert, from any care team and whatever the filters, shows the banner and is announced
     (aria-live="assertive"); optionally a sound and a browser notification (no patient details), chosen per
     browser (localStorage), off by default.
   - After the idle time (app.js calls window.proOnIdle) a privacy screen covers the queue: the rows leave
     the page, the server is asked for counts only, and the counts and the banner stay live. The queue comes
     back only when the server accepts activity again (app.js calls window.proOnActive) or after sign-in. */
(function () {
  "use strict";
  var table = document.getElementById("queue-table");
  if (!table) { return; }
  var URGENCIES = ["urgent", "same_day", "routine"];
  var baseUrl = table.getAttribute("data-poll-url");
  var pollMs = parseInt(table.getAttribute("data-poll-ms"), 10) || 1000;
  var version = table.getAttribute("data-version") || "";
  var tbody = document.getElementById("queue-rows");
  var banner = document.getElementById("urgent-banner");
  var bannerText = document.getElementById("urgent-banner-text");
  var bannerLink = document.getElementById("urgent-banner-link");
  var live = document.getElementById("queue-live");
  var status = document.getElementById("queue-status");
  var updated = document.getElementById("queue-updated");
  var privacy = document.getElementById("privacy-screen");
  var privacyHeading = document.getElementById("privacy-title");
  var privacyCount = document.getElementById("privacy-urgent-count");
  var privacyNoun = document.getElementById("privacy-urgent-noun");
  var privacyOut = document.getElementById("privacy-signed-out");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var baseTitle = document.title;
  var seenUrgent = {};  // open urgent alerts already on screen or announced, by id
  (table.getAttribute("data-urgent-ids") || "").split(",").forEach(function (id) {
    if (id) { seenUrgent[id] = true; }
  });
  var locked = false;
  var signedOut = false;
  var failures = 0;
  var timer = null;
  var inFlight = false;
  var again = false;

  function say(region, text) {
    region.textContent = "";
    setTimeout(function () { region.textContent = text; }, 50);  // a change, so it is read again
  }

  // --- rows, patched in place --------------------------------------------------------------------
  function keyOf(row) {
    return row.getAttribute("data-alert-id") || row.getAttribute("data-key") || "";
  }

  function syncAttributes(from, to) {
    var keepNew = from.classList.contains("is-new");
    Array.prototype.slice.call(from.attributes).forEach(function (attr) {
      if (!to.hasAttribute(attr.name)) { from.removeAttribute(attr.name); }
    });
    Array.prototype.forEach.call(to.attributes, function (attr) {
      var value = attr.name === "class" && keepNew ? attr.value + " is-new" : attr.value;
      if (from.getAttribute(attr.name) !== value) { from.setAttribute(attr.name, value); }
    });
  }

  // Make `from` look like `to`, keeping every node whose kind and tag still match (a focused button or
  // link stays the same element).
  function morph(from, to) {
    if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) {
      from.parentNode.replaceChild(to, from);
      return;
    }
    if (from.nodeType !== 1) {
      if (from.nodeValue !== to.nodeValue) { from.nodeValue = to.nodeValue; }
      return;
    }
    syncAttributes(from, to);
    var a = Array.prototype.slice.call(from.childNodes);
    var b = Array.prototype.slice.call(to.childNodes);
    b.forEach(function (node, i) {
      if (i < a.length) { morph(a[i], node); } else { from.appendChild(node); }
    });
    a.slice(b.length).forEach(function (node) { from.removeChild(node); });
  }

  // Put rows in order with as few moves as possible, never moving `pinned` (moving a node takes the
  // focus out of it): rows in its way are moved instead.
  function place(rows, pinned) {
    var cursor = tbody.firstElementChild;
    rows.forEach(function (row) {
      if (row === cursor) { cursor = cursor.nextElementSibling; return; }
      if (row === pinned) {
        while (cursor && cursor !== pinned) {
          var next = cursor.nextElementSibling;
          tbody.appendChild(cursor);  // placed again further down
          cursor = next;
        }
        cursor = pinned.nextElementSibling;
        return;
      }
      tbody.insertBefore(row, cursor);
    });
  }

  function rowOf(node) {
    while (node && node !== tbody) {
      if (node.parentNode === tbody) { return node; }
      node = node.parentNode;
    }
    return null;
  }

  function focusIn(row) {
    var target = row && row.querySelector("a, button");
    if (target) { target.focus({ preventScroll: true }); return true; }
    return false;
  }

  function patchRows(html) {
    var template = document.createElement("template");
    template.innerHTML = html;  // server-rendered, escaped by Jinja
    var active = document.activeElement;
    var focusRow = rowOf(active);
    var oldRows = Array.prototype.slice.call(tbody.children);
    var focusIndex = oldRows.indexOf(focusRow);
    var byKey = {};
    oldRows.forEach(function (row) { byKey[keyOf(row)] = row; });
    var rows = Array.prototype.slice.call(template.content.children).map(function (fresh) {
      var key = keyOf(fresh);
      var row = byKey[key];
      if (row) {
        delete byKey[key];
        morph(row, fresh);
        return row;
      }
      if (fresh.hasAttribute("data-alert-id")) { fresh.classList.add("is-new"); }
      return fresh;
    });
    Object.keys(byKey).forEach(function (key) { byKey[key].remove(); });
    place(rows, rows.indexOf(focusRow) !== -1 ? focusRow : null);
    if (active && active !== document.body && !active.isConnected) {
      // The focused control went (the alert was acknowledged or left the queue): focus stays nearby,
      // on the same row's link, else the row now in its place, else the page's main region.
      var near = focusRow && focusRow.isConnected ? focusRow : rows[Math.min(focusIndex, rows.length - 1)];
      if (!focusIn(near)) { document.getElementById("main").focus({ preventScroll: true }); }
      if (!(focusRow && focusRow.isConnected)) {
        say(status, "The alert you were on left the queue (resolved or filtered out).");
      }
    }
  }

  // --- counts, banner, sound, notification ---------------------------------------------------------
  function updateCounts(data) {
    URGENCIES.forEach(function (u) {
      var el = document.getElementById("count-" + u);
      if (el) { el.textContent = data.counts[u] || 0; }
      var open = document.getElementById("count-open-" + u);
      if (open) { open.textContent = (data.open_counts[u] || 0) + " not acknowledged"; }
    });
    var openUrgent = data.open_counts.urgent || 0;
    privacyCount.textContent = openUrgent;
    privacyNoun.textContent = openUrgent === 1 ? "alert" : "alerts";
    var urgent = data.counts.urgent || 0;
    document.title = (urgent ? "(" + urgent + " urgent) " : "") + baseTitle;
  }

  function describe(alert) {
    // On the privacy screen the server sends no symptoms: the care team only.
    return alert.category ? alert.category + " (" + alert.team + ")" : "in " + alert.team;
  }

  function announceUrgent(list) {
    var open = {};
    var fresh = [];
    list.forEach(function (a) {
      open[a.id] = true;
      if (!seenUrgent[a.id]) { fresh.push(a); }
    });
    // An alert that leaves and comes back (new urgent evidence after an acknowledgement) is new again.
    seenUrgent = open;
    if (!banner.hidden && !open[banner.getAttribute("data-alert-id")]) { banner.hidden = true; }
    if (!fresh.length) { return; }
    var first = fresh[0];  // the newest
    var more = fresh.length > 1 ? " (and " + (fresh.length - 1) + " more)" : "";
    bannerText.textContent = describe(first) + more + ".";
    bannerLink.href = first.url;
    banner.setAttribute("data-alert-id", first.id);
    banner.setAttribute("data-team", first.team);
    banner.hidden = false;
    say(live, "New urgent alert: " + describe(first) + more + ".");
    fresh.forEach(function (a) {
      var row = tbody.querySelector('tr[data-alert-id="' + a.id + '"]');
      if (row) { row.classList.add("is-new"); }
    });
    if (pref("sound")) { beep(); }
    if (pref("notify")) { notify(fresh.length); }
  }

  function pref(name) {
    try { return window.localStorage.getItem("pro.queue." + name) === "on"; } catch (e) { return false; }
  }
  function setPref(name, on) {
    try { window.localStorage.setItem("pro.queue." + name, on ? "on" : "off"); } catch (e) { /* private mode */ }
  }

  var audio = null;
  function audioContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) { audio = new Context(); }
    if (audio && audio.state === "suspended") { audio.resume(); }
    return audio;
  }
  function beep() {
    var ctx = audioContext();
    if (!ctx) { return; }
    var t = ctx.currentTime;
    [880, 660, 880].forEach(function (hz, i) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      var at = t + i * 0.22;
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.2);
    });
  }
  function notify(count) {
    if (!("Notification" in window) || window.Notification.permission !== "granted") { return; }
    try {
      var note = new window.Notification("Urgent alert in the triage queue", {
        body: count > 1 ? count + " new urgent alerts are waiting." : "A new urgent alert is waiting.",
        tag: "pro-urgent",
        renotify: true
      });
      note.onclick = function () { window.focus(); note.close(); };
    } catch (e) { /* some browsers only notify from a service worker */ }
  }

  function setUpOptions() {
    var box = document.getElementById("watch-options");
    var sound = document.getElementById("opt-sound");
    var notifyBox = document.getElementById("opt-notify");
    var note = document.getElementById("opt-notify-note");
    var canNotify = "Notification" in window;
    sound.checked = pref("sound");
    notifyBox.checked = pref("notify") && canNotify && window.Notification.permission === "granted";
    sound.addEventListener("change", function () {
      setPref("sound", sound.checked);
      if (sound.checked) { beep(); }  // a sample, and this click lets the page play sound later
    });
    notifyBox.addEventListener("change", function () {
      if (!notifyBox.checked) { setPref("notify", false); note.textContent = ""; return; }
      if (!canNotify) {
        notifyBox.checked = false;
        note.textContent = "This browser cannot show notifications.";
        return;
      }
      window.Notification.requestPermission().then(function (permission) {
        var granted = permission === "granted";
        notifyBox.checked = granted;
        setPref("notify", granted);
        note.textContent = granted ? "" : "Notifications are blocked for this site in the browser's settings.";
      });
    });
    // Browsers start sound only after a gesture on the page: the first key or click after a reload.
    ["pointerdown", "keydown"].forEach(function (name) {
      window.addEventListener(name, function () { if (pref("sound")) { audioContext(); } }, { once: true });
    });
    box.hidden = false;
  }

  // --- privacy screen ------------------------------------------------------------------------------
  function lock() {
    if (locked) { return; }
    locked = true;
    var hadFocus = table.contains(document.activeElement);
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }  // names and MRNs leave the page
    table.hidden = true;
    live.textContent = "";
    if (!banner.hidden) { bannerText.textContent = "in " + banner.getAttribute("data-team") + "."; }
    privacy.hidden = false;
    if (hadFocus || document.activeElement === document.body) { privacyHeading.focus({ preventScroll: true }); }
    version = "";  // the next answer is the PHI-free one
    pollSoon();
  }

  window.proOnIdle = function () { lock(); return true; };
  // The server took activity again (another tab kept the session alive): show a fresh, audited page.
  window.proOnActive = function () { if (locked && !signedOut) { window.location.reload(); } };

  // On this page the idle warning is about hiding names, not signing out.
  var warning = document.getElementById("idle-warning");
  if (warning && warning.firstChild && warning.lastChild && warning.firstChild.nodeType === 3) {
    warning.firstChild.nodeValue = "For privacy, names will be hidden in ";
    warning.lastChild.nodeValue = ". Press a key or move the mouse to keep them shown.";
  }

  // --- acknowledge from the row --------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("q-ack") || event.defaultPrevented) { return; }
    event.preventDefault();
    if (form.getAttribute("data-busy")) { return; }
    form.setAttribute("data-busy", "1");  // not `disabled`: a disabled button drops the focus
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrf }
    }).then(function (response) {
      if (response.status === 401) {
        lock();
        say(status, "Not acknowledged: sign in again first.");
        return null;
      }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (data) {
      if (data) { say(status, data.message); }
      pollSoon();
    }).catch(function () {
      say(status, "Not acknowledged: the server did not answer. Try again.");
    }).then(function () { form.removeAttribute("data-busy"); });
  });

  // --- the poll ------------------------------------------------------------------------------------
  function pollUrl() {
    var sep = baseUrl.indexOf("?") === -1 ? "?" : "&";
    return baseUrl + sep + "v=" + encodeURIComponent(version) + (locked ? "&privacy=1" : "");
  }

  function apply(data) {
    version = data.version;
    if (signedOut) { signedOut = false; privacyOut.hidden = true; }
    if (data.locked) { lock(); }
    updateCounts(data);
    if (typeof data.rows === "string" && !locked) { patchRows(data.rows); }
    announceUrgent(data.urgent || []);
  }

  function checked() {
    updated.textContent = "Checked " + new Date().toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    }) + ".";
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }
  function pollSoon() {
    if (inFlight) { again = true; } else { schedule(0); }
  }

  function poll() {
    inFlight = true;
    fetch(pollUrl(), { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          lock();  // signed out for good (time limit, sign-out elsewhere): say the queue is not updating
          signedOut = true;
          privacyOut.hidden = false;
          return null;
        }
        if (response.status === 204) { return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (failures >= 3) { say(status, "Connection back: the queue is up to date."); }
        failures = 0;
        if (data) { apply(data); }
        if (!signedOut) { checked(); }
      })
      .catch(function () {
        failures += 1;
        if (failures === 3) {
          updated.textContent = "Cannot reach the server: the list may be out of date. Retrying…";
          say(status, "Cannot reach the server: the queue may be out of date.");
        }
      })
      .then(function () {
        inFlight = false;
        var wait = signedOut ? 5000 : Math.min(5000, pollMs * (failures + 1));
        schedule(again ? 0 : wait);
        again = false;
      });
  }

  setUpOptions();
  schedule(pollMs);
})();
