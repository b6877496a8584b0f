/* Signing in (tap your name, then the PIN on the keypad; or the admin token) and out. */
"use strict";

(function () {
  const GC = window.GC;
  const $ = GC.$;
  let pickedGuard = null;

  async function loadGuards() {
    const answer = await GC.api("GET", "/api/guards");
    const list = $("guard-list");
    list.textContent = "";
    const names = answer.ok && answer.data && answer.data.guards ? answer.data.guards : [];
    names.forEach(function (entry) {
      const name = typeof entry === "string" ? entry : entry.name;
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn guard-btn";
      button.textContent = name;
      button.addEventListener("click", function () { pickGuard(name); });
      li.appendChild(button);
      list.appendChild(li);
    });
    $("no-guards").hidden = names.length > 0 || !answer.ok;
    if (!answer.ok) GC.setError($("signin-error"), answer.data.error, answer.data.message);
  }

  function showSignInStep(step) {
    $("guard-step").hidden = step !== "guards";
    $("pin-form").hidden = step !== "pin";
    $("admin-form").hidden = step !== "admin";
    $("admin-link").parentElement.hidden = step === "admin";
    GC.setError($("signin-error"), null);
  }

  function pickGuard(name) {
    window.GateSound.unlock();
    pickedGuard = name;
    $("pin-name").textContent = name;
    $("pin-input").value = "";
    showSignInStep("pin");
    $("pin-input").focus();
  }

  function onKey(key) {
    const input = $("pin-input");
    if (key === "clear") input.value = "";
    else if (key === "back") input.value = input.value.slice(0, -1);
    else if (input.value.length < 8) input.value += key;
  }

  async function signInGuard(event) {
    event.preventDefault();
    window.GateSound.unlock();
    const form = $("pin-form");
    const pin = $("pin-input").value.trim();
    if (!pin) {
      GC.setError($("signin-error"), "pin_empty");
      return;
    }
    const answer = await GC.submitting(form, function () {
      return GC.api("POST", "/api/session/guard", { name: pickedGuard, pin: pin });
    });
    $("pin-input").value = "";
    if (answer.ok && answer.data) {
      GC.enterApp(answer.data);
      return;
    }
    GC.showAnswerError($("signin-error"), answer);
  }

  async function signInAdmin(event) {
    event.preventDefault();
    window.GateSound.unlock();
    const form = $("admin-form");
    const token = $("admin-token").value.trim();
    if (!token) {
      GC.setError($("signin-error"), "token_empty");
      return;
    }
    const answer = await GC.submitting(form, function () {
      return GC.api("POST", "/api/session/admin", { token: token });
    });
    $("admin-token").value = "";
    if (answer.ok && answer.data) {
      GC.enterApp(answer.data);
      return;
    }
    GC.showAnswerError($("signin-error"), answer);
  }

  async function signOut() {
    await GC.api("DELETE", "/api/session");
    GC.signedOut(null);
  }

  function bind() {
    $("pin-form").addEventListener("submit", signInGuard);
    $("admin-form").addEventListener("submit", signInAdmin);
    document.querySelectorAll(".keypad .key").forEach(function (key) {
      key.addEventListener("click", function () {
        onKey(key.dataset.key);
        $("pin-input").focus();
      });
    });
    $("pin-back").addEventListener("click", function () { showSignInStep("guards"); });
    $("admin-link").addEventListener("click", function () {
      showSignInStep("admin");
      $("admin-token").focus();
    });
    $("admin-back").addEventListener("click", function () { showSignInStep("guards"); });
    $("signout-btn").addEventListener("click", signOut);
  }

  GC.onStart(bind);
  GC.onSignOut(function (reason) {
    showSignInStep("guards");
    loadGuards();
    if (reason) GC.setError($("signin-error"), reason);
  });
})();
