/* Ledgers: the five XLSX ledgers of `gate-sync ledgers` (residents, isolations, returnees,
   fevers, visitors), each a GET download the session cookie signs in, over an optional
   window (from, to: dates or times in the display zone). */
"use strict";
(function () {
  const { h, panel, field } = window.GateAdmin;
  const LEDGERS = ["residents", "isolations", "returnees", "fevers", "visitors"];

  panel({
    id: "ledgers",
    title: "panel_ledgers",
    mount(section) {
      const since = h("input", { type: "date", name: "since", id: "ledgers-since" });
      const until = h("input", { type: "date", name: "until", id: "ledgers-until" });
      const links = LEDGERS.map((name) => h("a", {
        class: "button", id: "ledger-" + name, "data-ledger": name, download: "", t: "ledger_" + name,
      }));
      const update = () => {
        const params = new URLSearchParams();
        if (since.value) params.set("since", since.value);
        if (until.value) params.set("until", until.value);
        const query = params.toString();
        links.forEach((a) => {
          a.href = "/v1/admin/ledgers/" + a.dataset.ledger + ".xlsx" + (query ? "?" + query : "");
        });
      };
      since.addEventListener("input", update);
      until.addEventListener("input", update);
      update();
      section.append(
        h("p", { class: "hint", t: "ledgers_hint" }),
        h("div", { class: "grid" }, field("f_from_date", since), field("f_to_date", until, "ledgers_window_hint")),
        h("div", { class: "downloads", id: "ledger-links" }, links));
    },
  });
})();
