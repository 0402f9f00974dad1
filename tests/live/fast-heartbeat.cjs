// Preloaded into the Letta Code runtime by one live test (NODE_OPTIONS=--require …)
// to shorten its listener heartbeat: the 30 s ping interval is a constant in
// letta.js (LISTENER_HEARTBEAT_INTERVAL_MS), with no setting. Only the interval
// whose callback is the missed-pong watchdog is changed; the pong timeout stays
// "3 unanswered pings" as the runtime computes it.
"use strict";
const realSetInterval = globalThis.setInterval;
const ms = Number(process.env.LETTA_TEST_HEARTBEAT_MS || 500);
globalThis.setInterval = function (callback, delay, ...args) {
  if (delay === 30000 && typeof callback === "function" && String(callback).includes("shouldTerminate")) {
    delay = ms;
  }
  return realSetInterval.call(this, callback, delay, ...args);
};
