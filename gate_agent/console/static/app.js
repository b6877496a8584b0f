/* The guard console's core: words and language, API calls, the session and the views.
   live.js shows results and events, status.js the gate's state; forms.js and signin.js
   hold the forms. */
"use strict";

window.GC = (function () {
  const WORDS = window.GateWords;
  const LANG_KEY = "gate-console-lang";
  const RETRY_MS = 3000;

  // Other scripts add to these: run at start, on a language switch, signing in and out.
  const startHooks = [];
  const languageHooks = [];
  const enterHooks = [];
  const signOutHooks = [];

  const state = {
    lang: "zh",
    session: null,
    messages: { outcomes: {}, reasons: {}, next_steps: {}, override_reasons: {} },
    current: null,
    history: [],
    seen: {},
    status: null,
    devices: {},
    source: null,
    connected: false,
    clockOffsetMs: null,
    timers: { stale: null, status: null, reconnect: null, statusSoon: null },
  };

  const $ = function (id) { return document.getElementById(id); };

  // -- words ------------------------------------------------------------------------------

  function t(key, values) {
    const pair = WORDS[key];
    let text = pair ? pair[state.lang === "en" ? 1 : 0] : key;
    if (values && typeof text === "string") {
      Object.keys(values).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(values[name]));
      });
    }
    return text;
  }

  function fromMessages(group, code, fallback) {
    const entry = state.messages[group] && state.messages[group][code];
    if (entry && entry[state.lang]) return entry[state.lang];
    return fallback || code || "";
  }

  function outcomeWord(code) { return fromMessages("outcomes", code); }

  function reasonWord(decision) {
    return fromMessages("reasons", decision.reason, decision["message_" + state.lang]);
  }

  function nextWord(decision) {
    if (!decision.next_step) return "";
    return fromMessages("next_steps", decision.next_step, decision["next_" + state.lang]);
  }

  /* A pass's kind, or for a registration (no pass) the kind of person registered. */
  function personKind(decision) {
    if (decision.kind) return decision.kind;
    const identity = decision.manual_identity || "";
    return identity === "visitor" || identity === "returnee" ? identity : "";
  }

  function kindWord(kind) { return kind ? (WORDS["kind_" + kind] ? t("kind_" + kind) : kind) : ""; }

  function modeWord(mode) { return WORDS["mode_short_" + mode] ? t("mode_short_" + mode) : mode; }

  function ageWords(seconds) {
    const minutes = Math.max(0, Math.round(seconds / 60));
    if (minutes < 120) return t("age_min", { n: minutes });
    const hours = Math.round(minutes / 60);
    if (hours < 48) return t("age_hour", { n: hours });
    return t("age_day", { n: Math.round(hours / 24) });
  }

  /* Show an error code as words, kept so a language switch re-words it. */
  function setError(element, code, fallback, values) {
    if (!element) return;
    if (!code) {
      element.textContent = "";
      delete element.dataset.code;
      return;
    }
    element.dataset.code = code;
    element.dataset.fallback = fallback || "";
    element.dataset.values = values ? JSON.stringify(values) : "";
    element.textContent = errorText(code, fallback, values);
  }

  function errorText(code, fallback, values) {
    const key = window.GateErrorWords[code] || (WORDS[code] ? code : null);
    if (key) return t(key, values);
    return fallback ? fallback + " (" + code + ")" : code;
  }

  function applyLanguage() {
    const lang = state.lang;
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t(el.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-attr]").forEach(function (el) {
      el.dataset.i18nAttr.split(";").forEach(function (pair) {
        const parts = pair.split(":");
        el.setAttribute(parts[0], t(parts[1]));
      });
    });
    const toggle = $("lang-btn");
    toggle.textContent = lang === "en" ? "中文" : "English";
    toggle.lang = lang === "en" ? "zh-CN" : "en";
    document.querySelectorAll("[data-code]").forEach(function (el) {
      const values = el.dataset.values ? JSON.parse(el.dataset.values) : undefined;
      el.textContent = errorText(el.dataset.code, el.dataset.fallback, values);
    });
    renderWho();
    languageHooks.forEach(function (hook) { hook(); });
  }

  function setLanguage(lang) {
    state.lang = lang === "en" ? "en" : "zh";
    try { window.localStorage.setItem(LANG_KEY, state.lang); } catch (err) { /* private mode */ }
    applyLanguage();
  }

  // -- the API ----------------------------------------------------------------------------

  /* One call; answers {ok, status, data}. A decision in an error answer is still a decision. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const options = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET" && state.session && state.session.csrf) {
      headers["X-CSRF-Token"] = state.session.csrf;
    }
    let response;
    try {
      response = await window.fetch(path, options);
    } catch (err) {
      return { ok: false, status: 0, data: { error: "network", message: String(err) } };
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    if (!response.ok && (!data || typeof data !== "object")) {
      data = { error: response.status >= 500 ? "server_error" : "http_" + response.status };
    }
    if (!response.ok && data && !data.error && data.detail) {
      // FastAPI's own validation answer: keep the first field it names, for the form to show.
      const first = Array.isArray(data.detail) ? data.detail[0] : null;
      data = {
        error: response.status === 422 ? "validation_error" : "http_" + response.status,
        message: typeof data.detail === "string" ? data.detail : "",
        field: first && first.loc ? String(first.loc[first.loc.length - 1]) : "",
      };
    }
    if (response.status === 401 && state.session && path.indexOf("/api/session") !== 0) {
      signedOut("session_expired");
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  async function loadMessages() {
    const answer = await api("GET", "/api/messages");
    if (answer.ok && answer.data) {
      state.messages = Object.assign(state.messages, answer.data);
      applyLanguage();
      return true;
    }
    window.setTimeout(loadMessages, RETRY_MS);
    return false;
  }

  // -- views ------------------------------------------------------------------------------

  function showView(name) {
    document.querySelectorAll("#app-view > .view").forEach(function (view) {
      view.hidden = view.id !== "view-" + name;
    });
    document.querySelectorAll(".tab").forEach(function (tab) {
      if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    });
    if (name === "status") window.GC.refreshStatus();
  }

  function renderWho() {
    const who = $("who");
    if (!state.session) {
      who.hidden = true;
      return;
    }
    who.hidden = false;
    const role = state.session.role === "admin" ? t("role_admin") : t("role_guard");
    const wrapped = state.lang === "en" ? " (" + role + ")" : "（" + role + "）";
    who.textContent = (state.session.name || "") + wrapped;
  }

  function enterApp(session) {
    state.session = session;
    $("signin-view").hidden = true;
    $("app-view").hidden = false;
    $("signout-btn").hidden = false;
    const admin = session.role === "admin";
    document.querySelectorAll(".admin-only").forEach(function (el) { el.hidden = !admin; });
    document.body.dataset.role = session.role;
    renderWho();
    updateSoundButton();
    showView("live");
    enterHooks.forEach(function (hook) { hook(session); });
  }

  /* Back to the sign-in screen; `reason` is an error code to show there. */
  function signedOut(reason) {
    state.session = null;
    window.GateSound.stopAlarm();
    $("app-view").hidden = true;
    $("signout-btn").hidden = true;
    $("sound-btn").hidden = true;
    $("signin-view").hidden = false;
    $("mode-badge").hidden = true;
    $("warnings").hidden = true;
    delete document.body.dataset.role;
    renderWho();
    signOutHooks.forEach(function (hook) { hook(reason); });
  }

  function updateSoundButton() {
    $("sound-btn").hidden = !state.session || window.GateSound.ready();
  }

  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    window.clearTimeout(toast.timer);
    toast.timer = window.setTimeout(function () { box.textContent = ""; }, 4000);
  }

  // -- start ------------------------------------------------------------------------------

  function bindCore() {
    $("lang-btn").addEventListener("click", function () {
      setLanguage(state.lang === "en" ? "zh" : "en");
    });
    $("sound-btn").addEventListener("click", function () { window.GateSound.unlock(); });
    window.GateSound.onChange(updateSoundButton);
    // Any tap may unlock sound: a page reopened with a live session had no sign-in tap.
    document.addEventListener("pointerdown", function () {
      if (state.session && !window.GateSound.ready()) window.GateSound.unlock();
    });
    document.querySelectorAll(".tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showView(tab.dataset.view); });
    });
  }

  async function start() {
    let saved = null;
    try { saved = window.localStorage.getItem(LANG_KEY); } catch (err) { saved = null; }
    state.lang = saved === "en" ? "en" : "zh";
    bindCore();
    startHooks.forEach(function (hook) { hook(); });
    applyLanguage();
    loadMessages();
    // The sign-in screen stays hidden until this answer: a guard who signed in on a slow
    // gate before it came must not be sent back to the sign-in screen by it.
    const answer = await api("GET", "/api/session");
    if (state.session) return;
    if (answer.ok && answer.data && answer.data.role) enterApp(answer.data);
    else signedOut(null);
  }

  document.addEventListener("DOMContentLoaded", start);

  return {
    state: state,
    t: t,
    $: $,
    api: api,
    fromMessages: fromMessages,
    outcomeWord: outcomeWord,
    reasonWord: reasonWord,
    nextWord: nextWord,
    personKind: personKind,
    kindWord: kindWord,
    modeWord: modeWord,
    ageWords: ageWords,
    setError: setError,
    errorText: errorText,
    toast: toast,
    showView: showView,
    enterApp: enterApp,
    signedOut: signedOut,
    onLanguage: function (hook) { languageHooks.push(hook); },
    onSignOut: function (hook) { signOutHooks.push(hook); },
    onStart: function (hook) { startHooks.push(hook); },
    onEnter: function (hook) { enterHooks.push(hook); },
    // Filled in by live.js and status.js:
    onDecision: null,
    connectEvents: null,
    refreshStatus: null,
  };
})();
