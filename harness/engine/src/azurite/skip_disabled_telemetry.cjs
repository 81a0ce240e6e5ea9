// edw-conformance: preloaded (`node --require`, through NODE_OPTIONS) into each Azurite service
// the harness starts from its pinned npm install, always with --disableTelemetry.
//
// Azurite 3.37's dist/src/common/Telemetry.js requires "applicationinsights" when the module
// loads, telemetry on or off, and with telemetry off never touches it. Loading that library is
// about three quarters of the CPU a service takes to start (measured: 1.1-1.6 s of CPU per
// start with it, 0.35-0.55 s without), and the suite starts about sixty services. Nothing of
// Azurite's storage code changes: only this one module request is answered with a stand-in.
// Any use of the stand-in writes a line starting "edw-conformance:" to the error output (which
// the harness keeps and its tests check: Azurite itself catches the error and, with --silent,
// logs nothing) and throws.
"use strict";

const Module = require("module");

const standIn = new Proxy(
  {},
  {
    get(_target, name) {
      if (typeof name === "symbol") {
        return undefined;
      }
      const message =
        `applicationinsights.${name} used, but edw-conformance starts Azurite with ` +
        "--disableTelemetry and does not load the telemetry library";
      process.stderr.write(`edw-conformance: ${message}\n`);
      throw new Error(message);
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
