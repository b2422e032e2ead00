#!/usr/bin/env node
// Tests the glibc baseline check (scripts/ci/glibc-baseline.js) on real binaries and the real
// objdump: shared objects built here with the host's C compiler (cc), each with a planted
// reference, must fail or pass the check as their references say:
//   - symbols versioned GLIBC_2.99, GLIBCXX_3.4.99, CXXABI_1.3.99 and GLIBC_PRIVATE (taken
//     from a stub library that defines them, so the test does not depend on the host's glibc)
//     fail; the same stub's GLIBC_2.2.5 symbol passes;
//   - getrandom (GLIBC_2.25, from the host's glibc) passes at the 2.28 baseline and fails with
//     the baseline set to 2.20;
//   - objdump's older format (versions without parentheses, binutils < 2.35) is read the same;
//   - a listing with no versioned reference is refused (a parser that reads nothing passes all).
// With --prebuild=FILE (or, without it, prebuilds/linux-x64/*.node when present) the real
// prebuild must pass. Ends with "N passed, N failed".
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const g = require('./glibc-baseline');

const root = path.resolve(__dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glibc-baseline-'));
let passed = 0;
let failed = 0;

function test(name, fn) {
  try {
    const note = fn();
    passed++;
    console.log(`ok    ${name}${note ? `: ${note}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}\n      ${String(e.message).split('\n').join('\n      ')}`);
  }
}

function cc(args) {
  execFileSync('cc', args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
}

function write(name, text) {
  fs.writeFileSync(path.join(tmp, name), text);
  return path.join(tmp, name);
}

/** Expects checkPrebuild(file, baseline) to throw with every one of `names` in its message. */
function refused(file, names, baseline) {
  let message = null;
  try {
    g.checkPrebuild(file, baseline);
  } catch (e) {
    message = e.message;
  }
  if (message === null) throw new Error(`${path.basename(file)} passed the check`);
  for (const n of names) if (!message.includes(n)) throw new Error(`the check did not name ${n}: ${message}`);
  return message.slice(message.indexOf('needs'));
}

// A stub library that defines symbols under the versions a newer runtime would have.
write('stub.map', 'GLIBC_2.2.5 { global: si_old; };\nGLIBC_2.99 { global: si_new_glibc; };\nGLIBC_PRIVATE { global: si_private; };\nGLIBCXX_3.4.99 { global: si_new_glibcxx; };\nCXXABI_1.3.99 { global: si_new_cxxabi; local: *; };\n');
write('stub.c', 'void si_old(void) {}\nvoid si_new_glibc(void) {}\nvoid si_private(void) {}\nvoid si_new_glibcxx(void) {}\nvoid si_new_cxxabi(void) {}\n');
cc(['-shared', '-fPIC', '-o', 'libsistub.so', 'stub.c', '-Wl,--version-script=stub.map']);
const planted = (name, calls) => {
  write(`${name}.c`, `${calls.map((f) => `void ${f}(void);`).join('\n')}\nvoid entry(void) { ${calls.map((f) => `${f}();`).join(' ')} }\n`);
  cc(['-shared', '-fPIC', '-o', `${name}.so`, `${name}.c`, '-L.', '-lsistub']);
  return path.join(tmp, `${name}.so`);
};

test('a planted GLIBC_2.99 reference fails', () => refused(planted('glibc', ['si_old', 'si_new_glibc']), ['si_new_glibc (GLIBC_2.99)']));
test('a planted GLIBCXX_3.4.99 reference fails', () => refused(planted('glibcxx', ['si_old', 'si_new_glibcxx']), ['si_new_glibcxx (GLIBCXX_3.4.99)']));
test('a planted CXXABI_1.3.99 reference fails', () => refused(planted('cxxabi', ['si_old', 'si_new_cxxabi']), ['si_new_cxxabi (CXXABI_1.3.99)']));
test('a planted GLIBC_PRIVATE reference fails', () => refused(planted('private', ['si_old', 'si_private']), ['si_private (GLIBC_PRIVATE)']));
test('a library outside the allowed set fails (libsistub.so)', () => {
  const file = planted('oldonly', ['si_old']);
  if (g.aboveBaseline(file).length) throw new Error(`GLIBC_2.2.5 was taken for newer: ${g.aboveBaseline(file)}`);
  try {
    g.checkPrebuild(file);
  } catch (e) {
    if (/libsistub\.so/.test(e.message) && !/needs more/.test(e.message)) return e.message.slice(e.message.indexOf('links'));
    throw e;
  }
  throw new Error('passed');
});

write('getrandom.c', '#include <sys/random.h>\nint entry(void *b) { return (int)getrandom(b, 8, 0); }\n');
cc(['-shared', '-fPIC', '-O2', '-o', 'getrandom.so', 'getrandom.c']);
const getrandom = path.join(tmp, 'getrandom.so');
test('getrandom (GLIBC_2.25) passes at the 2.28 baseline', () => g.checkPrebuild(getrandom));
test('getrandom (GLIBC_2.25) fails with the baseline set to 2.20', () => refused(getrandom, ['getrandom (GLIBC_2.25)'], { ...g.BASELINE, GLIBC: '2.20' }));

test("objdump's two formats (binutils 2.35+ and older) read the same", () => {
  const listing = execFileSync('objdump', ['-T', getrandom], { encoding: 'utf8' });
  if (!/\(GLIBC_2\.25\)\s+getrandom/.test(listing) && !/ GLIBC_2\.25\s+getrandom/.test(listing)) throw new Error(`unexpected listing:\n${listing}`);
  const newStyle = listing.replace(/ {1,2}(GLIBC_[0-9.]+) /g, ' ($1) ');
  const oldStyle = listing.replace(/\((GLIBC_[0-9.]+)\)/g, ' $1');
  const low = { ...g.BASELINE, GLIBC: '2.20' };
  const a = g.aboveInListing(newStyle, low);
  const b = g.aboveInListing(oldStyle, low);
  if (JSON.stringify(a) !== JSON.stringify(b) || !a.includes('getrandom (GLIBC_2.25)')) throw new Error(`new ${JSON.stringify(a)}, old ${JSON.stringify(b)}`);
  return `both give ${a.join(', ')}`;
});

test('a listing without versioned references is refused, not passed', () => {
  write('plain.c', 'int entry(int x) { return x + 1; }\n');
  cc(['-shared', '-fPIC', '-nostdlib', '-o', 'plain.so', 'plain.c']);
  try {
    g.checkPrebuild(path.join(tmp, 'plain.so'));
  } catch (e) {
    if (/cannot read/.test(e.message)) return 'refused';
    throw e;
  }
  throw new Error('passed');
});

// The real prebuild, when there is one.
const given = (process.argv.find((a) => a.startsWith('--prebuild=')) || '').slice('--prebuild='.length);
const dir = path.join(root, 'prebuilds', `linux-${process.arch}`);
const real = given || (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')).map((f) => path.join(dir, f))[0] : '');
if (real) test(`the real prebuild passes (${path.relative(root, path.resolve(real))})`, () => g.checkPrebuild(path.resolve(real)));
else console.log('note  no prebuilds/linux-*/ addon here: only the planted cases ran (npm run prebuilds makes one)');

fs.rmSync(tmp, { recursive: true, force: true });
console.log(`glibc-baseline: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
