/* Compounds: each compound's gates and household exit quota (set N/D, clear; who set it and
   when, the history), and the quota conflicts: households two gates let out beyond it. */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;

  function quotaText(quota) {
    return quota ? quota.replace(/^(\d+)\/(\d+)$/, (_, n, d) => T("quota_n_per_d").replace("{n}", n).replace("{d}", d)) : T("no_quota");
  }

  panel({
    id: "compounds",
    title: "panel_compounds",
    mount(section) {
      const out = h("div", { class: "result", hidden: true, id: "quota-result" });
      const conflictNote = h("div", { class: "result", hidden: true });
      const list = h("div", { id: "compounds-list" });
      const conflicts = h("div", { id: "conflicts-list" });
      const compound = h("input", { name: "compound", required: true, maxlength: 24, pattern: "[0-9A-Za-z][0-9A-Za-z_\\-]{0,23}", tPlaceholder: "eg_compound" });
      const quota = h("input", { name: "exit_quota", maxlength: 5, pattern: "[1-9][0-9]?/[1-9][0-9]?", tPlaceholder: "eg_quota" });
      const form = h("form", { class: "grid", id: "quota-form" },
        field("f_compound", compound),
        field("f_exit_quota", quota, "exit_quota_hint"),
        h("div", { class: "actions" },
          h("button", { type: "submit", class: "primary", id: "quota-set", t: "quota_set" }),
          h("button", { type: "button", id: "quota-clear", t: "quota_clear" })));

      const put = async (name, value) => {
        const reply = await api("PUT", "/v1/admin/compounds/" + encodeURIComponent(name), { exit_quota: value });
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        say(out, true, (value ? T("quota_was_set") + " " + quotaText(value) : T("quota_was_cleared")) + " · " + name);
        load();
        loadConflicts(); // the conflicts are counted against the quota in force
      };

      const load = async () => {
        const reply = await api("GET", "/v1/admin/compounds");
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        list.replaceChildren(table([
          ["col_compound", (c) => c.compound],
          ["col_gates", (c) => c.gates.length ? c.gates.join(", ") : "—"],
          ["col_exit_quota", (c) => h("span", { class: c.exit_quota ? "badge warn" : "badge good" }, quotaText(c.exit_quota))],
          ["col_set_by", (c) => c.set_by || "—"],
          ["col_set_at", (c) => when(c.set_at)],
          ["col_quota_history", (c) => h("ul", { class: "plain" }, c.history.slice().reverse().map((e) =>
            h("li", {}, when(e.set_at) + " · " + e.set_by + " · " + quotaText(e.exit_quota))))],
          ["col_actions", (c) => c.exit_quota ? h("button", {
            type: "button", class: "small", "data-clear": c.compound, t: "quota_clear",
            on: { click: () => put(c.compound, null) } }) : ""],
        ], reply.data.compounds, "no_compounds"));
      };

      const since = h("input", { name: "since", maxlength: 40, tPlaceholder: "eg_since_default" });
      const which = h("input", { name: "compound", maxlength: 24, tPlaceholder: "eg_all_compounds" });
      const loadConflicts = async () => {
        const query = new URLSearchParams();
        if (which.value.trim()) query.set("compound", which.value.trim());
        if (since.value.trim()) query.set("since", since.value.trim());
        const reply = await api("GET", "/v1/admin/quota-conflicts?" + query.toString());
        if (!reply.ok) { say(conflictNote, false, errorText(reply.data, reply.status)); return; }
        conflictNote.hidden = true;
        const over = (c, e) => c.over_quota.some((o) => o.gate_id === e.gate_id && o.at === e.at);
        conflicts.replaceChildren(
          h("p", { class: "hint" }, T("conflicts_window") + " " + when(reply.data.since) + " – " + when(reply.data.until)),
          table([
            ["col_compound", (c) => c.compound],
            ["col_household", (c) => c.household_id],
            ["col_exit_quota", (c) => quotaText(c.quota)],
            ["col_exits", (c) => h("ul", { class: "plain" }, c.exits.map((e) => h("li", {},
              e.gate_id + " · " + when(e.at) + " ",
              over(c, e) ? h("span", { class: "badge bad", t: "beyond_quota" }) : null)))],
          ], reply.data.conflicts, "no_conflicts"));
      };
      const conflictForm = h("form", { class: "grid", id: "conflicts-form" },
        field("f_conflict_compound", which),
        field("f_since", since),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", t: "show_conflicts" })));
      conflictForm.addEventListener("submit", (event) => { event.preventDefault(); loadConflicts(); });

      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!quota.value.trim()) { say(out, false, T("quota_needed")); return; }
        put(compound.value.trim(), quota.value.trim());
      });
      form.querySelector("#quota-clear").addEventListener("click", () => {
        if (!form.reportValidity()) return;
        put(compound.value.trim(), null);
      });

      section.append(
        h("p", { class: "hint", t: "compounds_hint" }),
        form, out, list,
        h("h3", { t: "conflicts_title" }),
        h("p", { class: "hint", t: "conflicts_hint" }),
        conflictForm, conflictNote, conflicts);
      this.load = () => { load(); loadConflicts(); };
    },
    show() { this.load(); },
    lang(section) { if (!section.hidden) this.load(); }, // rows built with T() are redrawn
  });
})();
