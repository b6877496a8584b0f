/* The console's forms: resident lookup and manual entries, visitors, returnees, the
   handheld temperature, the guard's override and the gate mode. Sign-in is in signin.js. */
"use strict";

(function () {
  const GC = window.GC;
  const $ = GC.$;
  const t = GC.t;
  const UNIT_PATTERN = /^[0-9A-Za-z]+(-[0-9A-Za-z]+){0,2}$/;
  const PHONE_PATTERN = /^\+?[0-9][0-9 -]{5,19}$/;

  let pickedResident = null;
  let pendingMode = null;

  function formError(form) { return form.querySelector(".form-error"); }

  /* Busy while a request is out: one tap, one request. */
  async function submitting(form, work) {
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      return await work();
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  function showAnswerError(element, answer) {
    const data = answer.data || {};
    const form = element.closest("form");
    const field = data.field && form ? form.elements[data.field] : null;
    if (field && field.id) {
      // The server named the field it refused: name it in the guard's words, and go there.
      GC.setError(element, "check_field", "", { field: labelOf(field) });
      field.focus();
      return;
    }
    GC.setError(element, data.error || "server_error", data.message || "");
  }

  /* A decision answer goes to the big result on the live view, as an event would. */
  function showDecision(answer) {
    if (answer.data && answer.data.outcome) {
      GC.onDecision(answer.data);
      GC.showView("live");
      window.scrollTo(0, 0);
      return true;
    }
    return false;
  }

  function temperatureOf(input, required) {
    const text = input.value.trim().replace(",", ".");
    if (!text) return required ? NaN : null;
    const value = Number(text);
    // A typed reading outside 30–45 ℃ is a slip of the finger (365 for 36.5), not a person.
    if (!isFinite(value) || value < 30 || value > 45) return NaN;
    return Math.round(value * 10) / 10;
  }

  /* The first empty required field: named in the error and focused. */
  function missingField(form) {
    const fields = form.querySelectorAll("input[required], select[required]");
    for (let i = 0; i < fields.length; i += 1) {
      const field = fields[i];
      if (field.offsetParent !== null && !String(field.value).trim()) return field;
    }
    return null;
  }

  function labelOf(field) {
    const label = document.querySelector('label[for="' + field.id + '"]');
    return label ? label.textContent : field.name;
  }

  function checkRequired(form) {
    const field = missingField(form);
    if (!field) return true;
    field.classList.add("touched");
    GC.setError(formError(form), "required", "", { field: labelOf(field) });
    field.focus();
    return false;
  }

  /* Signed out: nothing typed for one person may be left for the next. */
  function resetForms() {
    pickedResident = null;
    pendingMode = null;
    document.querySelectorAll("#app-view form").forEach(function (form) {
      form.reset();
      GC.setError(formError(form), null);
    });
    $("manual-form").hidden = true;
    $("handheld-form").hidden = true;
    $("override-form").hidden = true;
    $("lookup-results").textContent = "";
    document.querySelectorAll(".household-choices").forEach(function (box) { box.textContent = ""; });
  }

  // -- residents ----------------------------------------------------------------------------

  function residentsQuery(text) {
    const q = text.trim();
    const key = UNIT_PATTERN.test(q) && /[0-9]/.test(q) ? "unit" : "name";
    return "/api/residents?" + key + "=" + encodeURIComponent(q);
  }

  async function findResidents(text) {
    const answer = await GC.api("GET", residentsQuery(text));
    const residents = answer.ok && answer.data && answer.data.residents ? answer.data.residents : [];
    return { answer: answer, residents: residents };
  }

  function residentLabel(r) {
    return [r.name, r.unit, GC.kindWord(r.kind)].filter(Boolean).join(" · ");
  }

  async function lookup(event) {
    event.preventDefault();
    const form = $("lookup-form");
    const list = $("lookup-results");
    GC.setError(formError(form), null);
    if (!checkRequired(form)) return;
    const found = await submitting(form, function () { return findResidents($("lookup-q").value); });
    list.textContent = "";
    $("manual-form").hidden = true;
    if (!found.answer.ok) {
      showAnswerError(formError(form), found.answer);
      return;
    }
    if (found.residents.length === 0) GC.setError(formError(form), "no_results");
    found.residents.forEach(function (resident) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn resident-btn";
      button.textContent = residentLabel(resident);
      button.dataset.passId = resident.pass_id;
      button.addEventListener("click", function () { pickResident(resident); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function pickResident(resident) {
    pickedResident = resident;
    $("manual-who").textContent = residentLabel(resident);
    const form = $("manual-form");
    form.hidden = false;
    GC.setError(formError(form), null);
    form.scrollIntoView({ block: "nearest" });
    $("manual-temp").focus();
  }

  async function recordManual(event) {
    event.preventDefault();
    const form = $("manual-form");
    if (!pickedResident) {
      GC.setError(formError(form), "pick_resident");
      return;
    }
    const temperature = temperatureOf($("manual-temp"), false);
    if (Number.isNaN(temperature)) {
      GC.setError(formError(form), "temp_invalid");
      return;
    }
    const body = {
      pass_id: pickedResident.pass_id,
      direction: form.elements.direction.value,
    };
    if (temperature !== null) body.temperature_celsius = temperature;
    const answer = await submitting(form, function () {
      return GC.api("POST", "/api/entries/manual", body);
    });
    if (showDecision(answer)) {
      form.reset();
      form.hidden = true;
      $("lookup-results").textContent = "";
      pickedResident = null;
      return;
    }
    showAnswerError(formError(form), answer);
  }

  // -- household pickers (visitor's host, returnee's home) ------------------------------------

  function households(residents) {
    const seen = {};
    const list = [];
    residents.forEach(function (r) {
      if (!r.household_id) return;
      if (!seen[r.household_id]) {
        seen[r.household_id] = { household_id: r.household_id, unit: r.unit, name: r.name, count: 0 };
        list.push(seen[r.household_id]);
      }
      seen[r.household_id].count += 1;
    });
    return list;
  }

  function renderChoices(fieldset, list) {
    const box = fieldset.querySelector(".household-choices");
    box.textContent = "";
    const group = fieldset.dataset.field;
    list.forEach(function (h, index) {
      const label = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = group;
      radio.value = h.household_id;
      radio.checked = list.length === 1;
      const span = document.createElement("span");
      const more = h.count > 1 ? " " + t("household_people", { n: h.count - 1 }) : "";
      span.textContent = [h.unit, (h.name || "") + more].filter(Boolean).join(" · ");
      label.appendChild(radio);
      label.appendChild(span);
      label.dataset.index = String(index);
      box.appendChild(label);
    });
  }

  async function findHouseholds(fieldset) {
    const form = fieldset.closest("form");
    const q = fieldset.querySelector(".household-q").value.trim();
    if (!q) {
      GC.setError(formError(form), "pick_household");
      return [];
    }
    const found = await findResidents(q);
    if (!found.answer.ok) {
      showAnswerError(formError(form), found.answer);
      return [];
    }
    const list = households(found.residents);
    GC.setError(formError(form), list.length ? null : "no_results");
    renderChoices(fieldset, list);
    markRadios(fieldset);
    return list;
  }

  /* The chosen household; searched for first when the guard typed a unit and went on. */
  async function chosenHousehold(fieldset) {
    const checked = fieldset.querySelector("input[type=radio]:checked");
    if (checked) return checked.value;
    if (!fieldset.querySelector("input[type=radio]")) {
      const list = await findHouseholds(fieldset);
      if (list.length === 1) return list[0].household_id;
    }
    return null;
  }

  // -- visitors and returnees -----------------------------------------------------------------

  async function registerPerson(event, kind) {
    event.preventDefault();
    const form = event.target;
    GC.setError(formError(form), null);
    if (!checkRequired(form)) return;
    if (!PHONE_PATTERN.test(form.elements.phone.value.trim())) {
      GC.setError(formError(form), "phone_invalid");
      form.elements.phone.focus();
      return;
    }
    const temperature = temperatureOf(form.elements.temperature_celsius, true);
    if (Number.isNaN(temperature)) {
      GC.setError(formError(form), "temp_invalid");
      form.elements.temperature_celsius.focus();
      return;
    }
    const fieldset = form.querySelector("fieldset.household");
    const household = await chosenHousehold(fieldset);
    if (!household) {
      if (!formError(form).dataset.code) GC.setError(formError(form), "pick_household");
      fieldset.querySelector(".household-q").focus();
      return;
    }
    const value = function (name) { return form.elements[name].value.trim(); };
    let path;
    let body;
    if (kind === "visitor") {
      path = "/api/visitors";
      body = {
        name: value("name"),
        phone: value("phone"),
        host_household_id: household,
        reason: value("reason"),
        plate: value("plate"),
        temperature_celsius: temperature,
      };
    } else {
      path = "/api/returnees";
      body = {
        name: value("name"),
        phone: value("phone"),
        household_id: household,
        from_place: value("from_place"),
        returned_on: value("returned_on"),
        transport: value("transport"),
        health: form.elements.health.value,
        temperature_celsius: temperature,
      };
    }
    const answer = await submitting(form, function () { return GC.api("POST", path, body); });
    // In lockdown the gate refuses a visitor, and the refusal is a decision to show.
    if (showDecision(answer)) {
      form.reset();
      fieldset.querySelector(".household-choices").textContent = "";
      return;
    }
    showAnswerError(formError(form), answer);
  }

  // -- on the big result: handheld temperature and override -----------------------------------

  function openPanel(form, focus) {
    const decision = GC.state.current;
    if (!decision) return;
    form.dataset.seq = String(decision.seq);
    form.reset();
    GC.setError(formError(form), null);
    let who = form.querySelector(".panel-who");
    if (!who) {
      who = document.createElement("p");
      who.className = "panel-who";
      form.querySelector("h3").after(who);
    }
    who.textContent = t("for_person") + [decision.name, decision.unit].filter(Boolean).join(" · ");
    form.hidden = false;
    focus.focus();
  }

  async function submitHandheld(event) {
    event.preventDefault();
    const form = $("handheld-form");
    const temperature = temperatureOf($("handheld-temp"), true);
    if (Number.isNaN(temperature)) {
      GC.setError(formError(form), "temp_invalid");
      return;
    }
    const path = "/api/entries/" + encodeURIComponent(form.dataset.seq) + "/temperature";
    const answer = await submitting(form, function () {
      return GC.api("POST", path, { temperature_celsius: temperature });
    });
    if (showDecision(answer)) {
      form.hidden = true;
      return;
    }
    showAnswerError(formError(form), answer);
  }

  function fillOverrideReasons() {
    const select = $("override-reason");
    const chosen = select.value;
    select.textContent = "";
    const placeholder = document.createElement("option");
    placeholder.value = "";
    placeholder.textContent = t("override_pick");
    select.appendChild(placeholder);
    const reasons = GC.state.messages.override_reasons || {};
    Object.keys(reasons).forEach(function (code) {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = GC.fromMessages("override_reasons", code);
      select.appendChild(option);
    });
    select.value = chosen;
  }

  async function submitOverride(event) {
    event.preventDefault();
    const form = $("override-form");
    if (!checkRequired(form)) return;
    const path = "/api/entries/" + encodeURIComponent(form.dataset.seq) + "/override";
    const body = { reason: $("override-reason").value, text: $("override-text").value.trim() };
    const answer = await submitting(form, function () { return GC.api("POST", path, body); });
    if (answer.ok) {
      form.hidden = true;
      if (!showDecision(answer)) GC.toast(t("overridden"));
      return;
    }
    showAnswerError(formError(form), answer);
  }

  // -- gate mode (admins) ---------------------------------------------------------------------

  function askMode(mode) {
    pendingMode = mode;
    $("mode-confirm").hidden = false;
    $("mode-confirm-text").textContent = t("mode_confirm", { mode: t("mode_" + mode) });
  }

  async function submitMode(event) {
    event.preventDefault();
    const form = $("mode-form");
    if (!pendingMode) return;
    const answer = await submitting(form, function () {
      return GC.api("POST", "/api/mode", { mode: pendingMode });
    });
    if (answer.ok) {
      $("mode-confirm").hidden = true;
      GC.toast(t("mode_done", { mode: GC.modeWord(answer.data.mode || pendingMode) }));
      pendingMode = null;
      GC.refreshStatus();
      return;
    }
    showAnswerError(formError(form), answer);
  }

  function markRadios(root) {
    root.querySelectorAll("input[type=radio]").forEach(function (radio) {
      radio.parentElement.classList.toggle("is-checked", radio.checked);
    });
  }

  // -- wiring ---------------------------------------------------------------------------------

  function fillVisitReasons() {
    const list = $("visit-reasons");
    list.textContent = "";
    t("visit_reasons").forEach(function (text) {
      const option = document.createElement("option");
      option.value = text;
      list.appendChild(option);
    });
  }

  function bind() {
    $("lookup-form").addEventListener("submit", lookup);
    $("manual-form").addEventListener("submit", recordManual);
    $("visitor-form").addEventListener("submit", function (e) { registerPerson(e, "visitor"); });
    $("returnee-form").addEventListener("submit", function (e) { registerPerson(e, "returnee"); });
    document.querySelectorAll("fieldset.household").forEach(function (fieldset) {
      fieldset.querySelector(".household-find").addEventListener("click", function () {
        findHouseholds(fieldset);
      });
      fieldset.querySelector(".household-q").addEventListener("keydown", function (e) {
        if (e.key === "Enter") {
          e.preventDefault();
          findHouseholds(fieldset);
        }
      });
    });

    $("handheld-btn").addEventListener("click", function () {
      openPanel($("handheld-form"), $("handheld-temp"));
    });
    $("override-btn").addEventListener("click", function () {
      fillOverrideReasons();
      openPanel($("override-form"), $("override-reason"));
    });
    $("handheld-form").addEventListener("submit", submitHandheld);
    $("override-form").addEventListener("submit", submitOverride);
    document.querySelectorAll(".cancel-btn").forEach(function (button) {
      button.addEventListener("click", function () {
        const form = button.closest("form");
        if (form.id === "mode-form") {
          pendingMode = null;
          $("mode-confirm").hidden = true;
        } else {
          form.hidden = true;
        }
      });
    });

    document.querySelectorAll(".mode-btn").forEach(function (button) {
      button.addEventListener("click", function () { askMode(button.dataset.mode); });
    });
    $("mode-form").addEventListener("submit", submitMode);

    // Radio groups styled as big buttons: mark the checked one (older browsers lack :has()).
    document.addEventListener("change", function (e) {
      if (e.target.type === "radio") markRadios(document);
    });
    // "reset" fires before the form's values go back: mark once they have.
    document.addEventListener("reset", function () { window.setTimeout(markRadios, 0, document); });
    markRadios(document);
  }

  GC.onStart(bind);
  GC.onSignOut(resetForms);
  GC.submitting = submitting;
  GC.showAnswerError = showAnswerError;
  GC.onLanguage(function () {
    fillVisitReasons();
    if (!$("override-form").hidden) fillOverrideReasons();
    if (pendingMode) askMode(pendingMode);
    if (pickedResident) $("manual-who").textContent = residentLabel(pickedResident);
  });
})();
