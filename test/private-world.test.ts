// A private world per worker (Linux): its own session with no terminal to write into, an init
// it cannot reach, no uid 0 at a confined level, its own /tmp, /var/tmp and /dev/shm, and temp
// directories that leave no trace and never stall the launcher. Every attack runs inside a
// worker under test (the Go worker's `attack` command); controls run only attacks that are
// harmless when they succeed.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IsolationOptions, spawnIsolated } from '../lib';
import { loadBinding } from '../lib/native';
import { collect, firstLine, holdFifo, inLauncher, isLinux, json, root, scratchDir, slow, until, worker } from './helpers';

type Results = Record<string, string>;
const isRoot = isLinux && process.getuid!() === 0;
const lib = path.join(root, 'dist', 'lib', 'index.js');

/** The longest gap between 5 ms ticks of the event loop while `work` runs. */
async function loopGap(work: () => Promise<void>): Promise<number> {
  let last = Date.now();
  let max = 0;
  const t = setInterval(() => {
    const now = Date.now();
    max = Math.max(max, now - last);
    last = now;
  }, 5);
  try {
    await work();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    clearInterval(t);
  }
  return max;
}

/** This process's trash directories (where ended workers' temp directories go to be removed). */
function trashEntries(base = os.tmpdir()): string[] {
  return fs
    .readdirSync(base)
    .filter((n) => n.startsWith(`spawn-isolated-${process.pid}.`) && n.includes('-trash-'))
    .flatMap((n) => fs.readdirSync(path.join(base, n)).map((e) => path.join(base, n, e)));
}

