// What the workflow job scripts (scripts/ci/*.js) share: a job is a list of named steps that
// run in order, the same way on a GitHub runner and on this project's Debian machines; a step
// that only a runner's OS can do says so instead of pretending. Each script lists its steps with
// --list and runs a part of them with --only=NAME,... or --skip=NAME,...
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const win = process.platform === 'win32';
const onGitHub = process.env.GITHUB_ACTIONS === 'true';

/** Runs `cmd args` with inherited stdio; throws on a non-zero exit. npm and npx go through the shell on Windows. */
function sh(cmd, args = [], opts = {}) {
  const shell = opts.shell ?? (win && /^(npm|npx)$/.test(cmd));
  const shown = [cmd, ...args].map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
  console.log(`$ ${shown}`);
  // Through a shell (Windows' npm.cmd), arguments are quoted here: Node does not.
  const argv = shell ? args.map((a) => (/[\s"&|<>^]/.test(a) ? `"${a.replace(/"/g, '""')}"` : a)) : args;
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', ...opts, shell });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${shown}: exit ${r.status ?? r.signal}`);
}

/** Like sh, but returns stdout (trimmed). */
function out(cmd, args = [], opts = {}) {
  const shell = opts.shell ?? (win && /^(npm|npx)$/.test(cmd));
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts, shell });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}`);
  return r.stdout.trim();
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Runs a job: steps is [{ name, run, why? }]; a step whose run is a string is not run here and
 * that string says why (printed, and counted as "runner only"). Prints one line per step and a
 * closing summary; exits non-zero at the first failure.
 */
function job(title, steps) {
  const argv = process.argv.slice(2);
  const pick = (flag) => {
    const a = argv.find((x) => x.startsWith(`--${flag}=`));
    return a ? a.slice(flag.length + 3).split(',') : null;
  };
  if (argv.includes('--list')) {
    for (const s of steps) console.log(`${s.name}${typeof s.run === 'string' ? `  (not here: ${s.run})` : ''}`);
    return;
  }
  const only = pick('only');
  const skip = pick('skip') || [];
  for (const n of [...(only || []), ...skip]) if (!steps.some((s) => s.name === n)) throw new Error(`${title}: no step named ${n} (--list names them)`);
  const t0 = Date.now();
  let ran = 0;
  const notHere = [];
  for (const s of steps) {
    if ((only && !only.includes(s.name)) || skip.includes(s.name)) continue;
    if (typeof s.run === 'string') {
      console.log(`--- ${title}: ${s.name}: not run on this host (${s.run})`);
      notHere.push(s.name);
      continue;
    }
    const t = Date.now();
    console.log(onGitHub ? `::group::${s.name}` : `--- ${title}: ${s.name}`);
    try {
      s.run();
    } catch (e) {
      if (onGitHub) console.log('::endgroup::');
      console.error(`${onGitHub ? '::error::' : ''}${title}: step ${s.name} failed: ${e.message}`);
      console.log(`${title}: ${ran} passed, 1 failed`);
      process.exit(1);
    }
    if (onGitHub) console.log('::endgroup::');
    console.log(`--- ${title}: ${s.name}: ok (${Math.round((Date.now() - t) / 1000)} s)`);
    ran++;
  }
  const rest = notHere.length ? `; left to the runner's OS: ${notHere.join(', ')}` : '';
  console.log(`${title}: all ${ran} steps ran in ${Math.round((Date.now() - t0) / 1000)} s${rest}`);
  console.log(`${title}: ${ran} passed, 0 failed`);
}

/** The value of --name=VALUE on the command line, or fallback. */
function arg(name, fallback) {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

/** A directory under .cache/ci (made empty when fresh is true). */
function cacheDir(name, fresh = false) {
  const dir = path.join(root, '.cache', 'ci', name);
  if (fresh) fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The one file in dir whose name matches re; throws when there is none or more than one. */
function single(dir, re) {
  const found = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => re.test(f)) : [];
  if (found.length !== 1) throw new Error(`expected one ${re} in ${path.relative(root, dir) || dir}, found ${found.length ? found.join(', ') : 'none'}`);
  return path.join(dir, found[0]);
}

module.exports = { root, win, onGitHub, sh, out, isRoot, job, arg, cacheDir, single };
