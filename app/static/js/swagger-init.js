// Starts Swagger UI on /docs (kept out of the HTML so the CSP can forbid inline scripts).
"use strict";
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: node.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    withCredentials: true,
    persistAuthorization: false,
  });
});
