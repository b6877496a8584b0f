/* Home isolations: order one (from, until, note), lift early, the history. */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;

  panel({
    id: "isolations",
    title: "panel_isolations",
    mount(section) {
      const out = h("div", { class: "result", hidden: true });
      const list = h("div", { id: "isolations-list" });
      const form = h("form", { class: "grid", id: "isolate-form" },
        field("f_household", h("input", { name: "household", required: true, maxlength: 64, tPlaceholder: "eg_household" })),
        field("f_from", h("input", { name: "start", maxlength: 40, tPlaceholder: "eg_date_now" })),
        field("f_until", h("input", { name: "until", required: true, maxlength: 40, tPlaceholder: "eg_date" })),
        field("f_note", h("input", { name: "note", maxlength: 200 })),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", t: "isolate" })));
      const load = async () => {
        const reply = await api("GET", "/v1/admin/isolations");
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        const rows = reply.data.isolations.slice().reverse();
        list.replaceChildren(table([
          ["col_household", (r) => r.household_id],
          ["col_from", (r) => when(r.starts_at)],
          ["col_until", (r) => when(r.ends_at)],
          ["col_note", (r) => r.note],
          ["col_state", (r) => h("span", { class: "badge " + (r.state === "active" ? "bad" : "good"), t: "iso_" + r.state })],
          ["col_actions", (r) => (r.state === "active" || r.state === "planned") ? h("button", {
            type: "button", class: "small", "data-lift": r.household_id, t: "lift",
            on: { click: async () => {
              const done = await api("POST", "/v1/admin/households/" + encodeURIComponent(r.household_id) + "/lift");
              if (!done.ok) { say(out, false, errorText(done.data, done.status)); return; }
              say(out, true, T("lifted") + " " + r.household_id);
              load();
            } } }) : ""],
        ], rows, "no_isolations"));
      };
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const body = {};
        new FormData(form).forEach((v, k) => { if (String(v).trim()) body[k] = String(v).trim(); });
        const reply = await api("POST", "/v1/admin/isolations", body);
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        say(out, true, T("isolated") + " " + reply.data.household + " " + when(reply.data.start) + " – " + when(reply.data.end));
        form.reset();
        load();
      });
      section.append(form, out, h("h3", { t: "history" }), list);
      this.load = load;
    },
    show() { this.load(); },
  });
})();
