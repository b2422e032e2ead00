#!/usr/bin/env node
// The private channel against the worker's stdio, in the same run: throughput (MiB/s of bytes
// sent and echoed back) and latency (round trip of one short line, median and p99), with the
// self-test probe echoing (`copy channel` / `copy stdio`). `node bench/channel.js [--quick]`.
'use strict';
const path = require('path');
const { spawnIsolated } = require('../dist/lib');
const { probePath } = require('../dist/lib/selftest');

const quick = process.argv.includes('--quick');
const TOTAL = (quick ? 16 : 128) * 1024 * 1024;
const ROUNDS = quick ? 500 : 5000;
const options = { enforcement: 'best-effort', memory: '256MiB' };

function start(kind) {
  const p = spawnIsolated(probePath(), ['copy', kind], { ...options, channel: kind === 'channel' });
  const out = kind === 'channel' ? p.channel : p.stdout;
  const input = kind === 'channel' ? p.channel : p.stdin;
  return { p, out, input };
}

async function throughput(kind) {
  const { p, out, input } = start(kind);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let got = 0;
  const t0 = process.hrtime.bigint();
  const done = new Promise((resolve) => out.on('data', (d) => { got += d.length; if (got >= TOTAL) resolve(); }));
  (async () => {
    for (let sent = 0; sent < TOTAL; sent += chunk.length) if (!input.write(chunk)) await new Promise((r) => input.once('drain', r));
  })();
  await done;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  input.end();
  p.kill('SIGKILL');
  await p.exited;
  return TOTAL / 1024 / 1024 / s;
}

async function latency(kind) {
  const { p, out, input } = start(kind);
  const times = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    const back = new Promise((r) => out.once('data', r));
    input.write('ping\n');
    await back;
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  input.end();
  p.kill('SIGKILL');
  await p.exited;
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] };
}

(async () => {
  console.log(`channel vs stdio, ${process.platform}, ${TOTAL / 1024 / 1024} MiB each way, ${ROUNDS} round trips`);
  console.log('| | throughput | latency median | latency p99 |');
  console.log('|---|---|---|---|');
  for (const kind of ['stdio', 'channel', 'stdio', 'channel']) {
    const mb = await throughput(kind);
    const l = await latency(kind);
    console.log(`| ${kind} | ${mb.toFixed(0)} MiB/s | ${l.median.toFixed(0)} µs | ${l.p99.toFixed(0)} µs |`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
