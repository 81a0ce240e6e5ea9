// edw-conformance: preloaded (`node --require`, through NODE_OPTIONS) into each Azurite service
// the harness starts from its pinned npm install, always with --disableTelemetry.
//
// Azurite 3.37's dist/src/common/Telemetry.js requires "applicationinsights" when the module
// loads, telemetry on or off, and with telemetry off never touches it. Loading that library is
// about three quarters of the CPU a service takes to start (measured: 1.2-1.6 s of CPU per
// start with it, 0.35-0.45 s without), and the suite starts about sixty services. Nothing of
// Azurite's storage code changes: only this one module request is answered with a stand-in,
// which throws on any use, so a telemetry path that ran after all fails loudly instead of
// silently doing nothing.
"use strict";

const Module = require("module");

const standIn = new Proxy(
  {},
  {
    get(_target, name) {
      if (typeof name === "symbol") {
        return undefined;
      }
      throw new Error(
        `applicationinsights.${name} used, but edw-conformance starts Azurite with ` +
          "--disableTelemetry and does not load the telemetry library"
      );
    },
  }
);

const load = Module._load;
Module._load = function loadWithoutTelemetry(request, parent, isMain) {
  if (request === "applicationinsights") {
    return standIn;
  }
  return load.apply(this, arguments);
};
