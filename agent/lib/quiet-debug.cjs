// The `debug` package as the bundle gives it to the packages that use it (scripts/bundle.ts). The
// broker's MQTT parser and writer (mqtt-packet) call it about a dozen times for each reading, and
// debug's own function gathers its arguments into a new array on every call before it looks whether
// it is on. Unless DEBUG is set when the agent starts, each namespace gets a function that does nothing.
'use strict';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS, as the packages require it
const createDebug = require('debug');

function quiet(namespace) {
  const off = function () {};
  off.namespace = namespace;
  off.enabled = false;
  off.extend = (sub, delimiter = ':') => quiet(namespace + delimiter + sub);
  return off;
}

module.exports = process.env.DEBUG ? createDebug : quiet;
