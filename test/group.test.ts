import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createIsolationGroup, IsolatedProcess, isolationSupport, spawnIsolated } from '../lib';
import { loadBinding } from '../lib/native';
import { GroupLimitEvent } from '../lib/group';
import { collect, cpuThrottled, firstLine, isLinux, json, requireEnforced, worker } from './helpers';

(isolationSupport().spawn ? describe : describe.skip)('isolation groups', function () {
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };

  it('bad budgets throw synchronously, naming the limit', () => {
    assert.throws(() => createIsolationGroup({ memroy: 1 } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /limits\.memroy/ });
    assert.throws(() => createIsolationGroup({ memory: 'lots' }), { code: 'ERR_INVALID_ARG_VALUE', message: /limits\.memory/ });
    assert.throws(() => createIsolationGroup({ cpu: -1 }), { code: 'ERR_OUT_OF_RANGE', message: /limits\.cpu/ });
    assert.throws(() => createIsolationGroup({ processes: 1.5 }), { code: 'ERR_OUT_OF_RANGE', message: /limits\.processes/ });
  });

  it('strict mode refuses a budget this host cannot enforce', function () {
    const s = isolationSupport().limits['memory.total'];
    if (s.enforced) this.skip();
    assert.throws(() => createIsolationGroup({ memory: '1GiB' }), { code: 'ERR_LIMIT_NOT_ENFORCED', limit: 'memory.total' } as never);
  });

  it('runs workers, reports group stats, kill() ends them all, close() releases the group', async () => {
    const g = createIsolationGroup({ ...relaxed, memory: '1GiB', cpu: 2 });
    const ps = [g.spawn(w, ['tree', '60000'], relaxed), g.spawn(w, ['sleep', '60000'], relaxed)];
    const spawned = new Promise((r) => ps[1].on('spawn', () => r(undefined)));
    await firstLine(ps[0]);
    await spawned;
    assert.equal(g.workers.length, 2);
    const live = g.stats();
    assert.ok(live.processes.active >= 2, JSON.stringify(live));
    assert.equal(g.kill(), true);
    const exits = await Promise.all(ps.map((p) => p.exited));
    assert.deepEqual(exits.map((e) => e.reason), ['killed', 'killed']);
    assert.equal(g.workers.length, 0);
    await g.close();
    assert.throws(() => g.spawn(w, ['exit', '0']), { code: 'ERR_INVALID_STATE' });
    assert.deepEqual(g.stats(), g.stats(), 'final figures stay');
  });

  it('Linux: members live in cgroups under the group’s, and close() removes them all', async function () {
    if (!isLinux || !isolationSupport().limits['memory.total'].enforced) this.skip();
    const g = createIsolationGroup({ memory: '512MiB' });
    const info = json<{ cgroup: string }>(await collect(g.spawn(w, ['info'])));
    // v1: the memory hierarchy's line; v2: the unified one ("0::").
    const m = /^(?:\d+:memory|0:):(\S*\/spawn-isolated-\d+-[0-9a-f]{6}-g\d+)\/spawn-isolated-\d+-[0-9a-f]{6}-\d+$/m.exec(info.cgroup);
    assert.ok(m, info.cgroup);
    const groupDir = (isolationSupport().backend === 'linux-cgroup-v2' ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory') + m[1];
    assert.equal(fs.existsSync(groupDir), true);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    (loadBinding() as any).internals.settleCgroups(); // used cgroups go in the background after the exit
    assert.deepEqual(fs.readdirSync(groupDir).filter((d) => d.startsWith('spawn-isolated-')), [], 'the member cgroup went with the member');
    await g.close();
    assert.equal(fs.existsSync(groupDir), false, 'the group cgroup is gone after close()');
  });

  it('Linux: a group’s processes budget, even 1, is the group cgroup’s pids.max (a per-worker filter cannot count a group)', async function () {
    if (!isLinux) this.skip();
    requireEnforced(this, 'processes');
    const g = createIsolationGroup({ processes: 1 });
    try {
      assert.match(g.enforcement.processes!.mechanism, /^cgroup-v[12]$/);
      const p = g.spawn(w, ['sleep', '60000']);
      await new Promise((r) => p.on('spawn', () => r(undefined)));
      const v2 = isolationSupport().backend === 'linux-cgroup-v2';
      const line = fs.readFileSync(`/proc/${p.pid}/cgroup`, 'utf8').split('\n').find((l) => (v2 ? l.startsWith('0::') : /^\d+:([^:]*,)?pids(,[^:]*)?:/.test(l)))!;
      const rel = line.slice(line.lastIndexOf(':') + 1);
      const groupDir = (v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/pids') + rel.slice(0, rel.lastIndexOf('/'));
      assert.match(groupDir, /spawn-isolated-\d+-[0-9a-f]{6}-g\d+$/, 'the member is in a pids cgroup under the group');
      assert.equal(fs.readFileSync(`${groupDir}/pids.max`, 'utf8').trim(), '64');
    } finally {
      await g.close();
    }
  });

  it('GOMAXPROCS / GOMEMLIMIT follow the group budget when the worker sets none', async () => {
    const g = createIsolationGroup({ ...relaxed, cpu: 1.5, memory: '1GiB' });
    try {
      const env = json<string[]>(await collect(g.spawn(w, ['env'], { ...relaxed, env: {} })));
      assert.ok(env.includes('GOMAXPROCS=2'), env.join(' '));
      assert.ok(env.includes(`GOMEMLIMIT=${Math.floor(2 ** 30 * 0.9)}`));
    } finally {
      await g.close();
    }
  });

  it('memory is one budget for all members: the second worker pushes the group over and one ends with reason memory', async function () {
    requireEnforced(this, 'memory.total');
    this.timeout(60_000);
    const holdAndWait = async (p: IsolatedProcess) => {
      await firstLine(p);
      return p;
    };
    // Control: the same two workers in two separate 256 MiB groups both fit.
    const solo = [createIsolationGroup({ memory: '256MiB' }), createIsolationGroup({ memory: '256MiB' })];
    const fits = await Promise.all(solo.map((g) => holdAndWait(g.spawn(w, ['alloc', '150', '100'], { go: false }))));
    assert.deepEqual((await Promise.all(fits.map((p) => p.exited))).map((e) => e.reason), ['exit', 'exit']);
    await Promise.all(solo.map((g) => g.close()));

    const g = createIsolationGroup({ memory: '256MiB' });
    const limits: GroupLimitEvent[] = [];
    g.on('limit', (l: GroupLimitEvent) => limits.push(l));
    const a = await holdAndWait(g.spawn(w, ['alloc', '150', '30000'], { go: false }));
    const b = g.spawn(w, ['alloc', '150', '30000'], { go: false });
    const first = await Promise.race([a.exited, b.exited]);
    assert.equal(first.reason, 'memory');
    assert.ok(limits.some((l) => l.limit === 'memory'), 'the group emitted a limit event');
    assert.ok(g.stats().peakMemory <= 256 * 2 ** 20 + 8 * 2 ** 20, `group peak ${g.stats().peakMemory}`);
    await g.close();
  });

  it('cpu is one budget for all members', async function () {
    requireEnforced(this, 'cpu.cores');
    this.timeout(60_000);
    const cpu = (es: { stats: { cpuUserMs: number; cpuKernelMs: number } }[]) => es.reduce((t, e) => t + e.stats.cpuUserMs + e.stats.cpuKernelMs, 0);
    // The control (the same two workers outside the group) runs at the same time, so both meet
    // whatever else keeps the machine busy.
    const g = createIsolationGroup({ cpu: 0.5 });
    // Against the members' whole lives (start and exit included: slow under software emulation).
    const t0 = Date.now();
    const members = [0, 1].map(() => g.spawn(w, ['spin', '3000', '2']));
    let throttled = -1;
    members[0].on('spawn', () => setTimeout(() => (throttled = isLinux ? cpuThrottled(members[0].pid!, 1) : -1), 2000));
    const [capped, free] = await Promise.all([
      Promise.all(members.map((m) => m.exited)).then((x) => ({ x, wall: Date.now() - t0 })),
      Promise.all([0, 1].map(() => spawnIsolated(w, ['spin', '3000', '2']).exited)),
    ]);
    await g.close();
    assert.ok(cpu(capped.x) <= capped.wall * 0.5 * 1.25, `two workers under a 0.5-core group used ${cpu(capped.x)} ms in ${capped.wall} ms`);
    // The control got clearly more, or (a machine too busy to give it more) the kernel counted
    // the periods it throttled the group.
    assert.ok(cpu(free) > cpu(capped.x) * 1.3 || throttled > 0, `control: without the group they used ${cpu(free)} ms beside the group's ${cpu(capped.x)} ms; throttled ${throttled}`);
  });

  it('each worker’s own limits still apply inside the group', async function () {
    requireEnforced(this, 'memory.total');
    const g = createIsolationGroup({ memory: '1GiB' });
    try {
      const small = await g.spawn(w, ['alloc', '512'], { memory: '64MiB', go: false }).exited;
      assert.equal(small.reason, 'memory');
      const other = await g.spawn(w, ['alloc', '128']).exited;
      assert.equal(other.reason, 'exit');
    } finally {
      await g.close();
    }
  });
});
