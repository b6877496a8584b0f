/* Cards: the printable A4 page for a household or a compound, a phone PNG for one pass. */
"use strict";
(function () {
  const { h, panel, field, T } = window.GateAdmin;

  function cardsLink(params) {
    return "/v1/admin/cards?" + new URLSearchParams(params).toString();
  }

  panel({
    id: "cards",
    title: "panel_cards",
    mount(section) {
      const household = h("input", { name: "household", maxlength: 64, tPlaceholder: "eg_household" });
      const compound = h("input", { name: "compound", maxlength: 64, tPlaceholder: "eg_compound" });
      const passId = h("input", { name: "pass_id", maxlength: 64 });
      const links = h("div", { class: "links" });
      const update = () => {
        links.replaceChildren();
        const add = (href, key, id) => links.append(
          h("a", { href, target: "_blank", rel: "noopener", class: "button primary", id, t: key }));
        if (household.value.trim()) add(cardsLink({ household: household.value.trim() }), "open_household_cards", "cards-household");
        if (compound.value.trim()) add(cardsLink({ compound: compound.value.trim() }), "open_compound_cards", "cards-compound");
        if (passId.value.trim()) add("/v1/admin/passes/" + encodeURIComponent(passId.value.trim()) + "/card.png", "open_png", "card-png");
        if (!links.childElementCount) links.append(h("p", { class: "empty", t: "cards_say_whose" }));
      };
      [household, compound, passId].forEach((el) => el.addEventListener("input", update));
      section.append(
        h("p", { class: "hint", t: "cards_hint" }),
        h("div", { class: "grid" }, field("f_household", household), field("f_compound", compound), field("f_pass_id", passId)),
        links);
      update();
    },
  });
  window.GateAdminCards = { cardsLink };
})();
