/* The test page's one job: load the charts for the query in the URL's fragment. */
"use strict";

const wanted = new URLSearchParams(location.hash.slice(1));
window.loaded = GateCharts.load(document.getElementById("charts"), {
  lang: wanted.get("lang") || "zh-CN",
  query: { since: wanted.get("since"), until: wanted.get("until"), gate: wanted.getAll("gate") },
  headers: { Authorization: "Bearer " + wanted.get("token") },
}).then(() => "ok", (error) => "error: " + error.message);
