// "Try it" page: sends each message to POST /api/v1/chat and renders the conversation.
// Same-origin fetch reuses the browser's HTTP Basic credentials for this site.
"use strict";
(function () {
  var root = document.getElementById("chat");
  if (!root) return;
  var endpoint = root.getAttribute("data-endpoint");
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-message");
  var send = document.getElementById("chat-send");
  var errorBox = document.getElementById("chat-error");
  var promptSelect = document.getElementById("chat-prompt");
  var modelSelect = document.getElementById("chat-model");
  var conversationLabel = document.getElementById("conversation-id");
  var conversationId = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function pretty(value) {
    if (typeof value === "string") {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
    }
    return JSON.stringify(value, null, 2);
  }

  function clearEmpty() {
    var empty = document.getElementById("chat-empty");
    if (empty) empty.remove();
  }

  function addBubble(kind, who, text) {
    clearEmpty();
    var item = el("li", "chat-item " + kind);
    var bubble = el("div", "bubble " + kind);
    bubble.appendChild(el("span", "who", who));
    bubble.appendChild(document.createTextNode(text));
    item.appendChild(bubble);
    log.appendChild(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function addToolCalls(item, calls) {
    calls.forEach(function (call) {
      var details = el("details", "tool-call");
      var summary = el("summary");
      var badge = el("span", "badge badge-" + (call.outcome === "ok" ? "ok" : "bad"), "tool");
      summary.appendChild(badge);
      summary.appendChild(document.createTextNode(" "));
      summary.appendChild(el("code", "", call.name));
      var meta = " " + (call.outcome || "");
      if (call.status_code) meta += " HTTP " + call.status_code;
      if (call.latency_ms !== null && call.latency_ms !== undefined) meta += " · " + Math.round(call.latency_ms) + " ms";
      summary.appendChild(document.createTextNode(meta));
      details.appendChild(summary);
      var io = el("div", "tool-io");
      io.appendChild(el("h3", "", "Arguments"));
      io.appendChild(el("pre", "code-block", pretty(call.args)));
      io.appendChild(el("h3", "", "Result"));
      io.appendChild(el("pre", "code-block", pretty(call.result)));
      details.appendChild(io);
      item.appendChild(details);
    });
  }

  function addMeta(item, data) {
    var meta = el("p", "turn-meta");
    var badge = el("span", "badge badge-" + (data.status === "OK" ? "ok" : "bad"), data.status);
    meta.appendChild(badge);
    var parts = [];
    if (data.turn) parts.push(data.turn.latency_ms + " ms total", data.turn.llm_latency_ms + " ms in the model");
    if (data.model) parts.push(data.model);
    if (data.error) parts.push(data.error);
    meta.appendChild(document.createTextNode(" " + parts.join(" · ") + " "));
    if (data.call_id) {
      var link = el("a", "", "view in call log");
      link.href = "/ui/calls/" + data.call_id;
      meta.appendChild(link);
    }
    item.appendChild(meta);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var message = input.value.trim();
    if (!message) { showError("Type a message first."); input.focus(); return; }
    showError("");
    addBubble("caller", "You", message);
    input.value = "";
    send.disabled = true;
    send.textContent = "Thinking…";
    var body = { message: message, prompt_name: promptSelect.value || null, model: modelSelect.value || null };
    if (conversationId) body.conversation_id = conversationId;
    fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (!result.ok) {
          var err = result.data && result.data.error;
          showError(err ? err.message : "The request failed.");
          return;
        }
        var data = result.data;
        conversationId = data.conversation_id;
        conversationLabel.textContent = conversationId;
        var item = addBubble("agent", "Agent", data.reply);
        if (data.tool_calls && data.tool_calls.length) {
          var toolsItem = el("li", "chat-item tools");
          addToolCalls(toolsItem, data.tool_calls);
          log.insertBefore(toolsItem, item);
        }
        addMeta(item, data);
      })
      .catch(function () { showError("Could not reach the gateway."); })
      .then(function () {
        send.disabled = false;
        send.textContent = "Send";
        input.focus();
      });
  });

  document.getElementById("new-conversation").addEventListener("click", function () {
    conversationId = null;
    conversationLabel.textContent = "new";
    while (log.firstChild) log.removeChild(log.firstChild);
    var empty = el("li", "empty", "New conversation. Say something to the agent.");
    empty.id = "chat-empty";
    log.appendChild(empty);
    showError("");
    input.focus();
  });

  [promptSelect, modelSelect].forEach(function (select) {
    select.addEventListener("change", function () {
      conversationId = null;
      conversationLabel.textContent = "new";
    });
  });
})();
