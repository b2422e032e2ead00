#!/usr/bin/env node
// What one thread waking another costs this machine: two threads hand a turn back and forth
// (Atomics.wait / Atomics.notify: a futex each way) N times; the process's CPU per round trip
// (two wake-ups) and its wall time. Run it as is (the threads may sit on different CPUs: a
// wake-up then crosses CPUs, an IPI, and on a VM an exit to the hypervisor) and under
// `taskset -c 0` (both on one CPU) to compare:
//   node bench/wake-cost.js [N]
//   taskset -c 0 node bench/wake-cost.js [N]
'use strict';
const { Worker, isMainThread, workerData } = require('worker_threads');

const N = Number(process.argv[2] || 50000);

if (isMainThread) {
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const w = new Worker(__filename, { workerData: { shared, n: N } });
  w.once('online', () => {
    // Wait for the worker's loop to be up: its first wait sets shared[1].
    while (Atomics.load(shared, 1) === 0) Atomics.wait(shared, 1, 0, 1);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      Atomics.store(shared, 0, 1); // the worker's turn
      Atomics.notify(shared, 0);
      while (Atomics.load(shared, 0) === 1) Atomics.wait(shared, 0, 1);
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e3 / N;
    const c = process.cpuUsage(cpu0);
    const cpu = (c.user + c.system) / N;
    console.log(`${N} round trips (two wake-ups each): ${cpu.toFixed(2)} us of CPU and ${wall.toFixed(2)} us of wall time a round trip`);
    Atomics.store(shared, 0, 2); // done
    Atomics.notify(shared, 0);
  });
} else {
  const { shared, n } = workerData;
  Atomics.store(shared, 1, 1);
  Atomics.notify(shared, 1);
  for (let i = 0; i < n; i++) {
    while (Atomics.load(shared, 0) === 0) Atomics.wait(shared, 0, 0);
    if (Atomics.load(shared, 0) === 2) break;
    Atomics.store(shared, 0, 0); // the main thread's turn
    Atomics.notify(shared, 0);
  }
}
