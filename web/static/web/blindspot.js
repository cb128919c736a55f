// Blindspot's only script besides htmx: upload progress, polls that pause in hidden tabs, and
// a notice instead of a frozen page when the server fails or cannot be reached. No inline
// script anywhere (the Content-Security-Policy forbids it); no eval (htmx.config.allowEval off).
(function () {
  "use strict";

  function notice(text, kind) {
    var box = document.getElementById("connection-notice");
    if (!box) return;
    box.textContent = text;
    box.className = text ? "alert alert--" + (kind || "bad") : "";
    box.hidden = !text;
  }

  // Live regions poll with hx-trigger="every Ns, blindspot:visible" and data-poll: a hidden tab
  // sends nothing, and becoming visible again refreshes at once.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden && event.detail.elt.hasAttribute("data-poll")) event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      htmx.trigger(el, "blindspot:visible");
    });
  });

  // Upload forms (data-upload): a progress bar with bytes sent, the button disabled meanwhile.
  function uploadParts(form) {
    return {
      bar: form.querySelector("progress[data-upload-progress]"),
      text: form.querySelector("[data-upload-text]"),
      button: form.querySelector("button[type=submit]"),
    };
  }
  function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest && event.target.closest("form[data-upload]");
    if (!form || !event.detail.lengthComputable) return;
    var parts = uploadParts(form);
    if (parts.bar) { parts.bar.hidden = false; parts.bar.max = event.detail.total; parts.bar.value = event.detail.loaded; }
    if (parts.text) {
      var pct = Math.floor((100 * event.detail.loaded) / event.detail.total);
      parts.text.textContent = event.detail.loaded < event.detail.total
        ? "Uploading: " + mib(event.detail.loaded) + " of " + mib(event.detail.total) + " (" + pct + "%)"
        : "Uploaded " + mib(event.detail.total) + "; checking it…";
    }
  });
  document.addEventListener("htmx:beforeSend", function (event) {
    var form = event.target.closest && event.target.closest("form[data-upload]");
    if (form) { var b = uploadParts(form).button; if (b) b.disabled = true; }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("form[data-upload]");
    if (form && document.body.contains(form)) { var b = uploadParts(form).button; if (b) b.disabled = false; }
    if (event.detail.successful) notice("");
  });

  // Failures are shown, never a frozen page: the last known state stays, with what happened.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    notice(status >= 500
      ? "The server failed to answer (HTTP " + status + "). What you see is the last known state; it will retry."
      : "The request was refused (HTTP " + status + "). Reload the page.");
  });
  document.addEventListener("htmx:sendError", function () {
    notice("The server cannot be reached. What you see is the last known state; it will retry.", "warn");
  });
})();
