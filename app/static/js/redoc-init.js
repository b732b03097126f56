// Starts ReDoc on /redoc (kept out of the HTML so the CSP can forbid inline scripts).
"use strict";
window.addEventListener("load", function () {
  var node = document.getElementById("redoc");
  window.Redoc.init(node.getAttribute("data-openapi-url"), { hideDownloadButton: false }, node);
});
