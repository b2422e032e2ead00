// The Linux prebuild's baseline: what it may need of the C and C++ runtimes to load on glibc
// 2.28 (Debian 10, RHEL 8 and its rebuilds, Ubuntu 18.10: the oldest glibc Node 18+ runs on).
// Read from the binary with objdump: the version of every symbol it takes from another object
// (objdump -T) and the libraries it names (objdump -p, NEEDED).
//
// objdump prints a reference's version in parentheses since binutils 2.35 ("(GLIBC_2.25)
// getrandom"), without them before ("GLIBC_2.25 getrandom"); both are read here. The check
// is tested on planted symbols by scripts/ci/test-glibc-baseline.js.
'use strict';
const { execFileSync } = require('child_process');

const BASELINE = { GLIBC: '2.28', GLIBCXX: '3.4.22', CXXABI: '1.3.9' };

// What a glibc 2.28 system has, and nothing that a distribution may lack.
const ALLOWED_NEEDED = ['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1', 'libstdc++.so.6', 'libgcc_s.so.1'];

/** Whether version a (dotted) is above b. */
function newer(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0);
  return false;
}

/**
 * The versioned symbols of an `objdump -T` listing: [{ symbol, family, version, undefined }],
 * family GLIBC, GLIBCXX or CXXABI (others, such as GCC_ or Base, are left out); version is
 * "PRIVATE" for GLIBC_PRIVATE.
 */
function versionedSymbols(listing) {
  const found = [];
  for (const line of listing.split('\n')) {
    // address, flags, section TAB size, then "(VERSION)" or "VERSION", then the name.
    const m = /^[0-9a-f]+\s.*?\s(\S+)\t[0-9a-f]+\s+\(?(GLIBC|GLIBCXX|CXXABI)_([0-9.]+|PRIVATE)\)?\s+(\S+)\s*$/.exec(line);
    if (m) found.push({ section: m[1], family: m[2], version: m[3], symbol: m[4], undefined: m[1] === '*UND*' });
  }
  return found;
}

/** What a listing's references need above `baseline`, as "symbol (FAMILY_VERSION)". */
function aboveInListing(listing, baseline = BASELINE) {
  const bad = new Set();
  for (const s of versionedSymbols(listing)) {
    if (!s.undefined) continue; // its own definitions are not requirements
    if (s.version === 'PRIVATE' || newer(s.version, baseline[s.family])) bad.add(`${s.symbol} (${s.family}_${s.version})`);
  }
  return [...bad];
}

/** What `file` needs above `baseline` (objdump -T), as "symbol (FAMILY_VERSION)". */
function aboveBaseline(file, baseline = BASELINE) {
  return aboveInListing(execFileSync('objdump', ['-T', file], { encoding: 'utf8' }), baseline);
}

/** The libraries `file` names (objdump -p, NEEDED). */
function needed(file) {
  const text = execFileSync('objdump', ['-p', file], { encoding: 'utf8' });
  return [...text.matchAll(/^\s*NEEDED\s+(\S+)\s*$/gm)].map((m) => m[1]);
}

/**
 * Throws unless `file` loads on the baseline: no reference above it, no library outside
 * ALLOWED_NEEDED, and at least some versioned references (a listing that yields none means
 * the parser no longer reads objdump's format, and would pass anything). Returns a summary.
 */
function checkPrebuild(file, baseline = BASELINE) {
  const listing = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });
  const refs = versionedSymbols(listing).filter((s) => s.undefined);
  if (refs.length === 0) throw new Error(`${file}: objdump -T shows no versioned glibc reference; the check cannot read this objdump's format`);
  const bad = aboveInListing(listing, baseline);
  const libs = needed(file);
  const odd = libs.filter((l) => !ALLOWED_NEEDED.includes(l));
  const problems = [];
  if (bad.length) problems.push(`needs more than glibc ${baseline.GLIBC} / GLIBCXX_${baseline.GLIBCXX} / CXXABI_${baseline.CXXABI}: ${bad.join(', ')}`);
  if (odd.length) problems.push(`links libraries a glibc ${baseline.GLIBC} system may lack: ${odd.join(', ')}`);
  if (problems.length) throw new Error(`${file} ${problems.join('; ')}`);
  const newest = {};
  for (const s of refs) if (!newest[s.family] || newer(s.version, newest[s.family])) newest[s.family] = s.version;
  return `${refs.length} versioned references, newest ${Object.entries(newest).map(([f, v]) => `${f}_${v}`).join(', ')}; NEEDED ${libs.join(' ')}`;
}

module.exports = { BASELINE, ALLOWED_NEEDED, newer, versionedSymbols, aboveInListing, aboveBaseline, needed, checkPrebuild };
