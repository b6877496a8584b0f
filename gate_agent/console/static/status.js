/* The gate's state: counts today, lists, devices, clock, upload, mode; warnings on top. */
"use strict";

(function () {
  const GC = window.GC;
  const $ = GC.$;
  const t = GC.t;
  const state = GC.state;
  const STATUS_EVERY_MS = 10000;

  function refreshStatusSoon() {
    window.clearTimeout(state.timers.statusSoon);
    state.timers.statusSoon = window.setTimeout(refreshStatus, 300);
  }

  async function refreshStatus() {
    if (!state.session || refreshStatus.busy) return;
    refreshStatus.busy = true;
    try {
      const answer = await GC.api("GET", "/api/status");
      if (answer.ok && answer.data) {
        state.status = answer.data;
        state.status.receivedAt = new Date();
        const gateNow = answer.data.clock ? Date.parse(answer.data.clock.now) : NaN;
        if (isFinite(gateNow)) state.clockOffsetMs = gateNow - Date.now();
        mergeDevices(answer.data.devices);
        renderStatus();
      }
    } finally {
      refreshStatus.busy = false;
    }
  }

  /* Devices as {cameras: {lane: {...}}, thermometer: {...}}, {name: {...}} or a list. */
  function mergeDevices(devices) {
    if (!devices) return;
    if (Array.isArray(devices)) {
      devices.forEach(function (d) { if (d && d.device) state.devices[d.device] = d; });
      return;
    }
    Object.keys(devices).forEach(function (name) {
      const d = devices[name];
      if (name === "cameras" && d && typeof d === "object") {
        Object.keys(d).forEach(function (lane) {
          state.devices["camera:" + lane] = Object.assign({ device: "camera:" + lane }, d[lane]);
        });
      } else if (d && typeof d === "object") {
        state.devices[name] = Object.assign({ device: name }, d);
      }
    });
  }

  function colon() { return state.lang === "en" ? ": " : "："; }

  function pick() {
    for (let i = 0; i < arguments.length; i += 1) {
      if (arguments[i] !== undefined && arguments[i] !== null) return arguments[i];
    }
    return undefined;
  }

  function deviceName(name) {
    if (name.indexOf("camera:") === 0) return t("device_camera", { lane: name.slice(7) });
    if (name === "thermometer" || name === "signals") return t("device_" + name);
    return name;
  }

  /* The oldest of the lists and whether any is stale; lists as {name: {age_seconds, stale}}. */
  function listsInfo(st) {
    const lists = st.lists || {};
    if (typeof lists.age_seconds === "number" || lists.stale !== undefined) {
      return { age: lists.age_seconds, stale: !!lists.stale, never: lists.age_seconds === null };
    }
    let age;
    let never = false;
    let stale = !!st.lists_stale;
    Object.keys(lists).forEach(function (name) {
      const item = lists[name] || {};
      if (item.stale) stale = true;
      if (item.age_seconds === null) never = never || !!item.stale;
      else if (typeof item.age_seconds === "number") age = Math.max(age || 0, item.age_seconds);
    });
    return { age: age, stale: stale, never: never };
  }

  function syncText(st) {
    const sync = st.sync || {};
    const failing = sync.ok === false || sync.state === "failing" || sync.state === "error";
    if (failing) return { text: t("sync_bad"), bad: true };
    const backlog = pick(sync.backlog, sync.pending, 0);
    if (sync.configured === false) return { text: t("sync_off", { n: backlog }), bad: false };
    if (backlog) return { text: t("sync_pending", { n: backlog }), bad: false };
    if (sync.last_success) {
      const seconds = (Date.now() - new Date(sync.last_success).getTime()) / 1000;
      if (isFinite(seconds)) return { text: t("sync_last", { age: GC.ageWords(seconds) }), bad: false };
    }
    return { text: t("sync_ok"), bad: false };
  }

  function clockSynced(st) {
    if (st.clock && typeof st.clock === "object") return pick(st.clock.synced, true);
    return pick(st.clock_synced, st.clock, true);
  }

  /* Seconds the wall clock jumped in the last hour (+ forward), or 0. */
  function clockJump(st) {
    const seconds = st.clock && typeof st.clock === "object" ? st.clock.jumped_seconds : null;
    return typeof seconds === "number" ? seconds : 0;
  }

  function setTile(id, text, bad) {
    const dd = $(id);
    dd.textContent = text === undefined || text === null || text === "" ? "–" : String(text);
    dd.classList.toggle("bad", !!bad);
    dd.classList.toggle("number", typeof text === "number");
  }

  /* " · set by the centre" or " · set here by 李主任": a guard sees whose order it is. */
  function modeSetWords(set) {
    if (!set || !set.source || set.source === "config") return "";
    const when = set.at ? " " + GC.timeText({ at: set.at }) : "";
    if (set.source === "centre") return " · " + t("mode_by_centre") + when;
    return " · " + t("mode_by_admin", { name: set.by || "" }) + when;
  }

  function renderStatus() {
    const st = state.status;
    const warnings = [];
    if (st) {
      const today = st.today || st.counts || {};
      const lists = listsInfo(st);
      const synced = clockSynced(st);
      setTile("s-entries", pick(today.entries_in, today.entries, st.entries_today));
      setTile("s-exits", pick(today.entries_out, today.exits, st.exits_today));
      setTile("s-inside", pick(st.people_inside, st.inside, today.inside));
      const fevers = pick(today.fevers, st.fevers_today, st.fevers);
      setTile("s-fevers", fevers, fevers > 0);
      setTile("s-mode", st.mode ? GC.modeWord(st.mode) + modeSetWords(st.mode_set) : "");
      const jumped = clockJump(st);
      const clockWord = jumped ? t("clock_jumped") : synced ? t("clock_ok") : t("clock_bad");
      setTile("s-clock", clockWord, !synced || jumped !== 0);
      let listText = t("lists_never");
      if (typeof lists.age === "number" && !lists.never) {
        listText = t(lists.stale ? "lists_stale" : "lists_ok", { age: GC.ageWords(lists.age) });
      }
      setTile("s-lists", listText, lists.stale);
      const sync = syncText(st);
      setTile("s-sync", sync.text, sync.bad);
      renderRefusals(pick(today.refusals_by_reason, today.refusals, st.refusals, {}));
      renderAlerts(st.compound_alerts || { count: 0, recent: [] });
      $("s-updated").textContent = GC.timeText({ receivedAt: st.receivedAt });
      if (lists.stale) {
        warnings.push(lists.never || typeof lists.age !== "number"
          ? t("warn_lists_never") : t("warn_lists", { age: GC.ageWords(lists.age) }));
      }
      if (!synced) warnings.push(t("warn_clock"));
      if (jumped) {
        const minutes = Math.round(Math.abs(jumped) / 60);
        warnings.push(t(jumped > 0 ? "warn_clock_forward" : "warn_clock_back", { minutes: minutes }));
      }
      const disk = st.disk;
      if (disk && disk.low) {
        warnings.push(disk.reserve_used
          ? t("warn_disk_reserve") : t("warn_disk", { mb: disk.free_mb }));
      }
      if (st.mode) {
        const badge = $("mode-badge");
        badge.hidden = !state.session;
        badge.textContent = GC.modeWord(st.mode);
        badge.className = "badge mode-" + st.mode;
        document.querySelectorAll(".mode-btn").forEach(function (button) {
          button.setAttribute("aria-pressed", String(button.dataset.mode === st.mode));
        });
      }
    }
    renderDevices(warnings);
    const box = $("warnings");
    box.textContent = "";
    warnings.forEach(function (text) {
      const li = document.createElement("li");
      li.textContent = text;
      box.appendChild(li);
    });
    box.hidden = !state.session || warnings.length === 0;
  }

  function renderRefusals(refusals) {
    const list = $("s-refusals");
    list.textContent = "";
    const entries = Array.isArray(refusals)
      ? refusals.map(function (r) { return [r.reason, r.count]; })
      : Object.keys(refusals).map(function (code) { return [code, refusals[code]]; });
    if (entries.length === 0) {
      const li = document.createElement("li");
      li.textContent = t("s_none");
      list.appendChild(li);
    }
    entries.sort(function (a, b) { return b[1] - a[1]; }).forEach(function (pair) {
      const li = document.createElement("li");
      li.textContent = GC.fromMessages("reasons", pair[0]) + colon() + pair[1];
      list.appendChild(li);
    });
  }

  /* The other gates' isolation alerts: a count tile, the list here and on the live page. */
  function renderAlerts(alerts) {
    setTile("s-alerts", alerts.count, alerts.count > 0);
    const recent = alerts.recent || [];
    ["s-alerts-list", "live-alerts-list"].forEach(function (id) {
      const list = $(id);
      list.textContent = "";
      if (recent.length === 0) {
        const li = document.createElement("li");
        li.textContent = t("s_none");
        list.appendChild(li);
      }
      recent.forEach(function (a) {
        const li = document.createElement("li");
        li.className = "bad";
        li.textContent = t("alert_item", {
          time: GC.timeText({ at: a.at }),
          gate: a.gate_id,
          unit: a.unit || a.household_id,
          name: a.display_name || "",
          reason: state.lang === "en" ? a.message_en : a.message_zh,
        });
        list.appendChild(li);
      });
    });
    $("live-alerts").hidden = !state.session || recent.length === 0;
  }

  function renderDevices(warnings) {
    const list = $("s-devices");
    list.textContent = "";
    Object.keys(state.devices).sort().forEach(function (name) {
      const d = state.devices[name];
      const li = document.createElement("li");
      const label = deviceName(name);
      // The device's own state words are technical: shown only when something is wrong.
      li.textContent = label + colon() + (d.ok ? t("device_ok") : t("device_bad") +
        (d.state ? " (" + d.state + ")" : "") + (d.detail ? " " + d.detail : ""));
      if (!d.ok) {
        li.className = "bad";
        warnings.push(t("warn_device", { device: label, detail: d.detail || d.state || "" }));
      }
      list.appendChild(li);
    });
  }


  GC.refreshStatus = refreshStatus;
  GC.refreshStatusSoon = refreshStatusSoon;
  GC.renderStatus = renderStatus;
  GC.onLanguage(renderStatus);
  GC.onEnter(function () {
    window.clearInterval(state.timers.status);
    state.timers.status = window.setInterval(refreshStatus, STATUS_EVERY_MS);
  });
  GC.onSignOut(function () {
    window.clearInterval(state.timers.status);
    $("mode-badge").hidden = true;
    $("warnings").hidden = true;
    $("live-alerts").hidden = true;
  });
})();
