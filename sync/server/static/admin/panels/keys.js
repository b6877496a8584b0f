/* Issuer keys: list, create, rotate with an overlap, retire. */
"use strict";
(function () {
  const { h, api, say, T, when, table, errorText, panel, field } = window.GateAdmin;

  panel({
    id: "keys",
    title: "panel_keys",
    mount(section) {
      const out = h("div", { class: "result", hidden: true });
      const list = h("div", { id: "keys-list" });
      const overlap = h("input", { type: "number", name: "overlap_days", min: 0, max: 366, value: 14, class: "short" });
      const force = h("input", { type: "checkbox", name: "force" });
      const run = async (method, path, body, okKey) => {
        const reply = await api(method, path, body);
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        let text = T(okKey) + " " + (reply.data.kid || "");
        // A rotation: the old keys verify until the overlap ends; their live passes need reissuing.
        for (const [old, live] of Object.entries(reply.data.rotating || {})) {
          text += "\n" + old + " · " + T("rotating_until") + " " + when(reply.data.retire_at) + " · " + T("live_to_reissue") + " " + live;
        }
        say(out, true, text);
        load();
      };
      const load = async () => {
        const reply = await api("GET", "/v1/admin/keys");
        if (!reply.ok) { say(out, false, errorText(reply.data, reply.status)); return; }
        list.replaceChildren(table([
          ["col_kid", (k) => k.kid],
          ["col_state", (k) => h("span", { class: "badge " + (k.state === "active" ? "good" : k.state === "rotating" ? "warn" : "bad"), t: "key_" + k.state })],
          ["col_created", (k) => when(k.created_at)],
          ["col_retire_at", (k) => when(k.retired_at || k.retire_at)],
          ["col_live_passes", (k) => String(k.live_passes)],
          ["col_actions", (k) => k.state === "retired" ? "" : h("button", {
            type: "button", class: "danger small", "data-kid": k.kid, t: "retire",
            on: { click: () => run("POST", "/v1/admin/keys/" + encodeURIComponent(k.kid) + "/retire", { force: force.checked }, "key_retired_now") } })],
        ], reply.data.keys, "no_keys"));
      };
      section.append(
        h("p", { class: "hint", t: "keys_hint" }),
        h("div", { class: "row" },
          h("button", { type: "button", class: "primary", id: "key-new", t: "key_new", on: { click: () => run("POST", "/v1/admin/keys", undefined, "key_made") } }),
          field("f_overlap_days", overlap),
          h("button", { type: "button", id: "key-rotate", t: "key_rotate", on: { click: () => run("POST", "/v1/admin/keys/rotate", { overlap_days: Number(overlap.value) }, "key_rotated") } }),
          h("label", { class: "check" }, force, h("span", { t: "f_force" }))),
        out, list);
      this.load = load;
    },
    show() { this.load(); },
  });
})();
