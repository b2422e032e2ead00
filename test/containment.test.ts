// Attacks from inside a default ('restricted') worker on its own confinement, on Linux for
// real: each must fail, and the limit must still end the worker afterwards. Every attack runs
// only inside a worker under test (the Go worker's `attack` command), never in this process.
// Controls (privileges: 'inherit', unconfined) run only attacks that are harmless when they
// succeed: reading test files and environments, writing a test-made file, a user namespace.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IsolationOptions, isolationSupport, spawnIsolated } from '../lib';
import { normalizeGroupLimits } from '../lib/group';
import { normalizeOptions } from '../lib/options';
import { collect, firstLine, isLinux, json, root, inLauncher, scratchDir, worker } from './helpers';

type Results = Record<string, string>;
const OK = 'ok';

/** Every attempt failed (none reported "ok"). */
function allFailed(r: Results, what: string): void {
  const got = Object.entries(r).filter(([k, v]) => v === OK && k !== 'mounts' && k !== 'cgroup');
  assert.deepEqual(got, [], `${what}: these attempts succeeded`);
}

const isRoot = isLinux && process.getuid!() === 0;
// The non-root launcher is a child Node run as uid 65534: made so by a root test process, or
// already so (scripts/test-vm.sh runs the suite as uid 65534 owning a delegated cgroup v2
// subtree, where that launcher's workers get cgroups of their own).
const canRunAsNobody = isRoot || (isLinux && process.getuid!() === 65534);

