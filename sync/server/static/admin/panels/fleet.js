/* Fleet: each gate's sync state (last seen, backlog, clock offset, stale). */
"use strict";
(function () {
  const { h, api, say, when, table, errorText, panel } = window.GateAdmin;

  panel({
    id: "fleet",
    title: "panel_fleet",
    mount(section) {
      const minutes = h("input", { type: "number", name: "stale_minutes", min: 1, max: 525600, value: 60, class: "short" });
      const out = h("div", { class: "fleet-table" });
      const note = h("p", { class: "result", hidden: true });
      const load = async () => {
        const reply = await api("GET", "/v1/admin/gates?stale_minutes=" + encodeURIComponent(minutes.value));
        if (!reply.ok) { say(note, false, errorText(reply.data, reply.status)); return; }
        note.hidden = true;
        out.replaceChildren(table([
          ["col_gate", (g) => g.gate_id],
          ["col_state", (g) => h("span", { class: g.stale ? "badge bad" : "badge good", t: g.stale ? "stale" : "fresh" })],
          ["col_last_seen", (g) => when(g.last_seen)],
          ["col_backlog", (g) => g.last_backlog === null ? "—" : String(g.last_backlog)],
          ["col_clock_offset", (g) => g.last_clock_offset_ms === null ? "—" : (g.last_clock_offset_ms / 1000).toFixed(1) + " s"],
          ["col_enrolled", (g) => when(g.enrolled_at)],
        ], reply.data.gates, "no_gates"));
      };
      section.append(
        h("div", { class: "row" }, GateAdmin.field("f_stale_minutes", minutes),
          h("button", { type: "button", class: "primary", t: "refresh", on: { click: load } })),
        note, out);
      this.load = load;
    },
    show() { this.load(); },
  });
})();
