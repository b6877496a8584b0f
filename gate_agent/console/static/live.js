/* The live result, the short history under it, and the live events (Server-Sent Events). */
"use strict";

(function () {
  const GC = window.GC;
  const $ = GC.$;
  const t = GC.t;
  const state = GC.state;
  const HISTORY_MAX = 12;
  const STALE_AFTER_MS = 20000;
  const RECONNECT_MS = 3000;
  // An event older than this when it arrives is history (sent again on connect), not news.
  const REPLAY_AGE_MS = 10000;
  // Reasons a handheld reading settles: no usable sensor reading, or a high one to re-measure.
  const HANDHELD_REASONS = [
    "temperature_missing", "recheck_temperature", "no_person_at_sensor",
    "ambient_out_of_range", "temperature_implausible",
  ];
  const SEEN_MAX = 500;

  function decisionKey(decision) {
    if (decision.seq !== null && decision.seq !== undefined) return "seq:" + decision.seq;
    return "at:" + (decision.at || "") + ":" + decision.reason + ":" + (decision.pass_id || "");
  }

  function temperatureText(decision) {
    const reading = decision.temperature;
    if (reading && typeof reading.celsius === "number") {
      const hand = reading.source === "handheld" ? " " + t("temp_handheld") : "";
      return reading.celsius.toFixed(1) + " ℃" + hand;
    }
    if (reading && reading.refused) return GC.fromMessages("reasons", reading.refused);
    return "";
  }

  function directionWord(direction) {
    if (direction === "in") return t("dir_in");
    if (direction === "out") return t("dir_out");
    return direction || "";
  }

  function timeText(decision) {
    const at = decision.at ? new Date(decision.at) : decision.receivedAt;
    if (!at || isNaN(at.getTime())) return "";
    const pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
  }

  /* A decision from an event or a POST answer; shown once, however it arrived. */
  function onDecision(decision, options) {
    if (!decision || !decision.outcome) return;
    const live = !(options && options.replay) && !isReplay(decision);
    const key = decisionKey(decision);
    if (state.seen[key]) return;
    state.seen[key] = true;
    decision.receivedAt = new Date();
    state.history.unshift(decision);
    state.history.length = Math.min(state.history.length, HISTORY_MAX * 4);
    if (Object.keys(state.seen).length > SEEN_MAX) {
      // Replays only repeat the last few decisions: remembering the kept history is enough.
      state.seen = {};
      state.history.forEach(function (d) { state.seen[decisionKey(d)] = true; });
    }
    if (live) {
      state.current = decision;
      state.current.stale = false;
      renderResult();
      const shown = shownOutcome(decision);
      const played = window.GateSound.announce(shown, !!decision.alert);
      const result = $("result");
      result.dataset.sound = played ? shown : "off";
      result.dataset.sounds = String(Number(result.dataset.sounds || "0") + (played ? 1 : 0));
      $("ack-btn").hidden = !decision.alert;
      window.clearTimeout(state.timers.stale);
      state.timers.stale = window.setTimeout(function () {
        if (state.current === decision) {
          decision.stale = true;
          renderResult();
        }
      }, STALE_AFTER_MS);
    }
    renderHistory();
    GC.refreshStatusSoon();
  }

  /* The server marks replays; else judge by the event's age on the gate's own clock. */
  function isReplay(decision) {
    if (decision.replay !== undefined) return !!decision.replay;
    if (!decision.at || state.clockOffsetMs === null) return false;
    const age = Date.now() + state.clockOffsetMs - Date.parse(decision.at);
    return isFinite(age) && age > REPLAY_AGE_MS;
  }

  /* A decision the ledger did not take opens nothing: it must never look green. */
  function shownOutcome(decision) {
    return decision.recorded === false ? "deny" : decision.outcome;
  }

  function renderResult() {
    const decision = state.current;
    const box = $("result");
    box.className = "result";
    const person = $("r-person");
    if (!decision) {
      box.classList.add("result-idle");
      $("r-outcome").textContent = t("waiting");
      $("r-reason").textContent = "";
      $("r-next").textContent = "";
      person.hidden = true;
      $("r-stale").hidden = true;
      delete box.dataset.outcome;
      delete box.dataset.reason;
      delete box.dataset.seq;
      $("handheld-btn").hidden = true;
      $("override-btn").hidden = true;
      $("ack-btn").hidden = true;
      return;
    }
    const shown = shownOutcome(decision);
    box.classList.add("result-" + shown);
    if (decision.stale) box.classList.add("is-stale");
    box.dataset.outcome = shown;
    box.dataset.reason = decision.reason;
    box.dataset.seq = decision.seq === null || decision.seq === undefined ? "" : String(decision.seq);
    $("r-outcome").textContent = decision.recorded === false
      ? t("not_recorded") : GC.outcomeWord(decision.outcome);
    $("r-reason").textContent = GC.reasonWord(decision);
    $("r-next").textContent = GC.nextWord(decision);
    const fields = {
      "r-name": decision.name || "",
      "r-unit": decision.unit || "",
      "r-kind": GC.kindWord(GC.personKind(decision)),
      "r-temp": temperatureText(decision),
      "r-direction": directionWord(decision.direction),
    };
    let any = false;
    Object.keys(fields).forEach(function (id) {
      const dd = $(id);
      dd.textContent = fields[id];
      dd.parentElement.hidden = !fields[id];
      any = any || !!fields[id];
    });
    person.hidden = !any;
    $("r-stale").hidden = !decision.stale;
    const recorded = decision.seq !== null && decision.seq !== undefined;
    const handheld = decision.outcome === "recheck" && recorded &&
      (HANDHELD_REASONS.indexOf(decision.reason) >= 0 || decision.reason.indexOf("sensor_") === 0);
    $("handheld-btn").hidden = !handheld;
    $("override-btn").hidden = !(decision.outcome === "deny" && recorded);
  }

  function renderHistory() {
    const list = $("history");
    list.textContent = "";
    const items = state.history.slice(0, HISTORY_MAX);
    $("history-empty").hidden = items.length > 0;
    items.forEach(function (decision) {
      const li = document.createElement("li");
      const shown = shownOutcome(decision);
      li.dataset.outcome = shown;
      li.dataset.reason = decision.reason;
      const parts = [
        ["history-time", timeText(decision)],
        ["chip chip-" + shown, decision.recorded === false
          ? t("not_recorded") : GC.outcomeWord(decision.outcome)],
        ["history-reason", GC.reasonWord(decision)],
        ["history-name", decision.name || GC.kindWord(GC.personKind(decision))],
        ["history-unit", decision.unit || ""],
        ["history-temp", temperatureText(decision)],
        ["history-direction", directionWord(decision.direction)],
        ["history-pass", decision.pass_id || ""],
        ["history-guard", decision.guard ? t("by_guard", { name: decision.guard }) : ""],
      ];
      parts.forEach(function (part) {
        if (!part[1]) return;
        const span = document.createElement("span");
        span.className = part[0];
        span.textContent = part[1];
        li.appendChild(span);
      });
      list.appendChild(li);
    });
  }

  // -- live events ------------------------------------------------------------------------

  function setConnected(connected) {
    state.connected = connected;
    $("conn-banner").hidden = connected;
    document.body.dataset.live = connected ? "open" : "closed";
    // Cut off from the gate, the result on screen may no longer be the person in front.
    if (!connected && state.current && !state.current.stale) {
      state.current.stale = true;
      renderResult();
    }
  }

  function closeEvents() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
  }

  function connectEvents() {
    closeEvents();
    window.clearTimeout(state.timers.reconnect);
    const source = new window.EventSource("/api/events");
    state.source = source;
    source.addEventListener("open", function () {
      setConnected(true);
      GC.refreshStatus();
    });
    source.addEventListener("decision", function (event) {
      onDecision(parse(event.data));
    });
    source.addEventListener("device", function (event) {
      onDevice(parse(event.data));
    });
    source.addEventListener("error", function () {
      if (state.source !== source) return;
      setConnected(false);
      // EventSource retries a dropped connection itself, but gives up on an HTTP error
      // (a signed-out session, a restarting server): then we retry, and check the session.
      if (source.readyState === window.EventSource.CLOSED) scheduleReconnect();
    });
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (err) { return null; }
  }

  function scheduleReconnect() {
    window.clearTimeout(state.timers.reconnect);
    state.timers.reconnect = window.setTimeout(async function () {
      if (!state.session) return;
      const answer = await GC.api("GET", "/api/session");
      if (!state.session) return;
      if (answer.status === 401) {
        GC.signedOut("session_expired");
        return;
      }
      if (answer.ok && answer.data && answer.data.csrf) state.session = answer.data;
      connectEvents();
    }, RECONNECT_MS);
  }

  function onDevice(data) {
    if (!data || !data.device) return;
    state.devices[data.device] = data;
    GC.renderStatus();
  }


  GC.onDecision = onDecision;
  GC.connectEvents = connectEvents;
  GC.temperatureText = temperatureText;
  GC.timeText = timeText;
  GC.onLanguage(function () {
    renderResult();
    renderHistory();
  });
  GC.onEnter(function () {
    // Status first: it carries the gate's clock, which tells replayed events from news.
    GC.refreshStatus().then(connectEvents, connectEvents);
  });
  GC.onSignOut(function () {
    closeEvents();
    window.clearTimeout(state.timers.reconnect);
    setConnected(true);
    state.current = null;
    state.history = [];
    state.seen = {};
    renderResult();
    renderHistory();
  });
  GC.onStart(function () {
    $("ack-btn").addEventListener("click", function () {
      window.GateSound.stopAlarm();
      $("ack-btn").hidden = true;
    });
  });
})();
