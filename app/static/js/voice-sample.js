// Prompt page: "Play a sample" asks POST /api/v1/prompts/{id}/voice-sample for a WAV of the
// prompt's saved voice and plays it. Same-origin fetch reuses the browser's HTTP Basic
// credentials for this site; the audio is a blob: URL (allowed by the CSP's media-src).
"use strict";
(function () {
  var root = document.getElementById("voice-sample");
  if (!root) return;
  var button = document.getElementById("voice-sample-play");
  var audio = document.getElementById("voice-sample-audio");
  var status = document.getElementById("voice-sample-status");
  var lastUrl = null;

  button.addEventListener("click", function () {
    button.disabled = true;
    status.textContent = "Synthesising…";
    fetch(root.getAttribute("data-endpoint"), { method: "POST", headers: { Accept: "audio/wav" } })
      .then(function (response) {
        if (response.ok) return response.blob();
        return response.json().then(
          function (body) { throw new Error((body.error && body.error.message) || response.statusText); },
          function () { throw new Error("HTTP " + response.status); }
        );
      })
      .then(function (blob) {
        if (lastUrl) URL.revokeObjectURL(lastUrl);
        lastUrl = URL.createObjectURL(blob);
        audio.src = lastUrl;
        audio.hidden = false;
        status.textContent = "";
        return audio.play().catch(function () { status.textContent = "Press play to listen."; });
      })
      .catch(function (error) { status.textContent = "No sample: " + error.message; })
      .then(function () { button.disabled = false; });
  });
})();
