// mocha --require for runs under software emulation (scripts/test-vm.sh): a time limit a test
// sets itself (this.timeout(ms) in a test or hook) is stretched by SPAWN_ISOLATED_TEST_SLOW, as
// the default (--timeout) is by the script. Only the limit changes; what a test asserts does not.
'use strict';
const Context = require('mocha/lib/context');

const factor = Math.max(1, Number(process.env.SPAWN_ISOLATED_TEST_SLOW) || 1);
const timeout = Context.prototype.timeout;
Context.prototype.timeout = function (ms) {
  if (arguments.length === 0 || typeof ms !== 'number' || ms <= 0) return timeout.apply(this, arguments);
  return timeout.call(this, ms * factor);
};
