/* Overview: the charts of a window (today by default; yesterday, the last 7 days, or
   from/to dates; optionally some gates) drawn by charts.js from /v1/admin/stats, and the
   gates' sync state from /v1/admin/gates. The first panel an admin sees. */
"use strict";
(function () {
  const { h, api, say, T, errorText, panel, field, state } = window.GateAdmin;

  /** A local date as YYYY-MM-DD, days from today. */
  function day(offset) {
    const d = new Date();
    d.setDate(d.getDate() + offset);
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }

  /** Gate ids typed with commas or spaces between them. */
  function gateList(text) {
    return text.split(/[\s,，]+/).map((g) => g.trim()).filter(Boolean);
  }

  panel({
    id: "overview",
    title: "panel_overview",
    mount(section) {
      const range = h("select", { name: "range", id: "overview-range" },
        ["today", "yesterday", "week", "dates"].map((key) => h("option", { value: key, t: "range_" + key })));
      const from = h("input", { type: "date", name: "since", id: "overview-since" });
      const to = h("input", { type: "date", name: "until", id: "overview-until" });
      const gates = h("input", { name: "gates", id: "overview-gates", maxlength: 2000, tPlaceholder: "eg_gates" });
      const dates = h("div", { class: "grid", hidden: true },
        field("f_from_date", from), field("f_to_date", to));
      const note = h("p", { class: "result", hidden: true, id: "overview-note" });
      const loading = h("p", { class: "loading", hidden: true, id: "overview-loading", role: "status", t: "loading" });
      const box = h("div", { class: "overview-charts", id: "overview-charts" });
      range.addEventListener("change", () => { dates.hidden = range.value !== "dates"; });
      let drawn = null;
      let asked = 0;

      const query = () => {
        const params = new URLSearchParams();
        const span = {
          today: [null, null], yesterday: [day(-1), day(-1)], week: [day(-6), day(0)],
          dates: [from.value, to.value],
        }[range.value];
        if (span[0]) params.set("since", span[0]);
        if (span[1]) params.set("until", span[1]);
        gateList(gates.value).forEach((g) => params.append("gate", g));
        return params;
      };

      const draw = () => {
        if (drawn) window.GateCharts.render(box, drawn.stats, state.lang === "en" ? "en" : "zh-CN", drawn.fleet);
      };

      const load = async () => {
        const mine = ++asked; // an older answer arriving late is not drawn over a newer one
        loading.hidden = false;
        box.setAttribute("aria-busy", "true");
        const [stats, fleet] = await Promise.all([
          api("GET", "/v1/admin/stats?" + query().toString()),
          api("GET", "/v1/admin/gates"),
        ]);
        if (mine !== asked) return;
        loading.hidden = true;
        box.removeAttribute("aria-busy");
        const refused = !stats.ok ? stats : (!fleet.ok ? fleet : null);
        if (refused) {
          say(note, false, errorText(refused.data, refused.status));
          drawn = null;
          box.replaceChildren();
          return;
        }
        note.hidden = true;
        drawn = { stats: stats.data, fleet: fleet.data };
        draw();
      };
      const form = h("form", { id: "overview-form" },
        h("div", { class: "grid" },
          field("f_window", range),
          field("f_gates", gates, "gates_hint")),
        dates,
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "overview-show", t: "show_charts" })));
      form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
      section.append(h("p", { class: "hint", t: "overview_hint" }), form, note, loading, box);
      this.load = load;
      this.draw = draw;
    },
    show() { this.load(); },
    lang() { this.draw(); }, // the charts' words are drawn, not data-t: redraw them
  });
})();
