#!/usr/bin/env node
// npm start: launches the Go test worker under limits and shows what happens when it hits
// them. Natively on Linux (and Windows); on Linux, `npm start -- --wine` runs it on Windows
// under Wine (which accepts job limits but enforces none: the demo says so).
'use strict';
const path = require('path');
const root = path.resolve(__dirname, '..');

if (process.argv.includes('--wine') && process.platform !== 'win32') {
  process.exit(require('../scripts/wine-env').runWindowsNode('demo', [__filename]));
}

const { build, hostTarget } = require('../scripts/build-fixtures');
const { spawnIsolated, isolationSupport } = require('../dist/lib');
const worker =
  process.platform === 'win32'
    ? path.join(root, 'test', 'fixtures', 'bin', 'windows-amd64', 'worker.exe')
    : build(...hostTarget());

function mib(n) {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

async function run(title, args, options) {
  const t0 = Date.now();
  const p = spawnIsolated(worker, args, options);
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.resume();
  p.on('limit', (l) => console.log(`    limit event: ${JSON.stringify(l)}`));
  p.on('error', () => {});
  try {
    const e = await p.exited;
    const how = Object.entries(p.enforcement)
      .filter(([k]) => k !== 'killOnClose' && k !== 'privileges')
      .map(([k, v]) => `${k}=${v.mechanism}`)
      .join(', ');
    console.log(`${title}\n    enforced by: ${how || '-'}`);
    console.log(`    -> reason ${e.reason}, code ${e.code}, signal ${e.signal}, peak ${mib(e.stats.peakMemory)}, ` +
      `cpu ${Math.round(e.stats.cpuUserMs + e.stats.cpuKernelMs)} ms, wall ${Date.now() - t0} ms`);
    if (out.trim()) console.log(`    worker said: ${out.trim().split('\n')[0].slice(0, 160)}`);
  } catch (err) {
    console.log(`${title}\n    -> refused: ${err.code}: ${err.message}`);
  }
}

(async () => {
  const s = isolationSupport();
  console.log(`spawn-isolated demo on ${s.platform}/${s.arch}, backend ${s.backend}\n`);
  for (const [name, l] of Object.entries(s.limits)) {
    console.log(`  ${name.padEnd(15)} ${l.enforced ? 'enforced' : 'NOT enforced'} (${l.mechanism})${l.reason ? ': ' + l.reason : ''}`);
  }
  console.log('');
  const mode = { enforcement: 'best-effort' };
  await run('1. allocate 1 GiB under memory: 128MiB', ['alloc', '1024'], { ...mode, memory: '128MiB', go: false });
  await run('2. spin for 30 s under cpu.time: 1s', ['spin', '30000', '1'], { ...mode, cpu: { time: '1s' } });
  await run('3. two threads spinning 2 s under cpu: 0.5', ['spin', '2000', '2'], { ...mode, cpu: 0.5 });
  await run('4. start a child under processes: 1', ['child'], { ...mode, processes: 1 });
  await run('5. open 200 files under handles: 64', ['openfiles', '200'], { ...mode, handles: 64 });
  await run('6. sleep 60 s under timeout: 500ms', ['sleep', '60000'], { ...mode, timeout: '500ms' });
  await run('7. strict mode (the default) with every limit', ['info'], { memory: '256MiB', cpu: 1, processes: 4, handles: 500 });
})();
