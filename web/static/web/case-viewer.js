/* The case viewer (web/templates/web/console/cases/detail.html): the Grad-CAM overlay's
   opacity slider, and keyboard shortcuts for the previous / next case in the current filter.
   No inline script or style: opacity is set from here through the element's style. */
(function () {
  "use strict";

  function setOpacity(slider) {
    var overlay = document.querySelector("[data-cam-overlay]");
    var shown = document.querySelector("[data-cam-opacity-value]");
    if (overlay) overlay.style.opacity = String(Number(slider.value) / 100);
    if (shown) shown.textContent = slider.value + "%";
  }

  function go(selector) {
    var link = document.querySelector(selector);
    if (link && link.href) window.location.assign(link.href);
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || (target && target.isContentEditable);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var slider = document.querySelector("[data-cam-opacity]");
    if (slider) {
      setOpacity(slider);
      slider.addEventListener("input", function () { setOpacity(slider); });
    }
    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      // Arrow keys move the slider when it has focus; letters never reach a text field here.
      if (typing(event.target) && !(event.target === slider && (event.key === "j" || event.key === "k"))) return;
      if (event.key === "j" || event.key === "ArrowRight") { go("[data-case-next]"); }
      else if (event.key === "k" || event.key === "ArrowLeft") { go("[data-case-prev]"); }
      else if (event.key === "u") { go("[data-case-list]"); }
      else if (slider && (event.key === "[" || event.key === "]")) {
        var step = event.key === "]" ? 10 : -10;
        slider.value = String(Math.max(0, Math.min(100, Number(slider.value) + step)));
        setOpacity(slider);
      }
    });
  });
})();
