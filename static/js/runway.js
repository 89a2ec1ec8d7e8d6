// Behaviour the pages ask for with data- attributes: no inline handlers, so the Content-Security-Policy can refuse
// every inline script.
(function () {
  "use strict";

  // <input data-select-on-focus>: one click selects the whole value (a new API token, ready to copy).
  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
      target.select();
    }
  });
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
      target.select();
    }
  });
})();
