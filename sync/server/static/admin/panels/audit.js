/* The audit trail: what each admin (or the shared token) did, newest first. */
"use strict";
(function () {
  const { h, api, say, when, table, errorText, panel } = window.GateAdmin;

  panel({
    id: "audit",
    title: "panel_audit",
    mount(section) {
      const out = h("p", { class: "result", hidden: true });
      const list = h("div", { id: "audit-list" });
      this.load = async () => {
        const reply = await api("GET", "/v1/admin/audit?limit=200");
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        out.hidden = true;
        list.replaceChildren(table([
          ["col_at", (r) => when(r.at)],
          ["col_by", (r) => r.by],
          ["col_action", (r) => h("span", { t: "act_" + r.action.replace(".", "_") })],
          ["col_subject", (r) => r.subject],
          ["col_detail", (r) => r.detail],
        ], reply.data.audit, "no_audit"));
      };
      section.append(h("button", { type: "button", class: "primary", t: "refresh", on: { click: () => this.load() } }), out, list);
    },
    show() { this.load(); },
  });
})();
