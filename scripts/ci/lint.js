#!/usr/bin/env node
// The CI's own checks, cheap enough for every run (.ci/run and the workflows' lint job):
//   actionlint  the workflows (.github/workflows/*.yml): syntax, expressions, job needs,
//               matrix keys, runner labels, the inputs of the actions used. Pinned; built
//               from its Go module into .cache/ (the Go module proxy; $ACTIONLINT names
//               another binary). shellcheck and pyflakes integration off: every run: step
//               is one `node scripts/ci/...` line, and the result does not depend on whether
//               the host has them.
//               It must refuse a planted bad workflow (actionlint-canary).
//   job-scripts every job has timeout-minutes and runs a `node scripts/ci/X.js`, which exists
//               and lists its steps
//   glibc       the glibc baseline check against planted symbols (test-glibc-baseline.js)
'use strict';
const fs = require('fs');
const path = require('path');
const { root, sh, out, job } = require('./lib');

const ACTIONLINT = '1.7.12';

function actionlint() {
  if (process.env.ACTIONLINT) return process.env.ACTIONLINT;
  const dir = path.join(root, '.cache', `actionlint-${ACTIONLINT}`);
  const exe = path.join(dir, process.platform === 'win32' ? 'actionlint.exe' : 'actionlint');
  if (!fs.existsSync(exe)) {
    let version = '';
    try {
      version = out('go', ['env', 'GOVERSION']);
    } catch {}
    const m = /^go1\.(\d+)/.exec(version);
    if (!m || Number(m[1]) < 25) throw new Error(`actionlint ${ACTIONLINT} is built from source with Go 1.25 or later; go is ${version || 'not on PATH'} (or set ACTIONLINT to an actionlint binary)`);
    sh('go', ['install', `github.com/rhysd/actionlint/cmd/actionlint@v${ACTIONLINT}`], {
      env: { ...process.env, GOBIN: dir, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    });
  }
  return exe;
}

const workflows = () => fs.readdirSync(path.join(root, '.github', 'workflows')).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join('.github', 'workflows', f));

job('lint', [
  {
    name: 'actionlint',
    run: () => {
      const exe = actionlint();
      console.log(`actionlint ${out(exe, ['-version']).split('\n')[0]}`);
      sh(exe, ['-no-color', '-shellcheck=', '-pyflakes=', ...workflows()]);
      console.log(`actionlint: ${workflows().join(', ')}: no problems`);
    },
  },
  {
    // The same actionlint on a planted bad workflow must fail, naming each planted fault: a
    // misspelt input of an action used here, a job that needs a job that is not there.
    name: 'actionlint-canary',
    run: () => {
      const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'actionlint-canary-'));
      const file = path.join(dir, 'bad.yml');
      fs.writeFileSync(file, 'name: bad\non: [push]\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n    steps:\n      - uses: actions/setup-go@v6\n        with: { go-versoin: stable }\n  b:\n    needs: c\n    runs-on: windows-2025\n    steps:\n      - run: node scripts/ci/lint.js\n');
      const r = require('child_process').spawnSync(actionlint(), ['-no-color', '-shellcheck=', '-pyflakes=', file], { encoding: 'utf8' });
      fs.rmSync(dir, { recursive: true, force: true });
      if (r.status === 0) throw new Error('actionlint passed a planted bad workflow');
      for (const want of ['"go-versoin" is not defined', 'needs job "c" which does not exist']) if (!r.stdout.includes(want)) throw new Error(`actionlint did not say ${want}:\n${r.stdout}`);
      console.log('actionlint refuses the planted faults (a misspelt input, a missing job)');
    },
  },
  {
    name: 'job-scripts',
    run: () => {
      const seen = new Set();
      for (const wf of workflows()) {
        const text = fs.readFileSync(path.join(root, wf), 'utf8');
        for (const m of text.matchAll(/node (scripts\/ci\/[\w-]+\.js)/g)) seen.add(m[1]);
        // Every job: a timeout (a hung Wine or runner step would otherwise hold it for 6 h) and
        // its steps in a job script.
        const jobs = text.slice(text.indexOf('\njobs:')).split(/\n(?= {2}[\w-]+:\s*\n)/).slice(1);
        for (const j of jobs) {
          const name = j.trim().split(':')[0];
          if (!/\n {4}timeout-minutes: \d+/.test(j)) throw new Error(`${wf}: job ${name} has no timeout-minutes`);
          if (!/node scripts\/ci\/[\w-]+\.js/.test(j)) throw new Error(`${wf}: job ${name} runs no scripts/ci job script`);
        }
        console.log(`${wf}: ${jobs.length} jobs, each with timeout-minutes and a job script`);
      }
      if (seen.size === 0) throw new Error('no workflow runs a scripts/ci job script');
      for (const s of seen) {
        if (!fs.existsSync(path.join(root, s))) throw new Error(`a workflow runs ${s}, which does not exist`);
        if (s.endsWith('/lint.js')) continue;
        const listed = out(process.execPath, [s, '--list']);
        if (!listed) throw new Error(`${s} --list printed no step`);
      }
      console.log(`job scripts the workflows run: ${[...seen].sort().join(', ')}`);
    },
  },
  { name: 'glibc', run: () => sh(process.execPath, [path.join(__dirname, 'test-glibc-baseline.js')]) },
]);
