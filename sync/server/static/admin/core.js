/* The admin page's shell: words, building elements, the API with its CSRF token,
   sign-in and sign-out, and the panel registry each panel module adds itself to. */
"use strict";

(function () {
  const words = window.AdminWords;
  const panels = [];
  const state = { lang: "zh", csrf: null, name: null, current: null };
  try {
    const saved = window.localStorage.getItem("gs-admin-lang");
    if (saved === "en" || saved === "zh") state.lang = saved;
  } catch (e) { /* private mode: Chinese */ }

  /** A word in the current language; the key itself when missing (a test catches it). */
  function T(key) {
    const pair = words[key];
    if (!pair) return key;
    return state.lang === "en" ? pair[1] : pair[0];
  }

  /** An element: h("button", {class: "primary", t: "refresh"}, child, "text", ...). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "t") { el.dataset.t = value; el.textContent = T(value); }
      else if (key === "tPlaceholder") { el.dataset.tPlaceholder = value; el.placeholder = T(value); }
      else if (key === "on") { for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn); }
      else if (key === "class") el.className = value;
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  /** A label around a control, its words by key. */
  function field(key, control, hint) {
    return h("label", { class: "field" }, h("span", { t: key }), control,
      hint ? h("small", { t: hint }) : null);
  }

  function applyLang() {
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = T(el.dataset.t); });
    document.querySelectorAll("[data-t-placeholder]").forEach((el) => {
      el.placeholder = T(el.dataset.tPlaceholder);
    });
    const toggle = document.getElementById("lang");
    toggle.textContent = state.lang === "en" ? "中文" : "English";
    toggle.lang = state.lang === "en" ? "zh-CN" : "en";
    document.title = T("title");
    panels.forEach((p) => p.lang && p.section && p.lang(p.section));
  }

  function setLang(lang) {
    state.lang = lang;
    try { window.localStorage.setItem("gs-admin-lang", lang); } catch (e) { /* fine */ }
    applyLang();
  }

  /** The words of an error reply: its code's words, then the server's detail. */
  function errorText(data, status) {
    const code = data && data.error ? data.error : (status ? "http_" + status : "network");
    const known = words["err_" + code] ? T("err_" + code) : T("err_unknown") + " (" + code + ")";
    return data && data.detail ? known + ": " + data.detail : known;
  }

  /** Call the JSON API; writes carry the CSRF token. Resolves {ok, status, data}. */
  async function api(method, path, body, options) {
    const opts = options || {};
    const headers = { "Accept": "application/json" };
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let payload;
    if (opts.raw !== undefined) { payload = opts.raw; headers["Content-Type"] = opts.type || "application/octet-stream"; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    let reply;
    try {
      reply = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    } catch (e) {
      return { ok: false, status: 0, data: { error: "network", detail: String(e) } };
    }
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    if ((reply.status === 401) && path !== "/v1/admin/session") showSignin(data);
    return { ok: reply.ok, status: reply.status, data };
  }

  /** Show an outcome under a form: role=status for success, role=alert for a refusal. */
  function say(el, ok, text) {
    el.hidden = false;
    el.className = ok ? "result ok" : "result error";
    el.setAttribute("role", ok ? "status" : "alert");
    el.textContent = text;
  }

  function panel(spec) { panels.push(spec); }

  function buildPanels() {
    const tabs = document.getElementById("tabs");
    const holder = document.getElementById("panels");
    tabs.replaceChildren();
    holder.replaceChildren();
    panels.forEach((p) => {
      p.section = h("section", { id: "panel-" + p.id, class: "panel", "aria-labelledby": "tab-" + p.id, hidden: true });
      p.section.append(h("h2", { t: p.title }));
      p.mount(p.section);
      holder.append(p.section);
      tabs.append(h("button", { type: "button", id: "tab-" + p.id, class: "tab", t: p.title,
        "aria-controls": "panel-" + p.id, on: { click: () => show(p.id) } }));
    });
  }

  function show(id) {
    state.current = id;
    panels.forEach((p) => {
      const on = p.id === id;
      p.section.hidden = !on;
      document.getElementById("tab-" + p.id).setAttribute("aria-current", on ? "page" : "false");
      if (on && p.show) p.show(p.section);
    });
    if (window.location.hash !== "#" + id) window.history.replaceState(null, "", "#" + id);
  }

  function showSignin(data) {
    state.csrf = null;
    document.getElementById("app").hidden = true;
    document.getElementById("who").hidden = true;
    document.getElementById("sign-out").hidden = true;
    document.getElementById("signin").hidden = false;
    const err = document.getElementById("signin-error");
    if (data && data.error && data.error !== "unauthorized") { err.hidden = false; err.textContent = errorText(data); }
    document.getElementById("signin-name").focus();
  }

  function signedIn(data) {
    state.csrf = data.csrf;
    state.name = data.name;
    document.getElementById("signin").hidden = true;
    document.getElementById("signin-error").hidden = true;
    const who = document.getElementById("who");
    who.hidden = false;
    who.textContent = data.name;
    document.getElementById("sign-out").hidden = false;
    document.getElementById("app").hidden = false;
    if (!document.getElementById("tabs").childElementCount) buildPanels();
    const wanted = window.location.hash.slice(1);
    show(panels.some((p) => p.id === wanted) ? wanted : panels[0].id);
  }

  async function start() {
    document.getElementById("lang").addEventListener("click", () => setLang(state.lang === "en" ? "zh" : "en"));
    document.getElementById("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const reply = await api("POST", "/v1/admin/session",
        { name: form.name.value.trim(), password: form.password.value });
      form.password.value = "";
      if (reply.ok) { signedIn(reply.data); return; }
      const err = document.getElementById("signin-error");
      err.hidden = false;
      err.textContent = errorText(reply.data, reply.status);
    });
    document.getElementById("sign-out").addEventListener("click", async () => {
      await api("DELETE", "/v1/admin/session");
      showSignin(null);
    });
    applyLang();
    const reply = await api("GET", "/v1/admin/session");
    if (reply.ok && reply.data.csrf) signedIn(reply.data); else showSignin(null);
  }

  /** A date or time as the admin reads it, in the browser's time zone. */
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  /** A table: columns are [word key, function(row) -> text or node]. */
  function table(columns, rows, empty) {
    if (!rows.length) return h("p", { class: "empty", t: empty || "nothing" });
    return h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, columns.map(([key]) => h("th", { scope: "col", t: key })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
  }

  window.GateAdmin = { T, h, field, api, say, errorText, panel, show, when, table, state, start, applyLang };
})();