(isLinux ? describe : describe.skip)('containment of a default worker (Linux, attacks from inside)', function () {
  this.timeout(60_000);
  const w = worker();
  let tmp: string;
  before(() => {
    tmp = scratchDir('attack-');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function attack(args: string[], options: IsolationOptions = {}) {
    const c = await collect(spawnIsolated(w, ['attack', ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] }));
    return { c, r: json<Results>(c) };
  }

  (isRoot ? describe : describe.skip)('started by a root launcher', () => {
    it('runs as a uid and gid of its own, no groups, no capabilities, in a PID namespace of its own under an init', async () => {
      const [a, b] = await Promise.all([collect(spawnIsolated(w, ['info'])), collect(spawnIsolated(w, ['info']))]);
      const ia = json(a);
      const ib = json(b);
      for (const i of [ia, ib]) {
        assert.ok((i.uid as number) >= 0x7ff00000 && (i.uid as number) < 0x7ff10000, `uid ${i.uid}`);
        assert.equal(i.gid, i.uid);
        assert.equal(i.groups, null);
        assert.deepEqual([i.CapEff, i.CapPrm, i.CapBnd, i.NoNewPrivs, i.Seccomp], ['0000000000000000', '0000000000000000', '0000000000000000', '1', '2']);
        // PID 1 of the namespace is the init; the worker is its child, as under child_process
        // it is a child, never PID 1.
        assert.deepEqual([i.pid, i.ppid], [2, 1]);
        assert.equal(i.securebits, 0x2f, 'NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED and their locks');
      }
      assert.notEqual(ia.uid, ib.uid, 'two live workers share a uid');
    });

    it('cannot read or write its init (PID 1, its own uid) to forge the status it reports', async () => {
      const { r } = await attack(['proc', '1', '0']);
      allFailed(r, "the init's environ, status fd and memory");
      // Control: the same opens of a dumpable process (itself, unconfined: a confined worker
      // may not open even its own /proc/self/mem for writing, which Landlock counts as a write).
      const control = await attack(['proc', 'self', '0'], { privileges: 'inherit' });
      assert.deepEqual([control.r.environ, control.r.mem], [OK, OK], 'control: the attack can succeed');
    });

    it('cannot raise its own cgroup limits: the files are read-only, and the memory limit still ends it', async () => {
      const { c, r } = await attack(['cgroup-raise', '--', 'alloc', '1024'], { memory: '64MiB', processes: 4, go: false });
      allFailed(r, 'cgroup-raise');
      assert.ok(Object.keys(r).some((k) => k.endsWith('memory.limit_in_bytes') || k.endsWith('memory.max')), JSON.stringify(r));
      const mounts = r.mounts as unknown as string[];
      assert.ok(mounts.length > 0 && mounts.every((m) => / ro[,]/.test(m + ',')), `cgroup mounts: ${JSON.stringify(mounts)}`);
      assert.equal(c.exit.reason, 'memory', `after the attack: ${JSON.stringify(c.exit)}`);
    });

    it('cannot move itself to another cgroup (parent or root), and stays in its own', async () => {
      const { c, r } = await attack(['cgroup-move', '--', 'alloc', '1024'], { memory: '64MiB', processes: 4, go: false });
      allFailed(r, 'cgroup-move');
      assert.equal(c.exit.reason, 'memory', `after the attack: ${JSON.stringify(c.exit)}`);
      assert.match(r.cgroup, /\/spawn-isolated-\d+-[0-9a-f]{6}-p?\d+\n/, 'still in its own cgroup');
    });

    it('cannot open root-owned files for writing (control: privileges inherit can)', async () => {
      const file = path.join(tmp, 'root-owned');
      fs.writeFileSync(file, 'x', { mode: 0o644 });
      const { r } = await attack(['write', '/etc/shadow', '/etc/passwd', file]);
      allFailed(r, 'write');
      const control = await attack(['write', file], { privileges: 'inherit' });
      assert.equal(control.r[file], OK);
    });

    it("cannot read another worker's environ, fd or memory, nor this process's (control: inherit can)", async () => {
      const secretFile = path.join(tmp, 'secret');
      fs.writeFileSync(secretFile, 'secret', { mode: 0o600 });
      const fd = fs.openSync(secretFile, 'r');
      const victim = spawnIsolated(w, ['tree', '30000'], { env: { SECRET: 'hunter2' }, inheritHandles: [fd] });
      try {
        await firstLine(victim);
        const { r } = await attack(['proc', String(victim.pid), '3']);
        allFailed(r, 'sibling /proc');
        const { r: own } = await attack(['proc', String(process.pid), '0']);
        allFailed(own, 'launcher /proc');
        const { r: sig } = await attack(['signal', String(process.pid)]);
        allFailed(sig, 'signal the launcher');
        const control = await attack(['proc', String(victim.pid), '3'], { privileges: 'inherit' });
        assert.equal(control.r.environ, OK, 'control: an inherit worker reads the environ, so the attack can succeed');
      } finally {
        victim.kill('SIGKILL');
        await victim.exited.catch(() => undefined);
        fs.closeSync(fd);
      }
    });

    it('cannot make namespaces, setns or mount (control: inherit can make a user namespace)', async () => {
      const target = fs.mkdtempSync(path.join(tmp, 'mount-target-'));
      fs.chmodSync(target, 0o755);
      const { r } = await attack(['namespaces', target]);
      allFailed(r, 'namespaces');
      assert.match(r.mount, /operation not permitted/);
      assert.match(r.user, /operation not permitted/);
      const control = await attack(['namespaces'], { privileges: 'inherit' });
      assert.equal(control.r.user, OK);
    });

    it("threads count: 3,000 threads under processes: 4 end with reason 'threads' (control: unlimited makes them)", async () => {
      const { c } = await (async () => {
        const c = await collect(spawnIsolated(w, ['attack', 'threads', '3000'], { processes: 4 }));
        return { c };
      })();
      assert.equal(c.exit.reason, 'threads', JSON.stringify(c.exit));
      assert.equal(c.exit.code, 2, 'the real exit status is kept');
      assert.match(c.stderr, /failed to create new OS thread/);
      assert.deepEqual(c.limits.map((l) => (l as { limit: string }).limit), ['threads']);
      const control = await attack(['threads', '3000']);
      assert.equal(control.r.threads as unknown as number, 3000);
    });

    it('threads can be set on its own and is read back as pids.max', async () => {
      const c = await collect(spawnIsolated(w, ['attack', 'threads', '200'], { threads: 50 }));
      assert.equal(c.exit.reason, 'threads');
      const p = spawnIsolated(w, ['sleep', '3000'], { threads: 50 });
      try {
        await new Promise((r) => p.once('spawn', () => r(undefined)));
        const lines = fs.readFileSync(`/proc/${p.pid}/cgroup`, 'utf8');
        const v1 = lines.match(/:pids:(\S+)/);
        const dir = v1 ? `/sys/fs/cgroup/pids${v1[1]}` : `/sys/fs/cgroup${lines.match(/^0::(\S+)/m)![1]}`;
        // One task more than asked: the worker's init (PID 1 of its namespace) is one.
        assert.match(p.enforcement.killOnClose!.mechanism, /\binit\b/);
        assert.equal(fs.readFileSync(`${dir}/pids.max`, 'utf8').trim(), '51');
      } finally {
        p.kill('SIGKILL');
        await p.exited.catch(() => undefined);
      }
    });

    it('uid without gid takes the primary group, never gid 0; the bounding set is cleared', async () => {
      const i = json(await collect(spawnIsolated(w, ['info'], { uid: 65534, cwd: '/' })));
      assert.equal(i.uid, 65534);
      assert.notEqual(i.gid, 0);
      assert.equal(i.CapBnd, '0000000000000000');
      assert.equal(i.NoNewPrivs, '1');
      assert.equal(i.securebits, 0x2f);
      const p = spawnIsolated(w, ['info'], { uid: 3999999 });
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => p.on('error', resolve));
      assert.equal(err.code, 'ERR_INVALID_ARG_VALUE');
      assert.match(err.message, /options\.gid is required/);
    });
  });

  (canRunAsNobody ? describe : describe.skip)('started by a non-root launcher (uid 65534)', function () {
    // Hosts that refuse unprivileged user namespaces (Ubuntu's AppArmor restriction) give a
    // non-root launcher's workers less: the privileges entry says so, and these tests skip.
    before(async function () {
      const probe = (await asNobody(`return (await run(['exit', '0'])).enforcement.privileges;`)) as { enforced: boolean; reason?: string };
      if (!probe.enforced) {
        this.test!.parent!.title += ` [skipped: ${probe.reason}]`;
        this.skip();
      }
    });

    // The launcher runs as nobody in a child Node process; it reports what its workers saw.
    const asNobody = (body: string) => inLauncher(tmp, body, { uid: 65534 });

    it("cannot write the launcher's files, cgroups or anything outside its temp dir (control: inherit can)", async () => {
      const home = path.join(tmp, 'launcher-home');
      fs.mkdirSync(home, { mode: 0o755 });
      const owned = path.join(home, 'owned');
      fs.writeFileSync(owned, 'x', { mode: 0o644 });
      fs.chownSync(home, 65534, 65534);
      fs.chownSync(owned, 65534, 65534);
      const got = (await asNobody(`return {
          info: await run(['info']),
          write: await run(['attack', 'write', ${JSON.stringify(owned)}]),
          create: await run(['attack', 'create', ${JSON.stringify(home)}]),
          // Its /tmp is a tmpfs of its own: writable, and nothing it writes there reaches ours.
          privateTmp: await run(['attack', 'private-tmp', 'nobody-' + process.pid]),
          tmpdir: await run(['attack', 'create', 'TMPDIR']),
          cgroup: await run(['attack', 'cgroup-raise']),
          ns: await run(['attack', 'namespaces']),
          control: await run(['attack', 'write', ${JSON.stringify(owned)}], { privileges: 'inherit' }),
        };`)) as Record<string, { r: Results & Record<string, unknown>; enforcement: Record<string, { enforced: boolean; mechanism: string }> }>;
      const info = got.info.r;
      assert.deepEqual([info.uid, info.pid, info.ppid, info.NoNewPrivs, info.CapEff], [65534, 2, 1, '1', '0000000000000000']);
      assert.equal(got.info.enforcement.privileges.enforced, true, JSON.stringify(got.info.enforcement.privileges));
      allFailed(got.write.r, 'write a launcher-owned file');
      allFailed(got.create.r, 'create files outside its temp dir');
      assert.equal(got.tmpdir.r.TMPDIR, OK, 'it can write in its private TMPDIR');
      assert.deepEqual([got.privateTmp.r['/tmp tmpfs'], got.privateTmp.r['/tmp write']], ['true', OK], JSON.stringify(got.privateTmp.r));
      assert.equal(fs.readdirSync('/tmp').filter((n) => n.startsWith('leftover-nobody-')).length, 0, 'it wrote into the host /tmp');
      allFailed(got.cgroup.r, 'cgroup-raise');
      allFailed(got.ns.r, 'namespaces');
      assert.equal(got.control.r[owned], OK, 'control: an inherit worker writes the file, so the attack can succeed');
    });

    it("cannot read a sibling worker's environ or memory, nor signal its launcher", async () => {
      const got = (await asNobody(`
          const victim = spawnIsolated(w, ['tree', '30000'], { env: { SECRET: 'hunter2' }, stdio: ['ignore', 'pipe', 'ignore'] });
          await new Promise((r) => victim.stdout.once('data', r));
          // The sibling itself: victim.pid is its init when it has one (the init's only child).
          const fs = require('node:fs');
          const kids = '/proc/' + victim.pid + '/task/' + victim.pid + '/children';
          const target = fs.existsSync(kids) && fs.readFileSync(kids, 'utf8').trim() ? fs.readFileSync(kids, 'utf8').trim().split(' ')[0] : String(victim.pid);
          const proc = await run(['attack', 'proc', target, '1']);
          const sig = await run(['attack', 'signal', String(process.pid)]);
          const control = await run(['attack', 'proc', target, '1'], { privileges: 'inherit' });
          victim.kill('SIGKILL');
          return { proc, sig, control };`)) as Record<string, { r: Results }>;
      allFailed(got.proc.r, 'sibling /proc');
      allFailed(got.sig.r, 'signal the launcher');
      assert.equal(got.control.r.environ, OK, 'control: an inherit worker of the same user reads it');
    });

    it('threads are bounded in its own user namespace (RLIMIT_NPROC counts only its tree; pids.max with a delegated cgroup)', async () => {
      const got = (await asNobody(`return await run(['attack', 'threads', '3000'], { threads: 100 });`)) as {
        r: Results | null;
        stderr: string;
        exit: { code: number };
        enforcement: Record<string, { enforced: boolean; mechanism: string }>;
      };
      assert.equal(got.r, null, 'the worker made its 3,000 threads');
      assert.match(got.stderr, /failed to create new OS thread/);
      assert.equal(got.enforcement.threads.enforced, true);
      // Without a cgroup of its own (a root test process's cgroup is not the launcher's to
      // write): RLIMIT_NPROC. In a subtree delegated to uid 65534, pids.max, as for this process.
      assert.equal(got.enforcement.threads.mechanism, isRoot ? 'rlimit-nproc' : isolationSupport().limits.threads.mechanism);
    });
  });

  describe('a polluted Object.prototype changes nothing', () => {
    const polluted = { privileges: 'inherit', killOnClose: false, enforcement: 'best-effort', memoryTotal: 1, cpuCores: 1, threads: 5, processes: 9, uid: 0, total: '1GiB', affinity: [0] };
    function pollute(): () => void {
      for (const [k, v] of Object.entries(polluted)) (Object.prototype as Record<string, unknown>)[k] = v;
      return () => {
        for (const k of Object.keys(polluted)) delete (Object.prototype as Record<string, unknown>)[k];
      };
    }

    it('each option name, polluted on its own, changes neither the options nor a group budget', () => {
      const nasty: Record<string, unknown> = {
        cwd: '/', env: { X: '1' }, stdio: 'inherit', signal: new AbortController().signal, timeout: 1, killSignal: 'SIGKILL',
        forceKillAfter: false, shell: true, detached: true, argv0: 'x', windowsHide: false, memory: '1GiB', cpu: 64, processes: 9, threads: 99, handles: 3, inheritHandles: [0],
        privileges: 'inherit', killOnClose: false, go: false, enforcement: 'best-effort', uid: 0, gid: 0,
        process: '1MiB', total: '1MiB', cores: 64, time: '1ms', affinity: [0], handle: 4,
        memoryTotal: 1, memoryProcess: 1, cpuCores: 1, cpuTimeMs: 1,
      };
      const opts = () => ({ memory: { process: '64MiB' }, cpu: { time: '1s' }, inheritHandles: [] });
      const clean = normalizeOptions('w', [], opts(), 'linux');
      const cleanGroup = normalizeGroupLimits({ cpu: 1 });
      for (const [k, v] of Object.entries(nasty)) {
        (Object.prototype as Record<string, unknown>)[k] = v;
        try {
          const dirty = normalizeOptions('w', [], opts(), 'linux');
          assert.deepEqual({ ...dirty, env: undefined, limits: { ...dirty.limits } }, { ...clean, env: undefined, limits: { ...clean.limits } }, k);
          assert.deepEqual(dirty.env, clean.env, k);
          const g = normalizeGroupLimits({ cpu: 1 });
          assert.deepEqual({ ...g, limits: { ...g.limits } }, { ...cleanGroup, limits: { ...cleanGroup.limits } }, k);
        } finally {
          delete (Object.prototype as Record<string, unknown>)[k];
        }
      }
    });

    it('normalizeOptions reads own properties only, with everything polluted at once', () => {
      const clean = normalizeOptions('w', [], { memory: { process: '64MiB' }, cpu: { time: '1s' } }, 'linux');
      const restore = pollute();
      try {
        const dirty = normalizeOptions('w', [], { memory: { process: '64MiB' }, cpu: { time: '1s' } }, 'linux');
        assert.deepEqual({ ...dirty, env: undefined }, { ...clean, env: undefined });
        assert.equal(dirty.privileges, 'restricted');
        assert.equal(dirty.killOnClose, true);
        assert.equal(dirty.strict, true);
        assert.deepEqual(Object.keys(dirty.limits).sort(), ['cpuTimeMs', 'memoryProcess']);
      } finally {
        restore();
      }
    });

    it('a worker spawned with {} is still restricted, killed on close, and unlimited', async () => {
      const restore = pollute();
      let p;
      try {
        p = spawnIsolated(w, ['info']);
      } finally {
        restore();
      }
      const c = await collect(p);
      const i = json(c);
      assert.deepEqual([i.NoNewPrivs, i.CapEff, i.CapBnd], ['1', '0000000000000000', '0000000000000000']);
      assert.deepEqual(Object.keys(p.enforcement).sort(), ['killOnClose', 'privileges']);
      assert.match(p.enforcement.killOnClose?.mechanism ?? '', /^pid-namespace\+(init\+)?pdeathsig$/);
    });
  });
});
