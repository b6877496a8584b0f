/* Starts the page once every panel module has registered itself. */
"use strict";
window.GateAdmin.start();
