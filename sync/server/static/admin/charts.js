/* Charts of the admin page, drawn as inline SVG: no library, nothing loaded from elsewhere.

   GateCharts.render(container, stats, lang, fleet) draws, from GET /v1/admin/stats:
   entries per hour per gate (stacked bars, in up and out down, a legend of gates),
   refusals by reason (horizontal bars), fevers per day (paired bars), people per day
   (a table); and from GET /v1/admin/gates (fleet, optional) the gates' sync state (a
   table, stale gates in red). lang is "zh-CN" (the default) or "en". Every chart has a
   title and a description for screen readers, each bar its number on hover, and a
   table of the numbers under it. GateCharts.load(container, options) fetches both
   and renders. Needs charts_words.js loaded first. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  // Colour-blind-safe (Okabe-Ito, then Tableau) colours for gates, in order.
  const PALETTE = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#9C755F",
  ];
  const FEVER = "#C62828";
  const RECHECK = "#EF8F00";
  const REFUSAL = "#6A5ACD";
  const STALE = "#C62828";
  const WIDTH = 800;
  // Up to two weeks the entries chart has a bar per hour; beyond, a bar per day.
  const DAILY_AFTER_HOURS = 14 * 24;
  let counter = 0;

  function words() {
    if (!window.GateChartWords) throw new Error("load charts_words.js before charts.js");
    return window.GateChartWords;
  }

  function languageIndex(lang) {
    return String(lang || "zh-CN").toLowerCase().startsWith("en") ? 1 : 0;
  }

  function say(key, i, values) {
    const pair = words().ui[key];
    let text = pair ? pair[i] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function reasonWord(code, i) {
    const pair = words().reasons[code];
    return pair ? pair[i] : code || "?";
  }

  function svgNode(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function htmlNode(name, attrs, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* An SVG with a title and a description that screen readers announce. */
  function frame(section, title, desc, height) {
    counter += 1;
    const id = "gate-chart-" + counter;
    const svg = svgNode("svg", {
      viewBox: "0 0 " + WIDTH + " " + height,
      width: "100%",
      role: "img",
      "aria-labelledby": id + "-title " + id + "-desc",
      "font-family": "sans-serif",
      "font-size": "12",
    });
    svg.appendChild(svgNode("title", { id: id + "-title" }, title));
    svg.appendChild(svgNode("desc", { id: id + "-desc" }, desc));
    section.appendChild(svg);
    return svg;
  }

  function section(container, key, title, summary) {
    const box = htmlNode("section", { class: "gate-chart", "data-chart": key });
    box.appendChild(htmlNode("h3", {}, title));
    if (summary) box.appendChild(htmlNode("p", { class: "gate-chart-summary" }, summary));
    container.appendChild(box);
    return box;
  }

  function empty(box, text) {
    box.appendChild(htmlNode("p", { class: "gate-chart-empty", role: "status" }, text));
  }

  /* The numbers behind a chart, as a table people (and screen readers) can read. */
  function numbers(box, i, headers, rows) {
    const details = htmlNode("details", { class: "gate-chart-numbers" });
    details.appendChild(htmlNode("summary", {}, say("numbers", i)));
    const table = htmlNode("table");
    const head = htmlNode("tr");
    for (const header of headers) head.appendChild(htmlNode("th", { scope: "col" }, header));
    table.appendChild(htmlNode("thead")).appendChild(head);
    const body = table.appendChild(htmlNode("tbody"));
    for (const row of rows) {
      const line = htmlNode("tr");
      for (const cell of row) line.appendChild(htmlNode("td", {}, String(cell)));
      body.appendChild(line);
    }
    details.appendChild(table);
    box.appendChild(details);
  }

  function bar(svg, attrs, tip) {
    const rect = svgNode("rect", attrs);
    rect.appendChild(svgNode("title", {}, tip));
    svg.appendChild(rect);
    return rect;
  }

  /* "2024-03-01T08:00:00+08:00" -> "08:00"; the date too when asked. */
  function hourLabel(iso, withDay) {
    const time = iso.slice(11, 16);
    return withDay ? Number(iso.slice(5, 7)) + "/" + Number(iso.slice(8, 10)) + " " + time : time;
  }

  function dayLabel(iso) {
    return Number(iso.slice(5, 7)) + "/" + Number(iso.slice(8, 10));
  }

  function gateColours(gates) {
    const colours = {};
    gates.forEach((gate, n) => { colours[gate] = PALETTE[n % PALETTE.length]; });
    return colours;
  }

  function drawHourly(container, stats, i) {
    const cells = stats.hourly || [];
    let inTotal = 0;
    let outTotal = 0;
    for (const cell of cells) { inTotal += cell.in; outTotal += cell.out; }
    const total = say("total", i, { n: stats.total || 0, in: inTotal, out: outTotal });
    const box = section(container, "hourly", say("hourly_title", i), cells.length ? total : "");
    if (!cells.length) { empty(box, say("no_data", i)); return; }
    const gates = [...new Set(cells.map((c) => c.gate_id))].sort();
    const colours = gateColours(gates);
    let hours = stats.hours && stats.hours.length ? stats.hours : [...new Set(cells.map((c) => c.hour))];
    // Over a long window hourly bars would be thinner than a pixel: a bar per day instead.
    const daily = hours.length > DAILY_AFTER_HOURS;
    let slotCells = cells;
    if (daily) {
      hours = [...new Set(hours.map((h) => h.slice(0, 10)))];
      const merged = {};
      for (const c of cells) {
        const key = c.gate_id + " " + c.hour.slice(0, 10);
        const sum = merged[key] || (merged[key] = { gate_id: c.gate_id, hour: c.hour.slice(0, 10), in: 0, out: 0 });
        sum.in += c.in;
        sum.out += c.out;
      }
      slotCells = Object.values(merged);
    }
    const slotLabel = (slot, withDay) => (daily ? dayLabel(slot) : hourLabel(slot, withDay));
    const title = say(daily ? "daily_title" : "hourly_title", i);
    box.querySelector("h3").textContent = title;
    const byHour = {};
    for (const cell of slotCells) (byHour[cell.hour] = byHour[cell.hour] || []).push(cell);
    let maxIn = 0;
    let maxOut = 0;
    for (const hour of hours) {
      const list = byHour[hour] || [];
      maxIn = Math.max(maxIn, list.reduce((s, c) => s + c.in, 0));
      maxOut = Math.max(maxOut, list.reduce((s, c) => s + c.out, 0));
    }
    const legendRows = Math.ceil(gates.length / 6);
    const top = 16 + legendRows * 18;
    const plot = 220;
    const left = 72;
    const right = 8;
    const height = top + plot + 34;
    const svg = frame(box, title, say(daily ? "daily_desc" : "hourly_desc", i) + " " + total, height);
    const span = maxIn + maxOut || 1;
    const zero = top + (plot * maxIn) / span;
    const scale = plot / span;
    const step = (WIDTH - left - right) / hours.length;
    const width = Math.max(1, Math.min(step * 0.8, 40));
    // Legend: a swatch and the gate id for each gate.
    gates.forEach((gate, n) => {
      const x = left + (n % 6) * 122;
      const y = 4 + Math.floor(n / 6) * 18;
      svg.appendChild(svgNode("rect", { x, y, width: 12, height: 12, fill: colours[gate], "data-legend": gate }));
      svg.appendChild(svgNode("text", { x: x + 16, y: y + 11 }, gate));
    });
    // The zero line, and the largest count each way.
    svg.appendChild(svgNode("line", { x1: left, x2: WIDTH - right, y1: zero, y2: zero, stroke: "#333" }));
    // Which way is which, and the largest count each way, in the left margin.
    svg.appendChild(svgNode("text", { x: 2, y: top + 10 }, "↑" + say("dir_in", i) + " " + maxIn));
    svg.appendChild(svgNode("text", { x: 2, y: top + plot }, "↓" + say("dir_out", i) + " " + maxOut));
    const labelEvery = Math.max(1, Math.ceil(hours.length / 12));
    hours.forEach((hour, n) => {
      const x = left + n * step + (step - width) / 2;
      let up = zero;
      let down = zero;
      const list = (byHour[hour] || []).slice().sort((a, b) => a.gate_id.localeCompare(b.gate_id));
      for (const cell of list) {
        for (const direction of ["in", "out"]) {
          const count = cell[direction];
          if (!count) continue;
          const h = count * scale;
          const y = direction === "in" ? (up -= h) : down;
          if (direction === "out") down += h;
          const tip = cell.gate_id + " " + slotLabel(hour, true) + " " + say("dir_" + direction, i) + " " + count;
          bar(svg, {
            x: x.toFixed(2), y: y.toFixed(2), width: width.toFixed(2), height: h.toFixed(2),
            fill: colours[cell.gate_id], opacity: direction === "in" ? "1" : "0.65",
            "data-gate": cell.gate_id, "data-hour": hour, "data-direction": direction,
            "data-count": String(count),
          }, tip);
        }
      }
      if (n % labelEvery === 0) {
        const newDay = n === 0 || hour.slice(0, 10) !== hours[n - labelEvery].slice(0, 10);
        svg.appendChild(svgNode("text", {
          x: (left + n * step + step / 2).toFixed(2), y: top + plot + 16, "text-anchor": "middle",
          "font-size": "10",
        }, slotLabel(hour, newDay)));
      }
    });
    numbers(box, i, [say("gate", i), say(daily ? "day" : "hour", i), say("dir_in", i), say("dir_out", i)],
      slotCells.map((c) => [c.gate_id, slotLabel(c.hour, true), c.in, c.out]));
  }

  function drawRefusals(container, stats, i) {
    const totals = {};
    const outcomes = {};
    for (const row of stats.refusals || []) {
      totals[row.reason] = (totals[row.reason] || 0) + row.count;
      (outcomes[row.reason] = outcomes[row.reason] || []).push(row);
    }
    const reasons = Object.keys(totals).sort((a, b) => totals[b] - totals[a] || a.localeCompare(b));
    const sum = reasons.reduce((s, r) => s + totals[r], 0);
    const summary = say("refusals_total", i, { n: sum });
    const box = section(container, "refusals", say("refusals_title", i), reasons.length ? summary : "");
    if (!reasons.length) { empty(box, say("no_refusals", i)); return; }
    const row = 26;
    const labelWidth = 300;
    const height = reasons.length * row + 8;
    const svg = frame(box, say("refusals_title", i), say("refusals_desc", i) + " " + summary, height);
    const most = totals[reasons[0]];
    const room = WIDTH - labelWidth - 60;
    reasons.forEach((reason, n) => {
      const y = 4 + n * row;
      const label = reasonWord(reason, i);
      const w = Math.max(2, (room * totals[reason]) / most);
      svg.appendChild(svgNode("text", { x: labelWidth - 8, y: y + 16, "text-anchor": "end", "data-label": reason }, label));
      const detail = outcomes[reason].map((o) => (words().outcomes[o.outcome] || [o.outcome, o.outcome])[i] + " " + o.count).join(", ");
      bar(svg, {
        x: labelWidth, y, width: w.toFixed(2), height: row - 6, fill: REFUSAL,
        "data-reason": reason, "data-count": String(totals[reason]),
      }, label + ": " + totals[reason] + " (" + detail + ")");
      svg.appendChild(svgNode("text", { x: labelWidth + w + 6, y: y + 16, "data-value": reason }, String(totals[reason])));
    });
    numbers(box, i, [say("reason", i), say("outcome", i), say("count", i)],
      (stats.refusals || []).map((r) => [reasonWord(r.reason, i) + " (" + r.reason + ")",
        (words().outcomes[r.outcome] || [r.outcome, r.outcome])[i], r.count]));
  }

  function drawFevers(container, stats, i) {
    const days = stats.fevers || [];
    let fevers = 0;
    let rechecks = 0;
    for (const day of days) { fevers += day.fever; rechecks += day.recheck; }
    const summary = say("fevers_total", i, { fever: fevers, recheck: rechecks });
    const box = section(container, "fevers", say("fevers_title", i), fevers + rechecks ? summary : "");
    if (!(fevers + rechecks)) { empty(box, say("no_fevers", i)); return; }
    const top = 24;
    const plot = 160;
    const left = 40;
    const height = top + plot + 30;
    const svg = frame(box, say("fevers_title", i), say("fevers_desc", i) + " " + summary, height);
    const most = Math.max(1, ...days.map((d) => Math.max(d.fever, d.recheck)));
    const step = (WIDTH - left - 8) / days.length;
    const width = Math.max(1, Math.min(step * 0.38, 36));
    [["fever", FEVER], ["recheck", RECHECK]].forEach(([key, colour], n) => {
      svg.appendChild(svgNode("rect", { x: left + n * 170, y: 4, width: 12, height: 12, fill: colour }));
      svg.appendChild(svgNode("text", { x: left + n * 170 + 16, y: 15 }, say(key, i)));
    });
    svg.appendChild(svgNode("line", { x1: left, x2: WIDTH - 8, y1: top + plot, y2: top + plot, stroke: "#333" }));
    svg.appendChild(svgNode("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(most)));
    const labelEvery = Math.max(1, Math.ceil(days.length / 15));
    days.forEach((day, n) => {
      [["fever", FEVER], ["recheck", RECHECK]].forEach(([key, colour], k) => {
        const count = day[key];
        const h = (plot * count) / most;
        const x = left + n * step + step / 2 - width + k * width;
        bar(svg, {
          x: x.toFixed(2), y: (top + plot - h).toFixed(2), width: width.toFixed(2), height: h.toFixed(2),
          fill: colour, "data-day": day.day, "data-kind": key, "data-count": String(count),
        }, dayLabel(day.day) + " " + say(key, i) + " " + count);
        if (count && days.length <= 31) {
          svg.appendChild(svgNode("text", {
            x: (x + width / 2).toFixed(2), y: (top + plot - h - 3).toFixed(2), "text-anchor": "middle",
            "font-size": "10",
          }, String(count)));
        }
      });
      if (n % labelEvery === 0) {
        svg.appendChild(svgNode("text", {
          x: (left + n * step + step / 2).toFixed(2), y: top + plot + 16, "text-anchor": "middle",
          "font-size": "10",
        }, dayLabel(day.day)));
      }
    });
    numbers(box, i, [say("day", i), say("fever", i), say("recheck", i)],
      days.map((d) => [d.day, d.fever, d.recheck]));
  }

  function drawPeople(container, stats, i) {
    const rows = stats.people || [];
    const box = section(container, "people", say("people_title", i));
    if (!rows.length) { empty(box, say("no_data", i)); return; }
    const gates = [...new Set(rows.map((r) => r.gate_id))].sort();
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const cell = {};
    for (const row of rows) cell[row.gate_id + " " + row.day] = row.people;
    const table = htmlNode("table", { class: "gate-chart-people" });
    const head = htmlNode("tr");
    head.appendChild(htmlNode("th", { scope: "col" }, say("day", i)));
    for (const gate of gates) head.appendChild(htmlNode("th", { scope: "col" }, gate));
    table.appendChild(htmlNode("thead")).appendChild(head);
    const body = table.appendChild(htmlNode("tbody"));
    for (const day of days) {
      const line = htmlNode("tr");
      line.appendChild(htmlNode("th", { scope: "row" }, day));
      for (const gate of gates) line.appendChild(htmlNode("td", {}, String(cell[gate + " " + day] || 0)));
      body.appendChild(line);
    }
    box.appendChild(table);
  }

  function age(seconds, i) {
    if (seconds < 90) return say("age_s", i, { n: Math.max(0, Math.round(seconds)) });
    if (seconds < 90 * 60) return say("age_min", i, { n: Math.round(seconds / 60) });
    if (seconds < 36 * 3600) return say("age_h", i, { n: Math.round(seconds / 3600) });
    return say("age_d", i, { n: Math.round(seconds / 86400) });
  }

  function drawSync(container, fleet, i) {
    const gates = (fleet && fleet.gates) || [];
    const stale = gates.filter((g) => g.stale).length;
    const summary = say("sync_total", i, { n: gates.length, stale });
    const box = section(container, "sync", say("sync_title", i), gates.length ? summary : "");
    if (!gates.length) { empty(box, say("no_gates", i)); return; }
    box.appendChild(htmlNode("p", { class: "gate-chart-desc" }, say("sync_desc", i)));
    const now = Date.parse(fleet.server_time);
    const most = Math.max(1, ...gates.map((g) => g.last_backlog || 0));
    const table = htmlNode("table", { class: "gate-chart-sync" });
    const head = htmlNode("tr");
    for (const key of ["gate", "last_seen", "backlog", "state"]) head.appendChild(htmlNode("th", { scope: "col" }, say(key, i)));
    table.appendChild(htmlNode("thead")).appendChild(head);
    const body = table.appendChild(htmlNode("tbody"));
    for (const gate of gates) {
      const line = htmlNode("tr", { "data-gate": gate.gate_id, class: gate.stale ? "stale" : "fresh" });
      if (gate.stale) line.style.color = STALE;
      line.appendChild(htmlNode("th", { scope: "row" }, gate.gate_id));
      const seen = gate.last_seen ? age((now - Date.parse(gate.last_seen)) / 1000, i) : say("never", i);
      line.appendChild(htmlNode("td", { title: gate.last_seen || "" }, seen));
      const backlog = htmlNode("td", { "data-backlog": String(gate.last_backlog ?? "") });
      if (gate.last_backlog === null || gate.last_backlog === undefined) {
        backlog.textContent = say("not_reported", i);
      } else {
        // A small bar, so the gate holding the most stands out; the number beside it.
        const svg = svgNode("svg", { width: "120", height: "12", viewBox: "0 0 120 12", "aria-hidden": "true" });
        svg.appendChild(svgNode("rect", {
          x: 0, y: 1, height: 10, width: ((110 * gate.last_backlog) / most).toFixed(2),
          fill: gate.stale ? STALE : "#0072B2",
        }));
        backlog.appendChild(svg);
        backlog.appendChild(document.createTextNode(" " + gate.last_backlog));
      }
      line.appendChild(backlog);
      line.appendChild(htmlNode("td", {}, gate.stale ? say("stale", i) : say("ok", i)));
      body.appendChild(line);
    }
    box.appendChild(table);
  }

  /* Draw every chart of stats (and the sync state of fleet, when given) into container. */
  function render(container, stats, lang, fleet) {
    const i = languageIndex(lang);
    container.replaceChildren();
    container.setAttribute("lang", i ? "en" : "zh-CN");
    drawHourly(container, stats, i);
    drawRefusals(container, stats, i);
    drawFevers(container, stats, i);
    drawPeople(container, stats, i);
    if (fleet !== undefined) drawSync(container, fleet, i);
  }

  /* Fetch /v1/admin/stats (with options.query: since, until, gate, tz) and /v1/admin/gates
     from this server (options.base, default ""), then render. options.headers go with
     both requests (an Authorization header, or nothing when a session cookie signs in). */
  async function load(container, options) {
    const opts = options || {};
    const base = opts.base || "";
    const init = { credentials: "same-origin", headers: opts.headers || {} };
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(opts.query || {})) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && one !== null && one !== "") params.append(key, one);
      }
    }
    try {
      const [stats, fleet] = await Promise.all([
        fetch(base + "/v1/admin/stats?" + params, init).then(answer),
        fetch(base + "/v1/admin/gates", init).then(answer),
      ]);
      render(container, stats, opts.lang, fleet);
      return stats;
    } catch (error) {
      const i = languageIndex(opts.lang);
      container.replaceChildren(htmlNode("p", { class: "gate-chart-error", role: "alert" },
        say("load_failed", i) + ": " + error.message));
      throw error;
    }
  }

  async function answer(reply) {
    if (reply.ok) return reply.json();
    let code = String(reply.status);
    try { code = (await reply.json()).error || code; } catch (ignored) { /* not JSON */ }
    throw new Error(code);
  }

  window.GateCharts = { render, load };
})();