(isLinux ? describe : describe.skip)('a private world per worker (Linux)', function () {
  this.timeout(120_000);
  const w = worker();
  let tmp: string;
  before(() => {
    tmp = scratchDir('world-');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function attack(args: string[], options: IsolationOptions = {}): Promise<Results> {
    return json<Results>(await collect(spawnIsolated(w, ['attack', ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })));
  }

  describe('its own session: no terminal to push commands into', () => {
    it('with the launcher on a terminal: no TIOCSTI / TIOCLINUX on inherited stdin, no /dev/tty (control: inherit as root can push)', async function () {
      if (!isRoot) this.skip(); // the control needs CAP_SYS_ADMIN; the confined runs need nothing
      const got = await inLauncher(
        tmp,
        `return {
           inheritedStdin: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'] }),
           pipes: await run(['attack', 'tty', ' '], {}),
           low: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'], privileges: 'low' }),
           control: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'], privileges: 'inherit' }),
         };`,
        { terminal: true },
      );
      const r0 = (k: string) => (got[k] as { r: Results }).r;
      for (const k of ['inheritedStdin', 'pipes', 'low']) {
        const r = r0(k);
        assert.equal(r.ownSession, 'true', `${k}: ${JSON.stringify(r)}`);
        assert.match(r['open /dev/tty'], /no such device or address/, `${k}: it has no controlling terminal`);
        for (const [key, v] of Object.entries(r)) if (key.startsWith('TIOC')) assert.notEqual(v, 'ok', `${k}: ${key} succeeded`);
      }
      assert.ok('TIOCSTI stdin' in r0('inheritedStdin'), `the worker's stdin was the terminal: ${JSON.stringify(got.inheritedStdin)}`);
      assert.equal(r0('control')['TIOCSTI stdin'], 'ok', `control: the attack can succeed ${JSON.stringify(got.control)}`);
    });
  });

  describe('an init it cannot reach', () => {
    it('from its first instruction, 100 workers each try PTRACE_SEIZE on their init 200,000 times: all fail (control: inherit as root can)', async function () {
      const attacker = path.join(root, 'test', 'fixtures', 'bin', 'linux-amd64', 'ptrace-init');
      if (!fs.existsSync(attacker)) this.skip(); // x86-64 only (freestanding)
      // Restricted workers of a root launcher run as a uid of their own (the checkout may be
      // read-only, as in scripts/test-vm.sh's guest: change the mode only when it must).
      if ((fs.statSync(attacker).mode & 0o555) !== 0o555) fs.chmodSync(attacker, 0o755);
      const codes: (number | null)[] = [];
      const batch: Promise<{ code: number | null }>[] = [];
      for (let i = 0; i < 100; i++) {
        batch.push(spawnIsolated(attacker, [], { stdio: 'ignore' }).exited);
        if (batch.length === 4) codes.push(...(await Promise.all(batch.splice(0))).map((e) => e.code));
      }
      codes.push(...(await Promise.all(batch)).map((e) => e.code));
      assert.deepEqual(codes.filter((c) => c !== 0), [], 'exit 42: it seized its init');
      if (isRoot) {
        const control = await spawnIsolated(attacker, [], { stdio: 'ignore', privileges: 'inherit' }).exited;
        assert.equal(control.code, 42, 'control: with CAP_SYS_PTRACE it seizes it, so the attack can succeed');
      }
    });

    it('100 Go workers try PTRACE_SEIZE and /proc/1/mem on their init: all fail (control: inherit as root can)', async function () {
      const runs: Promise<Results>[] = [];
      const all: Results[] = [];
      for (let i = 0; i < 100; i++) {
        runs.push(attack(['ptrace', '1']));
        if (runs.length === 4) all.push(...(await Promise.all(runs.splice(0))));
      }
      all.push(...(await Promise.all(runs)));
      const won = all.filter((r) => r.seize === 'ok' || r.mem === 'ok');
      assert.deepEqual(won, [], 'a worker reached its init');
      assert.equal(all.length, 100);
      if (isRoot) {
        // (Its /proc is the host's, so only the seize of its own PID 1 says anything.)
        const control = await attack(['ptrace', '1'], { privileges: 'inherit' });
        assert.equal(control.seize, 'ok', 'control: with CAP_SYS_PTRACE it can, so the attack can succeed');
      }
    });
  });

  describe('uid 0 is not a sandbox', () => {
    it("uid 0 / gid 0 at 'restricted' or 'low' is refused, naming privileges: 'inherit'; with 'inherit' it runs as root", async function () {
      for (const o of [{ uid: 0 }, { gid: 0 }, { uid: 0, gid: 0, privileges: 'low' as const }]) {
        assert.throws(() => spawnIsolated(w, ['exit', '0'], o), { code: 'ERR_INCOMPATIBLE_OPTION_PAIR', message: /privileges: 'inherit'/ }, JSON.stringify(o));
      }
      if (!isRoot) return;
      const p = spawnIsolated(w, ['exit', '0'], { user: 'root' });
      const err = await new Promise<NodeJS.ErrnoException>((r) => p.on('error', r));
      assert.equal(err.code, 'ERR_INCOMPATIBLE_OPTION_PAIR');
      const r = await attack(['write', '/proc/sys/kernel/core_pattern'], { uid: 0, gid: 0, privileges: 'inherit' });
      assert.equal(r['/proc/sys/kernel/core_pattern'], 'ok', 'control: root opens it for writing (nothing is written)');
    });
  });

  describe('its own /tmp, /var/tmp and /dev/shm', () => {
    it('sees none of the host files there, and leaves nothing behind (control: inherit shares them)', async function () {
      const name = `spawn-isolated-marker-${process.pid}-${Date.now()}`;
      const planted = ['/tmp', '/dev/shm'].filter((d) => fs.existsSync(d)).map((d) => path.join(d, name));
      for (const f of planted) fs.writeFileSync(f, 'host', { mode: 0o644 });
      const leftovers = () => ['/tmp', '/var/tmp', '/dev/shm'].map((d) => path.join(d, `leftover-${name}`)).filter((f) => fs.existsSync(f));
      try {
        for (const options of [{}, { privileges: 'low' as const }, { memory: '64MiB' }]) {
          const r = await attack(['private-tmp', name], options);
          for (const d of ['/tmp', '/var/tmp', '/dev/shm'].filter((x) => fs.existsSync(x))) {
            assert.equal(r[`${d} tmpfs`], 'true', `${d} ${JSON.stringify(options)} ${JSON.stringify(r)}`);
            assert.equal(r[`${d} sees host file`], 'false', `${d} ${JSON.stringify(options)}`);
            assert.equal(r[`${d} write`], 'ok', `${d}: it can use its own`);
          }
          assert.deepEqual(leftovers(), [], `${JSON.stringify(options)} left files on the host`);
        }
        const control = await attack(['private-tmp', name], { privileges: 'inherit' });
        assert.equal(control['/tmp sees host file'], 'true', 'control: an inherit worker shares /tmp, so the check can fail');
        assert.ok(leftovers().length > 0, 'control: and leaves its files there');
      } finally {
        for (const f of [...planted, ...leftovers()]) fs.rmSync(f, { force: true });
      }
    });

    it('an executable and a cwd that live under /tmp still run there (their directories are bound back in)', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-exe-'));
      try {
        fs.chmodSync(dir, 0o755);
        const exe = path.join(dir, 'worker');
        fs.copyFileSync(w, exe);
        fs.chmodSync(exe, 0o755);
        const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-cwd-'));
        fs.chmodSync(cwd, 0o755);
        try {
          const c = await collect(spawnIsolated(exe, ['info'], { cwd }));
          assert.equal(c.exit.code, 0, c.stderr);
          assert.equal(json<{ cwd: string }>(c).cwd, cwd);
        } finally {
          fs.rmSync(cwd, { recursive: true, force: true });
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("a cwd that names a private directory however it is written ('/tmp/', '/tmp//.', '/tmp/x/..', '/var/tmp/', a symlink, relative, none from a launcher in /tmp) is the worker's own, never the host's; a symlink to a host directory beneath /tmp is bound back in", async () => {
      const name = `spawn-isolated-cwd-marker-${process.pid}-${Date.now()}`;
      const privateDirs = ['/tmp', '/var/tmp'].filter((d) => fs.existsSync(d));
      const planted = privateDirs.map((d) => path.join(d, name));
      const sub = fs.mkdtempSync('/tmp/spawn-isolated-sub-');
      fs.chmodSync(sub, 0o755);
      fs.writeFileSync(path.join(sub, 'inside'), 'host', { mode: 0o644 });
      const toTmp = path.join(tmp, 'to-tmp');
      const toSub = path.join(tmp, 'to-sub');
      fs.symlinkSync('/tmp', toTmp);
      fs.symlinkSync(sub, toSub);
      for (const f of planted) fs.writeFileSync(f, 'host', { mode: 0o644 });
      try {
        const spellings = ['/tmp/', '/tmp//.', `${sub}/..`, toTmp, ...(privateDirs.includes('/var/tmp') ? ['/var/tmp/', '/var/tmp/../tmp/'] : [])];
        for (const cwd of spellings) {
          const r = await attack(['private-tmp', name], { cwd });
          for (const d of privateDirs) {
            assert.equal(r[`${d} tmpfs`], 'true', `cwd ${cwd}: ${d} ${JSON.stringify(r)}`);
            assert.equal(r[`${d} sees host file`], 'false', `cwd ${cwd}: the host's ${d} is not bound over the worker's own`);
          }
          const c = await collect(spawnIsolated(w, ['info'], { cwd }));
          assert.equal(c.exit.code, 0, `cwd ${cwd}: ${c.stderr}`);
          assert.equal(json<{ cwd: string }>(c).cwd, fs.realpathSync(cwd), `cwd ${cwd}: it starts in what the path names`);
        }
        // A launcher that runs in /tmp, with no cwd or a relative one: the worker starts in its
        // own /tmp (the cwd it would inherit, or that resolves there, is the host's directory
        // beneath the new tmpfs: the planted file would be there by a relative path).
        const was = process.cwd();
        process.chdir('/tmp');
        try {
          for (const o of [{}, { cwd: '.' }, { cwd: `${path.basename(sub)}/..` }, { cwd: './'.repeat(2046) + '.' }]) {
            const r = await attack(['write', name], o);
            assert.match(r[name], /no such file/, `${JSON.stringify(o).slice(0, 60)} from a launcher in /tmp: ${JSON.stringify(r)}`);
            const c = await collect(spawnIsolated(w, ['info'], o));
            assert.equal(c.exit.code, 0, c.stderr);
            assert.equal(json<{ cwd: string }>(c).cwd, '/tmp', JSON.stringify(o).slice(0, 60));
          }
          const c = await collect(spawnIsolated(w, ['info'], { cwd: path.basename(sub) }));
          assert.equal(c.exit.code, 0, c.stderr);
          assert.equal(json<{ cwd: string }>(c).cwd, sub, 'a relative cwd beneath /tmp: the host directory, bound in');
        } finally {
          process.chdir(was);
        }
        // Through a symlink to a host directory beneath /tmp: that directory, read-only.
        const c = await collect(spawnIsolated(w, ['info'], { cwd: toSub }));
        assert.equal(c.exit.code, 0, c.stderr);
        assert.equal(json<{ cwd: string }>(c).cwd, sub);
        const r = await attack(['write', path.join(sub, 'inside')], { cwd: toSub });
        // There (not "no such file"), and not the worker's to write (another uid's file, bound read-only).
        assert.match(r[path.join(sub, 'inside')], /permission denied|read-only file system/, `the host's directory is bound in: ${JSON.stringify(r)}`);
      } finally {
        for (const f of [...planted, toTmp, toSub]) fs.rmSync(f, { force: true });
        fs.rmSync(sub, { recursive: true, force: true });
        for (const d of privateDirs) fs.rmSync(path.join(d, `leftover-${name}`), { force: true });
      }
    });

    it("a tempDir under a TMPDIR written '//tmp' or '/run/../tmp' is made where the worker's TMPDIR finds it", async () => {
      const was = process.env.TMPDIR;
      try {
        for (const t of ['//tmp', '/run/../tmp']) {
          process.env.TMPDIR = t;
          const c = await collect(spawnIsolated(w, ['tempfile'], { tempDir: true }));
          assert.equal(c.exit.code, 0, `TMPDIR ${t}: ${c.stderr}`);
          assert.match(json<{ dir: string }>(c).dir, /^\/tmp\/spawn-isolated-/, `TMPDIR ${t}`);
        }
      } finally {
        if (was === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = was;
      }
    });

    it('its mount namespace is held by the launcher until its exit is reported, then let go: nothing keeps it', async () => {
      // Held so that the exit does not wait for the namespace's teardown (an RCU grace period
      // in the init's exit); let go once the exit is reported (by the monitor thread, right
      // before it reaps the init, or the housekeeping thread).
      const mine = fs.readlinkSync('/proc/self/ns/mnt');
      // In this process's fd table, or in the vault's (a thread with an fd table of its own).
      const tables = () => [
        '/proc/self/fd',
        ...fs
          .readdirSync('/proc/self/task')
          .filter((t) => {
            try {
              return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'si-vault';
            } catch {
              return false;
            }
          })
          .map((t) => `/proc/self/task/${t}/fd`),
      ];
      const holders = (ns: string) =>
        tables().reduce(
          (n, dir) =>
            n +
            fs.readdirSync(dir).filter((fd) => {
              try {
                return fs.readlinkSync(`${dir}/${fd}`) === ns;
              } catch {
                return false;
              }
            }).length,
          0,
        );
      for (const options of [{}, { memory: '64MiB' }]) {
        const p = spawnIsolated(w, ['sleep', '60000'], { stdio: 'ignore', ...options });
        const ns = fs.readlinkSync(`/proc/${p.pid}/ns/mnt`);
        assert.notEqual(ns, mine, 'a mount namespace of its own');
        // In the vault once its thread has received it (rung: settleCgroups syncs with it).
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (loadBinding() as any).internals.settleCgroups();
        await until(() => holders(ns) === 1, 5000);
        assert.equal(holders(ns), 1, `${JSON.stringify(options)}: the launcher holds ${ns} while the worker runs`);
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (loadBinding() as any).internals.settleCgroups(); // the housekeeping thread's queue, now
        await until(() => holders(ns) === 0, 5000); // the vault's, shortly
        assert.equal(holders(ns), 0, `${JSON.stringify(options)}: the launcher let ${ns} go`);
        const inIt = fs.readdirSync('/proc').filter((d) => {
          try {
            return /^\d+$/.test(d) && fs.readlinkSync(`/proc/${d}/ns/mnt`) === ns;
          } catch {
            return false;
          }
        });
        assert.deepEqual(inIt, [], `${JSON.stringify(options)}: no process is left in it`);
      }
    });

    it("its tempDir is still the launcher's directory, seen at the same path", async () => {
      const p = spawnIsolated(w, ['tempfile'], { tempDir: true });
      const c = await collect(p);
      const r = json<{ file: string; dir: string }>(c);
      assert.equal(r.dir, p.tempDir);
      assert.ok(r.file.startsWith(`${p.tempDir}/`));
    });
  });

  describe('System V IPC of its own', () => {
    // The launcher's segment and queue, by id and by key, world-attachable (0666): only a
    // namespace of its own keeps a worker, whatever its uid, from them.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const libc = () => require('koffi').load('libc.so.6');
    const key = () => 0x51000000 + Math.floor(Math.random() * 0xffffff);
    const refused = (r: Results, what: string) => {
      for (const k of ['stat', 'attach', 'shm key', 'msg key']) assert.notEqual(r[k], 'ok', `${what}: ${k} reached it (${JSON.stringify(r)})`);
      assert.equal(r.own, 'ok', `${what}: it can use System V IPC of its own`);
    };

    it("reaches neither the launcher's segment and message queue, by id or by key (control: inherit reaches both)", async function () {
      if (!isRoot) this.skip(); // the control's reach needs the same IPC namespace and a uid that passes 0666
      const c = libc();
      const shmget = c.func('int shmget(int key, size_t size, int flags)');
      const shmctl = c.func('int shmctl(int id, int cmd, void* buf)');
      const msgget = c.func('int msgget(int key, int flags)');
      const msgctl = c.func('int msgctl(int id, int cmd, void* buf)');
      const shmKey = key();
      const msgKey = shmKey + 1;
      const shm = shmget(shmKey, 4096, 0o1666) as number;
      const msg = msgget(msgKey, 0o1666) as number;
      assert.ok(shm >= 0 && msg >= 0, 'the launcher made its segment and queue');
      try {
        const args = ['sysv', String(shm), String(shmKey), String(msgKey)];
        for (const options of [{}, { privileges: 'low' as const }, { memory: '64MiB' }]) refused(await attack(args, options), JSON.stringify(options));
        const control = await attack(args, { privileges: 'inherit' });
        for (const k of ['stat', 'attach', 'shm key', 'msg key']) assert.equal(control[k], 'ok', `control: inherit ${k} (${JSON.stringify(control)})`);
      } finally {
        shmctl(shm, 0 /* IPC_RMID */, null);
        msgctl(msg, 0 /* IPC_RMID */, null);
      }
    });

    it("reaches no segment a sibling worker holds open to anyone, by id or by key (control: two inherit workers share it)", async function () {
      for (const privileges of ['restricted', 'inherit'] as const) {
        if (privileges === 'inherit' && !isRoot) continue;
        const shmKey = key();
        const holder = spawnIsolated(w, ['attack', 'sysv-hold', String(shmKey)], { stdio: ['pipe', 'pipe', 'pipe'], privileges });
        const done = collect(holder);
        try {
          const { id } = await firstLine<{ id: string }>(holder);
          assert.match(id, /^\d+$/, `${privileges}: the holder made its segment (${id})`);
          const r = await attack(['sysv', id, String(shmKey), String(shmKey)], { privileges });
          if (privileges === 'inherit') assert.equal(r['shm key'], 'ok', `control: two inherit workers share one namespace (${JSON.stringify(r)})`);
          else {
            for (const k of ['stat', 'attach', 'shm key']) assert.notEqual(r[k], 'ok', `${k} reached the sibling's segment (${JSON.stringify(r)})`);
            assert.equal(r.own, 'ok');
          }
        } finally {
          holder.stdin!.end();
          assert.equal((await done).exit.code, 0);
        }
      }
    });
  });

  describe("network: 'none'", () => {
    it('reaches neither a loopback TCP service nor an abstract Unix socket of the host, and has only lo (control: the default reaches both)', async function () {
      const net = await import('node:net');
      const tcp = net.createServer((c) => c.end());
      const name = `spawn-isolated-test-${process.pid}`;
      await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
      // The abstract socket's server: a worker in this host's network namespace.
      const abstract = spawnIsolated(w, ['listen', 'unix', `@${name}`], { privileges: 'inherit', stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((r) => abstract.stdout!.once('data', r));
      const port = (tcp.address() as { port: number }).port;
      const targets = [`tcp:127.0.0.1:${port}`, `unix:@${name}`];
      try {
        const none = await attack(['connect', ...targets], { network: 'none' });
        for (const t of targets) assert.notEqual(none[t], 'ok', `${t} was reached: ${JSON.stringify(none)}`);
        assert.equal(none.interfaces, 'lo');
        // 'inherit' gets a network namespace only from a root launcher (no user namespace of its own).
        if (isRoot) {
          const inherit = await attack(['connect', ...targets], { network: 'none', privileges: 'inherit' });
          for (const t of targets) assert.notEqual(inherit[t], 'ok', `inherit: ${t} was reached`);
        }
        // A default worker reaches the TCP service, not the abstract socket (Landlock scopes
        // abstract sockets to its own domain, ABI 6+); an 'inherit' one reaches both.
        const confined = await attack(['connect', ...targets]);
        assert.equal(confined[targets[0]], 'ok', `control: ${JSON.stringify(confined)}`);
        const control = await attack(['connect', ...targets], { privileges: 'inherit' });
        for (const t of targets) assert.equal(control[t], 'ok', `control: ${t} ${JSON.stringify(control)}`);
      } finally {
        tcp.close();
        abstract.kill('SIGKILL');
        await abstract.exited;
      }
    });

    it('socket(AF_UNIX) is refused under it whatever was spawned before it in the same launcher (and only under it)', async function () {
      // In a launcher of its own: the seccomp programs are built once per process and kept.
      const dir = scratchDir('unix-order-');
      try {
        const got = (await inLauncher(
          dir,
          `const unix = async (opts) => (await run(['attack', 'connect', 'unix:/nonexistent/s'], opts)).r['unix:/nonexistent/s'];
           const out = {};
           out.first = await unix({});
           out.none = await unix({ network: 'none' });
           out.after = await unix({});
           out.noneLow = await unix({ network: 'none', privileges: 'low' });
           out.lowAfter = await unix({ privileges: 'low' });
           return out;`,
        )) as Record<string, string>;
        assert.match(got.none, /permission denied/, JSON.stringify(got));
        assert.match(got.noneLow, /permission denied/, JSON.stringify(got));
        for (const k of ['first', 'after', 'lowAfter']) assert.match(got[k], /no such file/, `${k}: ${JSON.stringify(got)}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("denies socket(AF_UNIX) to a worker with network: 'none' and only to it, whatever was spawned before (same level, both orders)", async () => {
      const net = await import('node:net');
      fs.chmodSync(tmp, 0o755);
      const sock = path.join(tmp, `host-${process.pid}.sock`);
      const server = net.createServer((c) => c.end());
      await new Promise<void>((r) => server.listen(sock, r));
      fs.chmodSync(sock, 0o777);
      const target = `unix:${sock}`;
      try {
        // The same level with and without network: 'none', each order: the program with the
        // denial must never be the one without it (or the reverse).
        for (let round = 0; round < 2; round++) {
          const plain = await attack(['connect', target]);
          const none = await attack(['connect', target], { network: 'none' });
          assert.equal(plain[target], 'ok', `round ${round}: control: ${JSON.stringify(plain)}`);
          assert.notEqual(none[target], 'ok', `round ${round}: a host service's Unix socket was reached under network: 'none'`);
          const noneFirst = await attack(['connect', target], { network: 'none', privileges: 'low' });
          const plainAfter = await attack(['connect', target], { privileges: 'low' });
          assert.notEqual(noneFirst[target], 'ok', `round ${round}: low: reached under network: 'none'`);
          assert.equal(plainAfter[target], 'ok', `round ${round}: low: control: ${JSON.stringify(plainAfter)}`);
        }
      } finally {
        server.close();
      }
    });

    it('is validated, and reported in enforcement', async () => {
      assert.throws(() => spawnIsolated(w, [], { network: 'off' as 'none' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.network/ });
      const p = spawnIsolated(w, ['exit', '0'], { network: 'none' });
      await p.exited;
      assert.deepEqual(p.enforcement.network, { enforced: true, mechanism: 'net-namespace' });
    });
  });

  describe("the namespace's first process, which shares the launcher's memory without a vfork", () => {
    it("is never in the worker's memory cgroup (its init enters it); the spawn returns once the worker has exec'd, which sees PID 1 named as the init and not the launcher's command line; an init that never comes up ends the worker", async function () {
      if (!isRoot) this.skip(); // a root launcher's transient-uid worker is where it applies here (a vfork child)
      const memory = (pid: number) =>
        fs
          .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
          .split('\n')
          .find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l) || l.startsWith('0::'));
      const fifo = holdFifo(tmp, 'hold');
      const pidFile = path.join(tmp, `launcher-${Date.now()}.pid`);
      const returned = path.join(tmp, `returned-${Date.now()}`);
      const pid1 = path.join(tmp, `pid1-${Date.now()}`);
      // The first process waits on the FIFO right before it execs the init (a test-only hook).
      // The spawn call returns once the worker has exec'd, while its first process is held.
      const launcher = inLauncher(
        tmp,
        `process.env.SPAWN_ISOLATED_TEST_HOLD_FIRST = ${JSON.stringify(fifo)};
         fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
         const out = fs.openSync(${JSON.stringify(pid1)}, 'w');
         const running = run(['pid1', '300'], { memory: '64MiB', stdio: ['ignore', out, 'pipe'] });
         fs.closeSync(out);
         fs.writeFileSync(${JSON.stringify(returned)}, '');
         const held = await running;
         const killing = run(['exit', '0'], { memory: '64MiB' });
         fs.writeFileSync(${JSON.stringify(returned)} + '2', '');
         const killed = await killing;
         return { held, killed };`,
      );
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const oracle = require('./oracle-linux') as typeof import('./oracle-linux');
      // 0 until the launcher has written its pid (the file can exist, still empty).
      const launcherPid = () => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) || 0 : 0);
      const firstOf = async (not = 0): Promise<number> => {
        for (let waited = 0; waited < 20_000; waited += 20) {
          const first = launcherPid() > 0 ? oracle.childrenOf(launcherPid()).find((p) => p !== not) : undefined;
          if (first !== undefined) return first;
          await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error('no first process appeared');
      };
      let done = false;
      launcher.then(
        () => (done = true),
        () => (done = true),
      );
      try {
      const first = await firstOf();
      // Its worker has exec'd (the first process's vfork child) and the call has returned.
      assert.ok(await until(() => fs.existsSync(returned), 10_000), 'the spawn returned while the first process is held before its init');
      // The worker runs meanwhile, and sees its PID 1 by the init's name already (the Go module
      // checks it: Channel(), Read().KillOnClose).
      const seen = () => (fs.existsSync(pid1) ? fs.readFileSync(pid1, 'utf8') : '');
      await until(() => seen().split('\n').length >= 4, 10_000);
      const [comm, cmdline, threadCmdline] = seen().split('\n');
      assert.equal(comm, 'memfd:spawn-iso', 'PID 1 as the worker sees it while the init is not exec\'d yet');
      // Until that exec the first process runs in the launcher's memory, where the kernel reads a
      // process's command line from: it would be the launcher's own (node and its script).
      assert.equal(cmdline, 'cmdline=', "PID 1's command line as the worker sees it then: not the launcher's");
      assert.equal(threadCmdline, 'cmdline=', "its thread's (/proc/1/task/1/cmdline): not the launcher's either");
      assert.equal(memory(first), memory(launcherPid()), "held before its init's exec: in the launcher's memory cgroup, not the worker's");
      fs.writeFileSync(fifo, 'g'); // let it go on
      let moved = false;
      for (let waited = 0; !moved && waited < 5000; waited += 10) {
        moved = memory(first) !== memory(launcherPid());
        if (!moved) await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(moved, 'its init enters the memory cgroup of its worker (the check can fail)');
      // The next one is killed while held: its init never comes up, and its worker (which had
      // exec'd, and whose spawn had returned) ends with the namespace, killed.
      const next = await firstOf(first);
      await until(() => fs.existsSync(returned + '2'), 10_000);
      process.kill(next, 'SIGKILL');
      const r = (await launcher) as { held: { exit: { code: number } }; killed: { error?: string; exit?: { code: number | null; signal: string | null } } };
      assert.equal(r.held.exit.code, 0, JSON.stringify(r.held));
      assert.equal(r.killed.error, undefined, JSON.stringify(r.killed));
      assert.equal(r.killed.exit?.signal, 'SIGKILL', JSON.stringify(r.killed));
      assert.equal((r.killed.exit as { reason?: string }).reason, 'signal', JSON.stringify(r.killed));
      } finally {
        // A failed check leaves a first process waiting on the FIFO, and its launcher with it.
        if (!done && launcherPid() > 0) spawnSync('pkill', ['-KILL', '-P', String(launcherPid())]);
      }
    });

    it('stopped (SIGSTOP) before its init exists, it holds up neither the next spawns nor the end of the JS thread that spawned it', async function () {
      if (!isRoot) this.skip(); // the root launcher's path, where a cloner thread follows the first process to its exec
      this.timeout(60_000);
      const fifo = holdFifo(tmp, 'hold-stop');
      const r = (await inLauncher(
        tmp,
        `process.env.SPAWN_ISOLATED_TEST_HOLD_FIRST = ${JSON.stringify(fifo)};
         const { Worker } = require('node:worker_threads');
         // A worker_thread spawns; its first process waits on the FIFO (no writer yet), before its init.
         const wt = new Worker(\`
           const { parentPort, workerData } = require('node:worker_threads');
           const { spawnIsolated } = require(workerData.lib);
           // killOnClose: false, so that the end of this thread does not end it (a killed one
           // would let its cloner go anyway).
           const p = spawnIsolated(workerData.w, ['sleep', '60000'], { stdio: 'ignore', killOnClose: false });
           parentPort.postMessage(p.pid);
           parentPort.on('message', () => {
             // Twenty more from the same thread, while that one is stopped: each runs.
             let n = 0;
             for (let i = 0; i < 20; i++) spawnIsolated(workerData.w, ['exit', '0'], { stdio: 'ignore' }).exited.then((e) => { if (e.code === 0 && ++n === 20) parentPort.postMessage('ran'); });
           });
           setInterval(() => {}, 1000);
         \`, { eval: true, workerData: { lib, w } });
         const first = await new Promise((res) => wt.once('message', res));
         process.kill(first, 'SIGSTOP');
         let state = '';
         for (let i = 0; i < 500 && state !== 'T'; i++) {
           state = fs.readFileSync('/proc/' + first + '/stat', 'utf8').split(') ')[1][0];
           if (state !== 'T') await new Promise((res) => setTimeout(res, 10));
         }
         // Its FIFO now has a writer and a byte for it and for each later first process (the hook
         // holds every one): only the stop holds it.
         const fd = fs.openSync(${JSON.stringify(fifo)}, fs.constants.O_RDWR);
         fs.writeSync(fd, 'g'.repeat(64));
         wt.postMessage('more');
         const ran = await Promise.race([new Promise((res) => wt.once('message', res)), new Promise((res) => setTimeout(res, 20000, 'timed out').unref())]);
         const t0 = Date.now();
         const ended = await Promise.race([wt.terminate().then(() => 'ended'), new Promise((res) => setTimeout(res, 20000, 'timed out').unref())]);
         fs.closeSync(fd);
         // It went on (continued) and became the init, and runs on.
         let exe = '';
         try {
           exe = fs.readlinkSync('/proc/' + first + '/exe');
         } catch (e) {
           exe = String(e);
         }
         process.kill(first, 'SIGKILL');
         return { state, ran, ended, ms: Date.now() - t0, exe };`,
      )) as { state: string; ran: string; ended: string; exe: string };
      assert.equal(r.state, 'T', `the first process was stopped before its init: ${JSON.stringify(r)}`);
      assert.equal(r.ran, 'ran', `20 more spawns from the same thread ran: ${JSON.stringify(r)}`);
      assert.equal(r.ended, 'ended', `the JS thread ended: ${JSON.stringify(r)}`);
      assert.match(r.exe, /memfd:spawn-isolated-init/, `it went on to exec its init: ${JSON.stringify(r)}`);
    });

    it("held back before its init's exec for good, it holds up the end of its JS thread by about a second, then is killed with its worker", async function () {
      if (!isRoot) this.skip(); // the root launcher's path, where a cloner thread follows the first process to its exec
      this.timeout(60_000);
      const fifo = holdFifo(tmp, 'hold-never');
      const r = (await inLauncher(
        tmp,
        `process.env.SPAWN_ISOLATED_TEST_HOLD_FIRST = ${JSON.stringify(fifo)};
         const { Worker } = require('node:worker_threads');
         // A writer that never writes: every first process waits on the FIFO for good.
         const hold = fs.openSync(${JSON.stringify(fifo)}, fs.constants.O_RDWR);
         fs.writeSync(hold, 'g'); // but the first spawn (this host's namespaces seen to work)
         const wt = new Worker(\`
           const { parentPort, workerData } = require('node:worker_threads');
           const { spawnIsolated } = require(workerData.lib);
           spawnIsolated(workerData.w, ['exit', '0'], { stdio: 'ignore' }).on('close', () => {
             const p = spawnIsolated(workerData.w, ['sleep', '60000'], { stdio: 'ignore', killOnClose: false });
             parentPort.postMessage(p.pid);
           });
           setInterval(() => {}, 1000);
         \`, { eval: true, workerData: { lib, w } });
         const first = await new Promise((res) => wt.once('message', res));
         await new Promise((res) => setTimeout(res, 200));
         const t0 = Date.now();
         const ended = await Promise.race([wt.terminate().then(() => 'ended'), new Promise((res) => setTimeout(res, 20000, 'timed out').unref())]);
         const ms = Date.now() - t0;
         let gone = false;
         for (let i = 0; i < 200 && !gone; i++) {
           // Gone, a zombie, or reaped between the two looks (the read then fails with ESRCH / ENOENT).
           let stat = '';
           try { stat = fs.readFileSync('/proc/' + first + '/stat', 'utf8'); } catch {}
           gone = stat === '' || stat.split(') ')[1][0] === 'Z';
           if (!gone) await new Promise((res) => setTimeout(res, 10));
         }
         fs.closeSync(hold);
         return { ended, ms, gone };`,
      )) as { ended: string; ms: number; gone: boolean };
      assert.equal(r.ended, 'ended', `the JS thread ended: ${JSON.stringify(r)}`);
      assert.ok(r.ms >= 900 && r.ms < 10_000, `after the grace of about a second: ${JSON.stringify(r)}`);
      assert.equal(r.gone, true, `the first process was killed: ${JSON.stringify(r)}`);
    });
  });

  describe('Landlock for every confined worker', () => {
    it('writes the devices programs expect, and no host file its uid could (control: inherit can)', async function () {
      // The device rules are made from fds the launcher opened once; a world-writable host file
      // is open to any uid, so only Landlock refuses it.
      const devices = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'];
      const dir = fs.mkdtempSync(path.join(tmp, 'devices-'));
      fs.chmodSync(dir, 0o755);
      const open = path.join(dir, 'world-writable');
      fs.writeFileSync(open, 'x');
      fs.chmodSync(open, 0o666);
      for (const options of [{}, { privileges: 'low' as const }, { memory: '64MiB' }]) {
        const r = await attack(['write', ...devices, open], options);
        for (const d of devices) assert.equal(r[d], 'ok', `${JSON.stringify(options)} ${d}`);
        assert.match(r[open], /permission denied/, `${JSON.stringify(options)}: ${JSON.stringify(r)}`);
      }
      const control = await attack(['write', open], { privileges: 'inherit' });
      assert.equal(control[open], 'ok', 'control: the file is writable without Landlock, so the check can fail');
    });
  });

  describe('filesystem: { read, write }', () => {
    it('reads only the read list, writes only the write list (and its own places); control: without it, both work', async function () {
      const ro = path.join(tmp, 'fs-ro');
      const rw = path.join(tmp, 'fs-rw');
      const other = path.join(tmp, 'fs-other');
      for (const d of [ro, rw, other]) {
        fs.mkdirSync(d, { recursive: true, mode: 0o777 });
        fs.chmodSync(d, 0o777);
        fs.writeFileSync(path.join(d, 'f'), 'x', { mode: 0o666 });
        fs.chmodSync(path.join(d, 'f'), 0o666);
      }
      const args = (cmd: string, ...p: string[]) => ['attack', cmd, ...p];
      const opts = { filesystem: { read: [ro], write: [rw] }, tempDir: true };
      const read = json<Results>(await collect(spawnIsolated(w, args('read', `${ro}/f`, `${rw}/f`, `${other}/f`, '/etc/hostname', ro), opts)));
      assert.deepEqual([read[`${ro}/f`], read[`${rw}/f`], read[ro]], ['ok', 'ok', 'ok'], JSON.stringify(read));
      assert.notEqual(read[`${other}/f`], 'ok', 'read outside the lists');
      assert.notEqual(read['/etc/hostname'], 'ok', 'read /etc/hostname');
      const write = json<Results>(await collect(spawnIsolated(w, args('create', rw, ro, other, 'TMPDIR', '/tmp'), opts)));
      assert.deepEqual([write[rw], write.TMPDIR, write['/tmp']], ['ok', 'ok', 'ok'], JSON.stringify(write));
      assert.notEqual(write[ro], 'ok', 'wrote in the read list');
      assert.notEqual(write[other], 'ok', 'wrote outside the lists');
      const control = json<Results>(await collect(spawnIsolated(w, args('read', `${other}/f`, '/etc/hostname'))));
      assert.deepEqual(Object.values(control), ['ok', 'ok'], 'control: without filesystem the reads work');
      // (A default worker writes only its own places: the control that can write is 'inherit'.)
      const c2 = json<Results>(await collect(spawnIsolated(w, args('create', other), { privileges: 'inherit' })));
      assert.equal(c2[other], 'ok', 'control: without filesystem the write works');
      const c3 = json<Results>(await collect(spawnIsolated(w, args('create', other), { filesystem: { write: [other] } })));
      assert.equal(c3[other], 'ok', 'a confined worker writes a listed place');
    });

    it("a dynamically linked program refused its loader says so (control: with the libraries listed it runs)", async () => {
      const p = spawnIsolated('/bin/cat', ['/etc/hostname'], { filesystem: { read: [] }, stdio: 'ignore' });
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => p.on('error', resolve));
      await p.exited.catch(() => undefined);
      assert.equal(err.code, 'EACCES');
      assert.match(err.message, /options\.filesystem: .*loader and libraries/);
      assert.doesNotMatch(err.message, /readable by others/, 'not the transient uid hint: others may run /bin/cat');
      // Landlock rules do not hold on a file system that makes a new inode per lookup (9p, as
      // in scripts/test-vm.sh's guest, whose / is the host's): the control needs a local one.
      const NETWORK_FS = new Set([0x01021997 /* 9p */, 0x6969 /* NFS */, 0x65735546 /* FUSE */]);
      if (NETWORK_FS.has(Number(fs.statfsSync('/usr/lib').type))) return;
      const ok = await spawnIsolated('/bin/cat', ['/etc/hostname'], { filesystem: { read: ['/lib', '/lib64', '/usr/lib', '/etc/hostname'] }, stdio: 'ignore' }).exited;
      assert.deepEqual([ok.code, ok.reason], [0, 'exit']);
    });

    it('is validated: absolute paths in arrays, known keys only', () => {
      assert.throws(() => spawnIsolated(w, [], { filesystem: { read: ['relative'] } }), { code: 'ERR_INVALID_ARG_VALUE', message: /filesystem\.read\[0\]/ });
      assert.throws(() => spawnIsolated(w, [], { filesystem: { read: '/x' as unknown as string[] } }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => spawnIsolated(w, [], { filesystem: { exec: [] } as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /filesystem\.exec/ });
    });
  });

  describe('disk', () => {
    it('bounds its tempDir, its private /tmp and /dev/shm, and any file it writes (control: without it, 24 MiB fit everywhere)', async function () {
      if (!isRoot) {
        // A sized tempDir is a tmpfs the launcher mounts: root only (strict mode refuses it otherwise).
        this.test!.title += ' [skipped: a sized tempDir needs a root launcher]';
        this.skip();
      }
      const out = path.join(tmp, 'disk-file');
      fs.writeFileSync(out, '');
      fs.chmodSync(out, 0o666);
      const fill = async (target: string, options: IsolationOptions) => {
        const p = spawnIsolated(w, ['fill', target, '24'], { tempDir: true, ...options });
        const r = json<{ mib: number; error?: string }>(await collect(p));
        return { ...r, tempDir: p.tempDir!, enforcement: p.enforcement };
      };
      try {
        for (const target of ['TMPDIR/x', '/tmp/x', '/dev/shm/x', '/run/lock/x']) {
          const r = await fill(target, { disk: '8MiB' });
          assert.ok(r.mib <= 8 && r.error, `${target}: wrote ${r.mib} MiB under disk 8MiB`);
          // A full tmpfs says ENOSPC; RLIMIT_FSIZE, EFBIG (Go ignores SIGXFSZ).
          assert.match(r.error!, /no space left|file too large/, target);
          assert.equal(fs.existsSync(r.tempDir), false, 'its sized tempDir is gone at exit');
          assert.equal(r.enforcement.disk?.mechanism, 'rlimit-fsize+tmpfs+private-tmpfs');
          const control = await fill(target, {});
          assert.deepEqual([control.mib, control.error], [24, undefined], `control: ${target} takes 24 MiB without disk`);
        }
        // A worker that writes host directories ('inherit') has no total budget (refused in
        // strict mode); RLIMIT_FSIZE still holds each file it writes.
        await assert.rejects(spawnIsolated(w, ['exit', '0'], { disk: '8MiB', privileges: 'inherit' }).exited, { code: 'ERR_LIMIT_NOT_ENFORCED', message: /options\.disk/ });
        const one = await fill(out, { disk: '8MiB', privileges: 'inherit', enforcement: 'best-effort', tempDir: false });
        assert.deepEqual([one.mib, one.error?.includes('file too large')], [8, true], JSON.stringify(one));
        assert.equal(one.enforcement.disk?.enforced, false);
      } finally {
        fs.rmSync(out, { force: true });
      }
    });

    it('bounds the files of its private /tmp (and of a sized tempDir) too: one inode per 4 KiB of the budget, at least 1024 (control: 5,000 fit in the default 256 MiB)', async function () {
      const files = async (options: IsolationOptions) => json<{ files: number }>(await collect(spawnIsolated(w, ['manyfiles', '5000'], options))).files;
      // 1024 inodes: the tmpfs's root, the four directories' and "many" leave 1018 for files.
      const small = await files({ disk: '4MiB' });
      assert.ok(small >= 1000 && small <= 1024, `${small} empty files in /tmp under disk: '4MiB'`);
      // 8 MiB: 2048.
      const eight = await files({ disk: '8MiB' });
      assert.ok(eight >= 2000 && eight <= 2048, `${eight} empty files under disk: '8MiB'`);
      assert.equal(await files({}), 5000, 'control: the default 256 MiB holds 65,536');
      if (isRoot) {
        const sized = await files({ disk: '4MiB', tempDir: true });
        assert.ok(sized >= 1000 && sized <= 1024, `${sized} empty files in a sized tempDir of 4 MiB`);
      }
    });

    it('its private /tmp, /var/tmp, /dev/shm and /run/lock share one budget, not one each (control: without disk, all four fill)', async () => {
      // 3 MiB in each of the four under disk 8MiB: 12 MiB in all. One tmpfs for the four holds
      // the total to 8 MiB (the one that finds it full says so); a tmpfs each would take it all.
      const args = ['/tmp/a', '3', '/var/tmp/b', '3', '/dev/shm/c', '3', '/run/lock/d', '3'];
      const run = async (options: IsolationOptions) => json<{ each: { mib: number; error?: string }[] }>(await collect(spawnIsolated(w, ['fill', ...args], options))).each;
      const limited = await run({ disk: '8MiB', enforcement: 'best-effort' });
      const total = limited.reduce((n, e) => n + e.mib, 0);
      assert.ok(total <= 8, `${total} MiB written in all under disk 8MiB: ${JSON.stringify(limited)}`);
      assert.ok(
        limited.some((e) => /no space left/.test(e.error ?? '')),
        `the tmpfs was full: ${JSON.stringify(limited)}`,
      );
      const control = await run({});
      assert.deepEqual(
        control.map((e) => [e.mib, e.error]),
        [
          [3, undefined],
          [3, undefined],
          [3, undefined],
          [3, undefined],
        ],
        'control: 3 MiB in each without disk',
      );
    });

    it("a program that does not handle SIGXFSZ ends with reason 'disk' and a 'disk' limit event (control: without disk it writes the file)", async function () {
      // dd, unlike Go, dies of SIGXFSZ when its file passes RLIMIT_FSIZE; the private /tmp is
      // every confined worker's (best-effort: a non-root launcher sizes no tempDir).
      const dd = ['if=/dev/zero', 'of=/tmp/x', 'bs=1M', 'count=4'];
      const p = spawnIsolated('/bin/dd', dd, { disk: '1MiB', stdio: 'ignore', enforcement: 'best-effort' });
      const limits: string[] = [];
      p.on('limit', (e: { limit: string }) => limits.push(e.limit));
      const e = await p.exited;
      assert.deepEqual([e.code, e.signal, e.reason, limits], [null, 'SIGXFSZ', 'disk', ['disk']]);
      const control = await spawnIsolated('/bin/dd', dd, { stdio: 'ignore' }).exited;
      assert.deepEqual([control.code, control.reason], [0, 'exit']);
    });

    it('is validated; not with keepTempDir', () => {
      assert.throws(() => spawnIsolated(w, [], { disk: '1KiB' }), { code: 'ERR_OUT_OF_RANGE', message: /options\.disk/ });
      assert.throws(() => spawnIsolated(w, [], { disk: '8MiB', tempDir: true, keepTempDir: true }), { code: 'ERR_INCOMPATIBLE_OPTION_PAIR' });
    });
  });

  describe('temp directories that never stall the launcher', () => {
    it('is gone from its path when exit is reported, every time (20 workers)', async () => {
      for (let i = 0; i < 20; i++) {
        const p = spawnIsolated(w, ['tempfile'], { tempDir: true, ...(i % 2 ? { memory: '128MiB' } : {}) });
        p.stdout!.resume();
        await p.exited;
        assert.equal(fs.existsSync(p.tempDir!), false, `worker ${i} left ${p.tempDir}`);
      }
    });

    it('a 30,000-deep tree with a link out is removed in the background: the loop is not held, the link target survives', async () => {
      const outside = path.join(tmp, 'outside');
      fs.mkdirSync(outside, { recursive: true });
      fs.writeFileSync(path.join(outside, 'keep'), 'x');
      const control = await loopGap(async () => {
        await spawnIsolated(w, ['exit', '0'], { tempDir: true }).exited;
      });
      let depth = 0;
      let dir = '';
      const gap = await loopGap(async () => {
        const p = spawnIsolated(w, ['deepdir', '30000', outside], { tempDir: true, privileges: 'inherit' });
        const c = await collect(p);
        depth = json<{ depth: number }>(c).depth;
        dir = p.tempDir!;
      });
      assert.equal(depth, 30000);
      assert.equal(fs.existsSync(dir), false);
      assert.ok(gap < control + 500, `the event loop stood still ${gap} ms (control ${control} ms)`);
      assert.ok(await until(() => trashEntries().length === 0, 60_000), `not removed: ${trashEntries()}`);
      assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'x', 'the link was followed');
    });

    it('200,000 files are removed in the background without holding the loop', async function () {
      this.timeout(400_000); // making and removing them takes 15 s on an idle 2-core machine, minutes on a busy one
      let files = 0;
      const gap = await loopGap(async () => {
        const c = await collect(spawnIsolated(w, ['manyfiles', '200000'], { tempDir: true }));
        files = json<{ files: number }>(c).files;
      });
      assert.equal(files, 200000);
      assert.ok(gap < 1000, `the event loop stood still ${gap} ms`);
      assert.ok(await until(() => trashEntries().length === 0, 180_000), 'not removed');
    });

    it('a launcher that holds its lock is never swept, whatever its pid says (a nested launcher sees an outer one as gone)', async () => {
      const owner = `${0x3fffff}.deadbeef`; // a pid no process here has
      const trash = fs.mkdtempSync(path.join(os.tmpdir(), `spawn-isolated-${owner}-trash-`));
      const temp = fs.mkdtempSync(path.join(os.tmpdir(), `spawn-isolated-${owner}-1-`));
      fs.writeFileSync(path.join(temp, 'data'), 'live');
      const holder = spawn('flock', ['--no-fork', '-x', trash, 'sh', '-c', 'echo locked; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const sweepOnce = () =>
        new Promise<void>((resolve) => {
          const next = spawn(process.execPath, ['-e', `require(${JSON.stringify(lib)}).spawnIsolated(${JSON.stringify(w)}, ['exit', '0'], { tempDir: true, stdio: 'ignore' }).exited.then(() => setTimeout(() => {}, 1500));`]);
          next.on('close', () => resolve());
        });
      try {
        await new Promise((r) => holder.stdout.once('data', r));
        await sweepOnce();
        assert.equal(fs.readFileSync(path.join(temp, 'data'), 'utf8'), 'live', 'a live launcher’s temp directory was swept');
        holder.kill('SIGKILL');
        await new Promise((r) => holder.once('close', r));
        await sweepOnce();
        assert.ok(await until(() => !fs.existsSync(temp) && !fs.existsSync(trash), 10_000), 'a dead launcher’s directories stayed');
      } finally {
        holder.kill('SIGKILL');
        fs.rmSync(temp, { recursive: true, force: true });
        fs.rmSync(trash, { recursive: true, force: true });
      }
    });

    it('a dead launcher’s temp directories are removed by the next launcher', async () => {
      // A launcher that makes a worker with a temp directory and is then SIGKILLed.
      const script = `
        const { spawnIsolated } = require(${JSON.stringify(lib)});
        const p = spawnIsolated(${JSON.stringify(w)}, ['sleep', '60000'], { tempDir: true, stdio: 'ignore' });
        p.on('spawn', () => { require('fs').writeFileSync(p.tempDir + '/data', 'x'); console.log(p.tempDir); });`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const dead = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      assert.ok(fs.existsSync(dead), 'the killed launcher left it');
      // The next launcher (a process of its own: each sweeps a place once a minute at most).
      const next = spawn(process.execPath, ['-e', `require(${JSON.stringify(lib)}).spawnIsolated(${JSON.stringify(w)}, ['exit', '0'], { tempDir: true, stdio: 'ignore' }); setTimeout(() => {}, ${slow(15_000)});`]);
      try {
        assert.ok(await until(() => !fs.existsSync(dead), slow(15_000)), `${dead} is still there`);
      } finally {
        next.kill('SIGKILL');
      }
    });
  });
  (isRoot ? describe : describe.skip)('the same attacks from the workers of a non-root launcher (uid 65534)', () => {
    it('no terminal, an init out of reach, private /tmp, no network under none, filesystem held, temp dirs gone', async function () {
      const attacker = path.join(root, 'test', 'fixtures', 'bin', 'linux-amd64', 'ptrace-init');
      const other = path.join(tmp, 'nobody-other');
      fs.writeFileSync(other, 'x', { mode: 0o644 });
      const name = `spawn-isolated-nobody-${process.pid}`;
      const got = (await inLauncher(
        tmp,
        `const attacker = ${JSON.stringify(attacker)};
         const codes = [];
         if (fs.existsSync(attacker)) for (let i = 0; i < 20; i++) codes.push((await spawnIsolated(attacker, [], { stdio: 'ignore' }).exited).code);
         const temp = await new Promise((resolve) => {
           const p = spawnIsolated(w, ['tempfile'], { tempDir: true });
           p.stdout.resume();
           p.exited.then(() => resolve({ dir: p.tempDir, left: fs.existsSync(p.tempDir) }));
         });
         return {
           privileges: (await run(['exit', '0'])).enforcement.privileges,
           tty: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'] }),
           ptrace: codes,
           tmp: await run(['attack', 'private-tmp', ${JSON.stringify(name)}]),
           net: await run(['attack', 'connect', 'tcp:127.0.0.1:1'], { network: 'none' }),
           fs: await run(['attack', 'read', ${JSON.stringify(other)}], { filesystem: { read: [] } }),
           fsControl: await run(['attack', 'read', ${JSON.stringify(other)}]),
           temp,
         };`,
        { uid: 65534, terminal: true },
      )) as Record<string, { r: Results; enforcement: Record<string, { enforced: boolean }> } & Record<string, unknown>>;
      if (!(got.privileges as unknown as { enforced: boolean }).enforced) this.skip(); // a host without unprivileged user namespaces
      const tty = got.tty.r;
      assert.equal(tty.ownSession, 'true');
      assert.match(tty['open /dev/tty'], /no such device or address/);
      for (const [k, v] of Object.entries(tty)) if (k.startsWith('TIOC')) assert.notEqual(v, 'ok', `${k} succeeded`);
      assert.deepEqual((got.ptrace as unknown as number[]).filter((c) => c !== 0), [], 'exit 42: a worker seized its init');
      for (const d of ['/tmp', '/dev/shm']) {
        assert.equal(got.tmp.r[`${d} tmpfs`], 'true');
        assert.equal(fs.existsSync(path.join(d, `leftover-${name}`)), false, `it wrote into the host ${d}`);
      }
      assert.equal(got.net.enforcement.network.enforced, true);
      assert.equal(got.net.r.interfaces, 'lo');
      assert.notEqual(got.net.r['tcp:127.0.0.1:1'], 'ok');
      assert.notEqual(got.fs.r[other], 'ok', 'it read outside filesystem');
      assert.equal(got.fsControl.r[other], 'ok', 'control: without filesystem it reads the file');
      assert.equal((got.temp as unknown as { left: boolean }).left, false, 'its tempDir outlived the exit');
    });
  });
});
