/* A distinct sound per outcome from the Web Audio API: no audio files to serve.
   Browsers only let a page make sound after a user gesture, so the AudioContext is
   created (or resumed) by the sign-in tap, or by the "turn sound on" button. */
"use strict";

window.GateSound = (function () {
  // allow: one high short tone; deny: three low long tones; recheck: two mid tones.
  const PATTERNS = {
    allow: { freq: 1320, seconds: 0.16, count: 1, gap: 0, wave: "sine" },
    deny: { freq: 220, seconds: 0.55, count: 3, gap: 0.22, wave: "square" },
    recheck: { freq: 660, seconds: 0.25, count: 2, gap: 0.15, wave: "triangle" },
  };
  const ALARM_EVERY_MS = 3000;
  const ALARM_MAX = 10;
  const VOLUME = 0.35;

  let context = null;
  let alarmTimer = null;
  let onChange = function () {};

  function ready() {
    return context !== null && context.state === "running";
  }

  /* Call from a click or key handler: creates or resumes the AudioContext. */
  function unlock() {
    const Ctor = window.AudioContext || window.webkitAudioContext;
    if (!Ctor) return;
    if (context === null) {
      try {
        context = new Ctor();
        context.addEventListener("statechange", function () { onChange(ready()); });
      } catch (err) {
        context = null;
        return;
      }
    }
    if (context.state === "suspended") {
      context.resume().then(function () { onChange(ready()); }, function () {});
    }
    onChange(ready());
  }

  function tone(at, pattern) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = pattern.wave;
    osc.frequency.value = pattern.freq;
    // A short ramp at both ends: no click, and easier on the ear over a long shift.
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(VOLUME, at + 0.015);
    gain.gain.setValueAtTime(VOLUME, at + pattern.seconds - 0.03);
    gain.gain.linearRampToValueAtTime(0, at + pattern.seconds);
    osc.connect(gain);
    gain.connect(context.destination);
    osc.start(at);
    osc.stop(at + pattern.seconds + 0.02);
  }

  /* Play the outcome's pattern once; false when sound is not on yet. */
  function play(outcome) {
    const pattern = PATTERNS[outcome];
    if (!pattern || !ready()) return false;
    let at = context.currentTime + 0.02;
    for (let i = 0; i < pattern.count; i += 1) {
      tone(at, pattern);
      at += pattern.seconds + pattern.gap;
    }
    return true;
  }

  function stopAlarm() {
    if (alarmTimer !== null) {
      window.clearInterval(alarmTimer);
      alarmTimer = null;
    }
  }

  /* Play once, and for an alert again every few seconds until stopped (or ten times). */
  function announce(outcome, alert) {
    stopAlarm();
    const played = play(outcome);
    if (alert) {
      let times = 1;
      alarmTimer = window.setInterval(function () {
        times += 1;
        play(outcome);
        if (times >= ALARM_MAX) stopAlarm();
      }, ALARM_EVERY_MS);
    }
    return played;
  }

  return {
    unlock: unlock,
    ready: ready,
    announce: announce,
    stopAlarm: stopAlarm,
    alarming: function () { return alarmTimer !== null; },
    onChange: function (callback) { onChange = callback; },
  };
})();
