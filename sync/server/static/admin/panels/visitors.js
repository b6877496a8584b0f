/* Visitors: request a visit for a household (or issue one at once); the pending requests
   first with approve (the pass: its phone PNG and its text), reject and cancel (a reason);
   then the others, filtered by host; a request's history. */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;
  const BASE = "/v1/admin/visitors";

  /** A datetime-local value as an ISO time with its offset (the server needs one). */
  function instant(value) {
    if (!value) return undefined;
    const moment = new Date(value);
    return isNaN(moment) ? value : moment.toISOString();
  }

  function visitBody(form) {
    const get = (name) => form.elements[name].value.trim();
    const body = { host: get("host"), name: get("name"), phone: get("phone"), reason: get("reason") };
    if (get("plate")) body.plate = get("plate");
    if (get("from")) body.from = instant(get("from"));
    if (get("until")) body.until = instant(get("until"));
    else if (get("hours")) body.hours = Number(get("hours"));
    body.once = form.elements.once.checked;
    return body;
  }

  function stateBadge(r) {
    const tone = { pending: "warn", approved: "good", rejected: "bad", cancelled: "bad" }[r.state] || "";
    return h("span", { class: "badge " + tone, t: "vstate_" + r.state });
  }

  panel({
    id: "visitors",
    title: "panel_visitors",
    mount(section) {
      const out = h("div", { class: "result", hidden: true, id: "visit-result" });
      const passBox = h("div", { class: "visit-pass", id: "visit-pass", hidden: true });
      const pending = h("div", { id: "visitors-pending" });
      const others = h("div", { id: "visitors-others" });
      const historyBox = h("div", { id: "visit-history" });
      const reason = h("input", { id: "visit-decision-reason", maxlength: 200, tPlaceholder: "eg_visit_refusal" });
      const hostFilter = h("input", { id: "visitors-host", maxlength: 24, tPlaceholder: "eg_household" });

      const form = h("form", { class: "grid", id: "visit-form" },
        field("f_host", h("input", { name: "host", required: true, maxlength: 24, tPlaceholder: "eg_household" })),
        field("f_visitor_name", h("input", { name: "name", required: true, maxlength: 200 })),
        field("f_visitor_phone", h("input", { name: "phone", required: true, maxlength: 200, inputmode: "tel" })),
        field("f_visit_reason", h("input", { name: "reason", required: true, maxlength: 200, tPlaceholder: "eg_visit_reason" })),
        field("f_plate", h("input", { name: "plate", maxlength: 200 })),
        field("f_visit_from", h("input", { name: "from", type: "datetime-local" }), "visit_from_hint"),
        field("f_visit_until", h("input", { name: "until", type: "datetime-local" }), "visit_until_hint"),
        field("f_hours", h("input", { name: "hours", type: "number", min: 1, max: 168, value: 4 })),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "once" }), h("span", { t: "f_once" })),
        h("div", { class: "actions" },
          h("button", { type: "submit", class: "primary", id: "visit-request", t: "visit_request" }),
          h("button", { type: "button", id: "visit-issue", t: "visit_issue_now" })));

      const showPass = (row, text) => {
        const png = BASE + "/" + row.request_id + "/pass.png";
        passBox.hidden = false;
        passBox.replaceChildren(
          h("h3", { t: "visit_pass_title" }),
          h("p", {}, T("col_visitor") + ": " + row.name + " · " + T("col_host") + ": " + row.household_id +
            " · " + when(row.starts_at) + " – " + when(row.ends_at)),
          h("img", { src: png, alt: T("visit_pass_png") + " " + row.pass_id, class: "visit-png", id: "visit-png" }),
          h("div", { class: "links" },
            h("a", { href: png, download: "visitor-" + row.request_id + ".png", class: "button", t: "visit_save_png" })),
          field("visit_pass_text", h("textarea", { readonly: true, rows: 3, id: "visit-pass-text", class: "pass-text" }, text)));
      };

      const openPass = async (row) => {
        const reply = await api("GET", BASE + "/" + row.request_id + "/pass");
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        showPass(row, reply.data.text);
      };

      const showHistory = async (row) => {
        const reply = await api("GET", BASE + "/" + row.request_id);
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        historyBox.replaceChildren(
          h("h3", {}, T("visit_history") + " #" + row.request_id + " · " + row.name),
          table([
            ["col_state", (e) => stateBadge(e)],
            ["col_by", (e) => e.by],
            ["col_at", (e) => when(e.at)],
            ["col_note", (e) => e.note || ""],
          ], reply.data.history, "nothing"));
      };

      const decide = async (row, action) => {
        const body = {};
        if (action !== "approve") body.reason = reason.value.trim();
        const reply = await api("POST", BASE + "/" + row.request_id + "/" + action, body);
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        say(out, true, T("vdone_" + action) + " #" + row.request_id + " · " + row.name);
        if (action === "approve") showPass(reply.data.request, reply.data.text);
        else reason.value = "";
        load();
      };

      // attrs carry the words (t) and data-action, so the words test sees every key.
      const button = (row, attrs, on) => h("button", Object.assign({
        type: "button", class: "small", "data-visit": row.request_id, on: { click: on } }, attrs));

      const columns = (actions) => [
        ["col_request", (r) => "#" + r.request_id],
        ["col_host", (r) => r.household_id],
        ["col_visitor", (r) => r.name],
        ["col_phone", (r) => r.phone],
        ["col_visit_reason", (r) => r.reason + (r.plate ? " · " + r.plate : "")],
        ["col_period", (r) => when(r.starts_at) + " – " + when(r.ends_at) + (r.once ? " · " + T("once") : "")],
        ["col_state", (r) => stateBadge(r)],
        ["col_requested_by", (r) => r.requested_by],
        ["col_decided", (r) => r.decided_by ? r.decided_by + " · " + when(r.decided_at) + (r.note ? " · " + r.note : "") : "—"],
        ["col_actions", (r) => h("div", { class: "actions" }, actions(r))],
      ];

      const load = async () => {
        const host = hostFilter.value.trim();
        const [waiting, all] = await Promise.all([
          api("GET", BASE + "?pending=true"),
          api("GET", BASE + (host ? "?host=" + encodeURIComponent(host) : "")),
        ]);
        const failed = [waiting, all].find((r) => !r.ok);
        if (failed) { say(out, false, errorText(failed.data, failed.status)); return; }
        pending.replaceChildren(table(columns((r) => [
          button(r, { t: "approve", "data-action": "approve", class: "small primary" }, () => decide(r, "approve")),
          button(r, { t: "visit_reject", "data-action": "reject" }, () => decide(r, "reject")),
          button(r, { t: "visit_cancel", "data-action": "cancel" }, () => decide(r, "cancel")),
          button(r, { t: "visit_history", "data-action": "history" }, () => showHistory(r)),
        ]), waiting.data.requests, "no_pending_visits"));
        const done = all.data.requests.filter((r) => r.state !== "pending").reverse();
        others.replaceChildren(table(columns((r) => [
          r.state === "approved" ? button(r, { t: "visit_show_pass", "data-action": "pass" }, () => openPass(r)) : null,
          button(r, { t: "visit_history", "data-action": "history" }, () => showHistory(r)),
        ]), done, "no_visits"));
      };

      const send = async (path) => {
        if (!form.reportValidity()) return;
        const reply = await api("POST", path, visitBody(form));
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        const row = reply.data.request;
        if (reply.data.text) {
          say(out, true, T("visit_issued") + " #" + row.request_id + " · " + row.name);
          showPass(row, reply.data.text);
        } else {
          say(out, true, T("visit_requested") + " #" + row.request_id + " · " + row.name);
        }
        form.reset();
        load();
      };
      form.addEventListener("submit", (event) => { event.preventDefault(); send(BASE); });
      form.querySelector("#visit-issue").addEventListener("click", () => send(BASE + "/issue"));

      section.append(
        h("p", { class: "hint", t: "visitors_hint" }),
        h("h3", { t: "visit_new_title" }), form, out, passBox,
        h("h3", { t: "visits_pending_title" }),
        h("div", { class: "row" }, field("f_decision_reason", reason)),
        pending,
        h("h3", { t: "visits_others_title" }),
        h("div", { class: "row" }, field("f_filter_host", hostFilter),
          h("button", { type: "button", class: "primary", id: "visitors-filter", t: "show_visits", on: { click: () => load() } })),
        others, historyBox);
      this.load = load;
    },
    show() { this.load(); },
    lang(section) { if (!section.hidden) this.load(); }, // rows built with T() are redrawn
  });
})();
