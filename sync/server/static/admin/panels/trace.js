/* Trace: the four traces of `gate-sync trace` — the entries of gates between two times,
   every entry of a pass, of a household, and who was inside (a compound's gates, or some
   gates) at a moment — as a table, and as CSV or XLSX downloads (GET links the session
   cookie signs in). */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;
  const KINDS = ["gates", "pass", "household", "inside"];
  // Which fields each trace takes.
  const FIELDS = {
    gates: ["gates", "since", "until"],
    pass: ["pass", "since", "until"],
    household: ["household", "since", "until"],
    inside: ["compound", "gates", "at"],
  };
  const TIMES = new Set(["time", "recorded_time", "inside_since"]);

  function gateList(text) {
    return text.split(/[\s,，]+/).map((g) => g.trim()).filter(Boolean);
  }

  /** A column's words when the table has them, else its name. */
  function header(column) {
    return window.AdminWords["tc_" + column] ? "tc_" + column : column;
  }

  panel({
    id: "trace",
    title: "panel_trace",
    mount(section) {
      const kind = h("select", { name: "kind", id: "trace-kind" },
        KINDS.map((key) => h("option", { value: key, t: "trace_" + key })));
      const inputs = {
        gates: h("input", { name: "gates", maxlength: 2000, tPlaceholder: "eg_gates" }),
        pass: h("input", { name: "pass", maxlength: 64, pattern: "[0-9A-Za-z][0-9A-Za-z_.\\-]{0,63}" }),
        household: h("input", { name: "household", maxlength: 64, pattern: "[0-9A-Za-z][0-9A-Za-z_.\\-]{0,63}" }),
        compound: h("input", { name: "compound", maxlength: 24, tPlaceholder: "eg_compound" }),
        since: h("input", { type: "datetime-local", name: "since" }),
        until: h("input", { type: "datetime-local", name: "until" }),
        at: h("input", { type: "datetime-local", name: "at" }),
      };
      const fields = {
        gates: field("f_gates", inputs.gates, "trace_gates_hint"),
        pass: field("f_trace_pass", inputs.pass),
        household: field("f_household", inputs.household),
        compound: field("f_compound", inputs.compound, "trace_compound_hint"),
        since: field("f_trace_since", inputs.since),
        until: field("f_trace_until", inputs.until),
        at: field("f_trace_at", inputs.at, "trace_at_hint"),
      };
      const note = h("p", { class: "result", hidden: true, id: "trace-note" });
      const loading = h("p", { class: "loading", hidden: true, role: "status", t: "loading" });
      const summary = h("p", { class: "hint", id: "trace-summary", hidden: true });
      const out = h("div", { id: "trace-table" });
      const csv = h("a", { class: "button", id: "trace-csv", download: "", t: "download_csv" });
      const xlsx = h("a", { class: "button", id: "trace-xlsx", download: "", t: "download_xlsx" });
      const downloads = h("div", { class: "downloads", hidden: true }, csv, xlsx);
      let shown = null;

      const arrange = () => {
        for (const [name, box] of Object.entries(fields)) box.hidden = !FIELDS[kind.value].includes(name);
      };
      kind.addEventListener("change", arrange);

      /** The path and query of the trace the form asks for; throws a word key when incomplete. */
      const request = async () => {
        const params = new URLSearchParams();
        const which = kind.value;
        const value = (name) => inputs[name].value.trim();
        if (FIELDS[which].includes("since") && value("since")) params.set("since", value("since"));
        if (FIELDS[which].includes("until") && value("until")) params.set("until", value("until"));
        let gates = FIELDS[which].includes("gates") ? gateList(value("gates")) : [];
        if (which === "gates") return { path: "/v1/admin/trace/gates", params, gates };
        if (which === "pass") {
          if (!value("pass")) throw { word: "trace_needs_pass" };
          return { path: "/v1/admin/trace/pass/" + encodeURIComponent(value("pass")), params, gates };
        }
        if (which === "household") {
          if (!value("household")) throw { word: "trace_needs_household" };
          return { path: "/v1/admin/trace/household/" + encodeURIComponent(value("household")), params, gates };
        }
        if (value("at")) params.set("at", value("at"));
        if (value("compound")) {
          // The centre knows each gate's compound: a compound's trace is its gates'.
          const reply = await api("GET", "/v1/admin/compounds");
          if (!reply.ok) throw { reply };
          const found = reply.data.compounds.find((c) => c.compound === value("compound"));
          if (!found || !found.gates.length) throw { word: "trace_compound_no_gates" };
          if (!gates.length) gates = found.gates;
          params.set("compound", value("compound"));
        }
        if (!gates.length) throw { word: "trace_needs_gates" };
        return { path: "/v1/admin/trace/inside", params, gates };
      };

      const link = (asked, format) => {
        const params = new URLSearchParams(asked.params);
        asked.gates.forEach((g) => params.append("gate", g));
        params.set("format", format);
        return asked.path + "?" + params.toString();
      };

      const draw = () => {
        if (!shown) return;
        const { data } = shown;
        summary.hidden = false;
        summary.textContent = data.truncated
          ? T("trace_truncated").replace("{n}", data.rows.length).replace("{count}", data.count)
          : T("trace_count").replace("{count}", data.count);
        summary.className = data.truncated ? "hint warn" : "hint";
        out.replaceChildren(table(data.columns.map((c) => [header(c),
          (row) => (TIMES.has(c) ? when(row[c]) : (row[c] === null || row[c] === undefined ? "" : String(row[c])))]),
        data.rows, "no_trace_rows"));
      };

      /** No table and no downloads: what is shown always matches the links. */
      const clear = () => {
        shown = null;
        out.replaceChildren();
        summary.hidden = true;
        downloads.hidden = true;
      };

      const load = async () => {
        let asked;
        loading.hidden = false;
        try {
          asked = await request();
        } catch (problem) {
          loading.hidden = true;
          clear();
          say(note, false, problem.word ? T(problem.word) : errorText(problem.reply.data, problem.reply.status));
          return;
        }
        const params = new URLSearchParams(asked.params);
        asked.gates.forEach((g) => params.append("gate", g));
        const reply = await api("GET", asked.path + "?" + params.toString());
        loading.hidden = true;
        if (!reply.ok) {
          clear();
          say(note, false, errorText(reply.data, reply.status));
          return;
        }
        note.hidden = true;
        shown = { data: reply.data };
        csv.href = link(asked, "csv");
        xlsx.href = link(asked, "xlsx");
        downloads.hidden = false;
        draw();
      };

      const form = h("form", { id: "trace-form" },
        h("div", { class: "grid" }, field("f_trace_kind", kind), ...Object.values(fields)),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "trace-show", t: "show_trace" })));
      form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
      arrange();
      section.append(h("p", { class: "hint", t: "trace_hint" }), form, note, loading, summary, downloads, out);
      this.draw = draw;
    },
    lang() { this.draw(); }, // the summary and the times are written with T() and when()
  });
})();
