/* Residents import: pick a CSV/XLSX file, check it (dry run), see row/column errors, import. */
"use strict";
(function () {
  const { h, api, say, T, errorText, panel, field, table } = window.GateAdmin;

  function summaryText(data) {
    const s = data.summary;
    return T("rows") + " " + data.rows + " · " + T("persons") + " +" + s.persons_added + " ~" +
      s.persons_updated + " =" + s.persons_unchanged + " · " + T("households") + " +" +
      s.households_added + " ~" + s.households_updated + " =" + s.households_unchanged;
  }

  panel({
    id: "residents",
    title: "panel_residents",
    mount(section) {
      const file = h("input", { type: "file", name: "roster", accept: ".csv,.xlsx,.xlsm" });
      const check = h("button", { type: "button", class: "primary", t: "check_file" });
      const doImport = h("button", { type: "button", class: "danger", t: "do_import", disabled: true });
      const out = h("p", { class: "result", hidden: true });
      const problems = h("ul", { class: "problems", hidden: true });
      let checked = null; // the File that passed its dry run

      const send = async (dryRun) => {
        const chosen = file.files[0];
        if (!chosen) { say(out, false, T("pick_file")); return null; }
        const reply = await api("POST", "/v1/admin/residents/import?filename=" +
          encodeURIComponent(chosen.name) + "&dry_run=" + dryRun, undefined, { raw: chosen });
        problems.replaceChildren();
        problems.hidden = true;
        if (!reply.ok) {
          say(out, false, errorText(reply.data, reply.status).split("\n")[0]);
          const lines = (reply.data && reply.data.problems) || [];
          lines.forEach((line) => problems.append(h("li", {}, line)));
          problems.hidden = !lines.length;
          return null;
        }
        const ignored = reply.data.ignored_columns.length ? " · " + T("ignored_columns") + ": " + reply.data.ignored_columns.join(", ") : "";
        say(out, true, (dryRun ? T("dry_run_done") : T("import_done")) + " " + summaryText(reply.data) + ignored);
        return chosen;
      };
      file.addEventListener("change", () => { checked = null; doImport.disabled = true; out.hidden = true; });
      check.addEventListener("click", async () => {
        checked = await send(true);
        doImport.disabled = !checked;
      });
      doImport.addEventListener("click", async () => {
        if (!checked || file.files[0] !== checked) return;
        await send(false);
        doImport.disabled = true;
        checked = null;
      });
      const compound = h("input", { name: "compound", maxlength: 64, id: "residents-compound", tPlaceholder: "eg_compound" });
      const listed = h("div", { id: "residents-list" });
      const lookup = h("form", { class: "row" }, field("f_compound", compound),
        h("button", { type: "submit", class: "primary", t: "show_residents" }));
      lookup.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!compound.value.trim()) return;
        const reply = await api("GET", "/v1/admin/residents?compound=" + encodeURIComponent(compound.value.trim()));
        if (!reply.ok) { listed.replaceChildren(h("p", { class: "result error" }, errorText(reply.data, reply.status))); return; }
        listed.replaceChildren(table([
          ["col_household", (r) => r.household_id],
          ["col_unit", (r) => r.unit],
          ["col_name", (r) => r.name],
          ["col_phone", (r) => r.phone],
          ["col_role", (r) => h("span", { t: "role_" + r.role })],
        ], reply.data.residents, "no_residents"));
      });
      section.append(
        h("p", { class: "hint", t: "residents_hint" }),
        field("f_file", file),
        h("div", { class: "row" }, check, doImport),
        out, problems,
        h("h3", { t: "residents_list_title" }), lookup, listed);
    },
  });
})();
