/* Passes: issue one; bulk for a compound (a job, progress polled); a household's passes
   with revoke, reissue, expire and their cards. */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;
  const KINDS = ["resident", "tenant", "worker", "delivery", "vehicle", "visitor"];
  const POLL_MS = 400;

  function kindSelect(name) {
    return h("select", { name }, KINDS.map((k) => h("option", { value: k, t: "kind_" + k })));
  }

  function formValues(form) {
    const out = {};
    new FormData(form).forEach((value, key) => {
      const text = String(value).trim();
      if (text !== "") out[key] = text;
    });
    return out;
  }

  function issueForm() {
    const out = h("div", { class: "result", hidden: true });
    const form = h("form", { class: "grid", id: "issue-form" },
      field("f_kind", kindSelect("kind")),
      field("f_household", h("input", { name: "household", required: true, maxlength: 64, tPlaceholder: "eg_household" })),
      field("f_name", h("input", { name: "name", required: true, maxlength: 64 })),
      field("f_unit", h("input", { name: "unit", maxlength: 64, tPlaceholder: "eg_unit" })),
      field("f_scope", h("input", { name: "scope", required: true, maxlength: 200, tPlaceholder: "eg_scope" })),
      field("f_days", h("input", { name: "days", type: "number", min: 1, max: 3660, value: 90 })),
      field("f_valid_from", h("input", { name: "valid_from", maxlength: 40, tPlaceholder: "eg_date" })),
      field("f_valid_until", h("input", { name: "valid_until", maxlength: 40, tPlaceholder: "eg_date" }), "valid_until_hint"),
      field("f_quota", h("input", { name: "quota", maxlength: 20, tPlaceholder: "eg_quota" })),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", t: "issue" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = formValues(form);
      if (body.valid_until) delete body.days; // a last day given wins over the day count
      if (body.days) body.days = Number(body.days);
      const reply = await api("POST", "/v1/admin/passes", body);
      if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
      say(out, true, T("issued") + " " + reply.data.pass_id + " · " + reply.data.display_name + " · " + T("until") + " " + when(reply.data.valid_until));
      out.append(" ", h("a", { href: "/v1/admin/passes/" + reply.data.pass_id + "/card.png", target: "_blank", rel: "noopener", t: "open_png" }));
    });
    return [h("h3", { t: "issue_title" }), form, out];
  }

  function bulkForm() {
    const out = h("div", { class: "result", hidden: true });
    const bar = h("progress", { max: 1, value: 0, hidden: true, id: "bulk-progress" });
    const count = h("span", { class: "count", id: "bulk-count" });
    const per = h("select", { name: "per" },
      h("option", { value: "person", t: "per_person" }), h("option", { value: "household", t: "per_household" }));
    const form = h("form", { class: "grid", id: "bulk-form" },
      field("f_compound", h("input", { name: "compound", required: true, maxlength: 64, tPlaceholder: "eg_compound" })),
      field("f_kind", kindSelect("kind")),
      field("f_per", per),
      field("f_days", h("input", { name: "days", type: "number", min: 1, max: 3660, value: 90, required: true })),
      field("f_roles", h("input", { name: "roles", maxlength: 64, tPlaceholder: "eg_roles" })),
      field("f_quota", h("input", { name: "quota", maxlength: 20, tPlaceholder: "eg_quota" })),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", t: "bulk_start" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = formValues(form);
      body.days = Number(body.days);
      const reply = await api("POST", "/v1/admin/passes/bulk", body);
      if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
      bar.hidden = false;
      out.hidden = true;
      let job = reply.data;
      while (job.state === "running") {
        bar.max = Math.max(job.total, 1);
        bar.value = job.done;
        count.textContent = job.done + " / " + job.total;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        const poll = await api("GET", "/v1/admin/jobs/" + job.job_id);
        if (!poll.ok) { say(out, false, errorText(poll.data, poll.status)); return; }
        job = poll.data;
      }
      bar.max = Math.max(job.total, 1);
      bar.value = job.total;
      count.textContent = job.done + " / " + job.total;
      if (job.state === "done") say(out, true, T("bulk_done") + " " + T("issued_n") + " " + job.result.issued + " · " + T("skipped_n") + " " + job.result.skipped);
      else say(out, false, errorText({ error: job.error, detail: job.detail }));
    });
    return [h("h3", { t: "bulk_title" }), form, h("div", { class: "row" }, bar, count), out];
  }

  function householdLookup() {
    const household = h("input", { name: "household", maxlength: 64, id: "lookup-household", tPlaceholder: "eg_household" });
    const reason = h("input", { name: "reason", maxlength: 200, id: "revoke-reason", tPlaceholder: "eg_reason" });
    const days = h("input", { name: "reissue_days", type: "number", min: 1, max: 3660, class: "short" });
    const out = h("div", { class: "result", hidden: true });
    const list = h("div", { id: "household-passes" });
    const load = async () => {
      const id = household.value.trim();
      if (!id) return;
      const reply = await api("GET", "/v1/admin/households/" + encodeURIComponent(id) + "/passes");
      if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
      const act = (p, what, key, body) => h("button", {
        type: "button", class: what === "revoke" || what === "expire" ? "danger small" : "small",
        "data-action": what, "data-pass": p.pass_id, t: key,
        on: { click: async () => {
          if (what === "revoke" && !reason.value.trim()) { say(out, false, T("need_reason")); reason.focus(); return; }
          const r = await api("POST", "/v1/admin/passes/" + encodeURIComponent(p.pass_id) + "/" + what, body());
          if (!r.ok) { say(out, false, errorText(r.data, r.status)); return; }
          say(out, true, T("done_" + what) + " " + p.pass_id + (r.data.pass_id && r.data.pass_id !== p.pass_id ? " → " + r.data.pass_id : ""));
          load();
        } } });
      list.replaceChildren(table([
        ["col_pass", (p) => p.pass_id],
        ["col_kind", (p) => T("kind_" + p.kind)],
        ["col_until", (p) => when(p.valid_until)],
        ["col_state", (p) => h("span", { class: p.state === "active" ? "badge good" : "badge bad", t: "pass_" + p.state })],
        ["col_reason", (p) => p.revoke_reason || ""],
        ["col_actions", (p) => p.state === "active" ? h("span", { class: "actions" },
          act(p, "revoke", "revoke", () => ({ reason: reason.value.trim() })),
          act(p, "reissue", "reissue", () => (days.value ? { days: Number(days.value) } : {})),
          act(p, "expire", "expire", () => undefined),
          h("a", { href: "/v1/admin/passes/" + encodeURIComponent(p.pass_id) + "/card.png", target: "_blank", rel: "noopener", class: "button small", t: "open_png" }))
          : (p.state === "key-retired" || p.state === "unverifiable" ? act(p, "reissue", "reissue", () => (days.value ? { days: Number(days.value) } : {})) : "")],
      ], reply.data.passes, "no_passes"),
      h("p", {}, h("a", { href: window.GateAdminCards ? window.GateAdminCards.cardsLink({ household: id }) : "#",
        target: "_blank", rel: "noopener", class: "button", id: "household-cards", t: "open_household_cards" })));
    };
    const form = h("form", { class: "grid" },
      field("f_household", household),
      field("f_reason", reason),
      field("f_reissue_days", days, "reissue_days_hint"),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", t: "show_passes" })));
    form.addEventListener("submit", (event) => { event.preventDefault(); out.hidden = true; load(); });
    return [h("h3", { t: "household_title" }), form, out, list];
  }

  panel({
    id: "passes",
    title: "panel_passes",
    mount(section) {
      section.append(...issueForm(), ...householdLookup(), ...bulkForm());
    },
  });
})();
