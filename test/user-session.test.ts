// options.user (POSIX) and options.session (Windows): a worker as another user / in another
// session, still under its limits.
import * as assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createIsolationGroup, execIsolated, isolationSupport, spawnIsolated } from '../lib';
import { probePath } from '../lib/selftest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collect, isLinux, isWindows, json, onWine, root, worker } from './helpers';

(isolationSupport().spawn ? describe : describe.skip)('user and session', () => {
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };

  it('validation: user is POSIX, session is Windows; user excludes uid / gid', () => {
    if (isWindows) {
      assert.throws(() => spawnIsolated(w, [], { user: 'x' }), { code: 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', message: /options\.user/ });
      assert.throws(() => spawnIsolated(w, [], { session: 'elsewhere' as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.session/ });
    } else {
      assert.throws(() => spawnIsolated(w, [], { session: 'console' }), { code: 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', message: /options\.session/ });
      assert.throws(() => spawnIsolated(w, [], { user: 'root', uid: 0 }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.user/ });
      assert.throws(() => spawnIsolated(w, [], { user: '' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.user/ });
      assert.throws(() => spawnIsolated(w, [], { user: 7 as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.user/ });
    }
  });

  it('an unknown user is an ENOENT error event, and nothing starts', async function () {
    if (!isLinux) {
      this.test!.title += ' [skipped: options.user is POSIX only]';
      this.skip();
    }
    const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, user: 'no-such-user-spawn-isolated' });
    const err = await p.exited.then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(err?.code, 'ENOENT');
    assert.equal(p.pid, undefined);
  });

  describe('Linux, as root: a user the test creates', function () {
    const name = `si-user-${process.pid}`;
    const group = `si-grp-${process.pid}`;
    let made = false;
    before(function () {
      if (!isLinux || process.getuid?.() !== 0) {
        for (const t of this.test!.parent!.tests) t.title += ' [skipped: needs Linux and root to create a user]';
        this.skip();
        return;
      }
      execFileSync('groupadd', [group]);
      execFileSync('useradd', ['-m', '-G', group, '-s', '/bin/sh', name]);
      made = true;
    });
    after(() => {
      if (!made) return;
      execFileSync('userdel', ['-r', name], { stdio: 'ignore' });
      execFileSync('groupdel', [group], { stdio: 'ignore' });
    });

    it('the worker runs as that user, with its groups, login environment and home, under its limits', async () => {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
      const extra = Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
      const p = spawnIsolated(w, ['info'], { ...relaxed, user: name, memory: '128MiB' });
      const info = json<{ uid: number; gid: number; groups: number[]; cwd: string }>(await collect(p));
      assert.deepEqual([info.uid, info.gid], [uid, gid]);
      assert.ok(info.groups.includes(extra), `groups ${JSON.stringify(info.groups)} lack ${extra}`);
      assert.equal(info.cwd, `/home/${name}`);
      assert.equal(p.user, name);
      process.env.SPAWN_ISOLATED_TEST_MARK = '1'; // in this process's environment, not the user's
      const env = json<string[]>(await collect(spawnIsolated(w, ['env'], { ...relaxed, user: name })));
      delete process.env.SPAWN_ISOLATED_TEST_MARK;
      for (const e of [`HOME=/home/${name}`, `USER=${name}`, `LOGNAME=${name}`, 'SHELL=/bin/sh']) assert.ok(env.includes(e), e);
      assert.ok(!env.some((e) => e.startsWith('SPAWN_ISOLATED_TEST_MARK=')), 'the launcher environment leaked');
      const explicit = json<string[]>(await collect(spawnIsolated(w, ['env'], { ...relaxed, user: name, env: { EXTRA: '1' } })));
      assert.ok(explicit.includes('EXTRA=1') && explicit.includes(`HOME=/home/${name}`), 'an explicit env goes on top of the login one');
    });

    it('from inside (the Go module), the worker reads the same user', async () => {
      const r = await execIsolated(probePath(), ['limits'], { ...relaxed, user: name });
      assert.equal(JSON.parse(String(r.stdout)).user, name);
    });

    it('the command: --user NAME', () => {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
      const out = execFileSync(process.execPath, [path.join(root, 'dist', 'lib', 'cli.js'), '--best-effort', '--quiet', '--user', name, w, 'info'], { encoding: 'utf8' });
      assert.equal(JSON.parse(out).uid, uid);
    });
  });

  it("Windows: session 'console' from a process that is not a LocalSystem service fails with ERR_NO_USER_SESSION, starting nothing", async function () {
    if (!isWindows) {
      this.test!.title += ' [skipped: Windows only]';
      this.skip();
    }
    const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, session: 'console' });
    const r = await p.exited.then(
      (e) => ({ started: true, code: e.code, user: p.user, session: p.sessionId }),
      (e: NodeJS.ErrnoException) => ({ started: false, code: e.code, message: e.message }),
    );
    if (r.started) {
      // Wine hands any process a session user's token: it has no services and no LocalSystem.
      this.test!.title += ` [Wine started it in session ${String((r as { session?: number }).session)} as ${String((r as { user?: string }).user)}: no SeTcbPrivilege check]`;
      return;
    }
    assert.equal(r.code, 'ERR_NO_USER_SESSION', JSON.stringify(r));
    assert.equal(p.pid, undefined);
  });

  // Under Wine any process gets a session user's token (the launcher's own user): a session
  // worker starts, from that user's environment block, so the environment and the lookup of its
  // executable can be checked here. Real Windows needs a LocalSystem launcher (see the README).
  async function sessionStarts(ctx: Mocha.Context): Promise<number> {
    if (!isWindows) {
      ctx.test!.title += ' [skipped: Windows only]';
      ctx.skip();
    }
    const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, session: 'console' });
    const r = await p.exited.then(
      () => p.sessionId,
      (e: NodeJS.ErrnoException) => e,
    );
    if (r instanceof Error || r === null) {
      ctx.test!.title += ` [skipped: no session worker can start here (${(r as Error)?.message}); the LocalSystem job runs it]`;
      ctx.skip();
    }
    return r as number;
  }

  it("Windows: a session worker without options.env starts from the session user's environment and still gets GOMAXPROCS / GOMEMLIMIT from its limits", async function () {
    await sessionStarts(this);
    process.env.SPAWN_ISOLATED_TEST_MARK = '1'; // in the launcher's environment, not the session user's
    let env: string[];
    try {
      env = json<string[]>(await collect(spawnIsolated(w, ['env'], { ...relaxed, session: 'console', cpu: 1.5, memory: '1GiB' })));
    } finally {
      delete process.env.SPAWN_ISOLATED_TEST_MARK;
    }
    assert.ok(!env.some((e) => e.startsWith('SPAWN_ISOLATED_TEST_MARK=')), "the launcher's environment leaked into the session worker's");
    assert.ok(env.includes('GOMAXPROCS=2'), `no GOMAXPROCS: ${JSON.stringify(env)}`);
    assert.ok(env.includes(`GOMEMLIMIT=${Math.floor(2 ** 30 * 0.9)}`), 'no GOMEMLIMIT');
    assert.ok(env.some((e) => /^USERPROFILE=/i.test(e)), 'the session user environment block');
    // options.env goes on top of the session user's (names without case: one PATH).
    const explicit = json<string[]>(await collect(spawnIsolated(w, ['env'], { ...relaxed, session: 'console', env: { EXTRA: '1', path: 'C:\\x' } })));
    assert.ok(explicit.includes('EXTRA=1') && explicit.some((e) => /^USERPROFILE=/i.test(e)));
    assert.deepEqual(explicit.filter((e) => /^path=/i.test(e)), ['path=C:\\x']);
  });

  it("Windows: a session worker's executable is looked up on the session user's PATH, not the launcher's", async function () {
    await sessionStarts(this);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'si-path-'));
    const name = `si-only-on-launcher-path-${process.pid}`;
    fs.copyFileSync(w, path.join(dir, `${name}.exe`));
    const saved = process.env.PATH;
    process.env.PATH = `${dir};${saved}`;
    try {
      // The control: found on the launcher's PATH without a session.
      assert.equal((await collect(spawnIsolated(name, ['exit', '0'], relaxed))).exit.code, 0);
      const p = spawnIsolated(name, ['exit', '0'], { ...relaxed, session: 'console' });
      const err = await p.exited.then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err?.code, 'ENOENT', 'found on the launcher PATH');
      // A program on the session user's PATH is found there.
      const cmd = await collect(spawnIsolated('cmd', ['/c', 'exit', '3'], { ...relaxed, session: 'console' }));
      assert.equal(cmd.exit.code, 3);
    } finally {
      process.env.PATH = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Windows: a group's members run in one session (a job's processes must): a member for another session is refused up front with ERR_JOB_SESSION, starting nothing", async function () {
    const console = await sessionStarts(this);
    const other = console === 0 ? 1 : 0;
    const g = createIsolationGroup({ enforcement: 'best-effort' });
    try {
      const a = g.spawn(w, ['sleep', '20000'], { ...relaxed, session: 'console' });
      await new Promise<void>((r) => a.once('spawn', () => r()));
      const b = g.spawn(w, ['exit', '0'], { ...relaxed, session: other });
      const err = await b.exited.then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      if (err?.code === 'ERR_NO_USER_SESSION') {
        this.test!.title += ` [skipped: nobody is logged on in session ${other} here]`;
        this.skip();
      }
      assert.equal(err?.code, 'ERR_JOB_SESSION', `session ${other} beside session ${console}: ${err?.message ?? 'it started'}`);
      assert.match(err!.message, /one session/);
      assert.equal(b.pid, undefined);
      assert.equal(a.exitCode, null, 'the first member runs on');
    } finally {
      await g.close();
    }
  });

  it("Windows: a launcher in a job that allows no breakaway is refused a worker in another session up front (ERR_JOB_SESSION); one that allows breakaway starts it outside", async function () {
    const consoleSession = await sessionStarts(this);
    if (onWine) {
      this.test!.title += ' [skipped: Wine stores no job limits (they read back as zeros) and keeps no session rule for jobs]';
      this.skip();
    }
    this.timeout(60_000);
    const run = (breakaway: boolean) => {
      const script = `const koffi = require(${JSON.stringify(require.resolve('koffi'))});
        const k32 = koffi.load('kernel32.dll');
        const CreateJobObjectW = k32.func('intptr_t __stdcall CreateJobObjectW(void *sa, void *name)');
        const SetInformationJobObject = k32.func('int __stdcall SetInformationJobObject(intptr_t job, int cls, _In_ uint8_t *info, uint32_t len)');
        const AssignProcessToJobObject = k32.func('int __stdcall AssignProcessToJobObject(intptr_t job, intptr_t process)');
        const GetCurrentProcess = k32.func('intptr_t __stdcall GetCurrentProcess()');
        const job = CreateJobObjectW(null, null);
        const info = Buffer.alloc(144); // JOBOBJECT_EXTENDED_LIMIT_INFORMATION; LimitFlags at 16
        info.writeUInt32LE(${breakaway ? '0x800' : '0'}, 16); // JOB_OBJECT_LIMIT_BREAKAWAY_OK
        SetInformationJobObject(job, 9, info, 144);
        AssignProcessToJobObject(job, GetCurrentProcess());
        const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
        const p = spawnIsolated(${JSON.stringify(w)}, ['exit', '0'], { enforcement: 'best-effort', session: 'console' });
        p.exited.then((e) => console.log(JSON.stringify({ exit: e.code, session: p.sessionId })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`;
      return new Promise<{ exit?: number; session?: number; code?: string; message?: string }>((resolve, reject) =>
        execFile(process.execPath, ['-e', script], (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout.trim().split('\n').pop()!)))),
      );
    };
    const ownSession = spawnIsolated(w, ['exit', '0'], relaxed);
    await ownSession.exited;
    if (ownSession.sessionId === consoleSession) {
      this.test!.title += ' [skipped: the launcher runs in the console session itself: no other session to start in]';
      this.skip();
    }
    const refused = await run(false);
    assert.equal(refused.code, 'ERR_JOB_SESSION', JSON.stringify(refused));
    const allowed = await run(true);
    assert.deepEqual([allowed.exit, allowed.session], [0, consoleSession], JSON.stringify(allowed));
  });

  it("Windows: a restricted session worker's restricting SIDs include the session's logon SID (its desktop and named objects grant it; LocalSystem's Node is not granted to it); a worker in this session's do not", async function () {
    await sessionStarts(this);
    const token = async (opts: object) => json<{ restrictingSids?: string[] }>(await collect(spawnIsolated(w, ['token'], { ...relaxed, ...opts })));
    const session = await token({ session: 'console' });
    const own = await token({});
    if (!(session.restrictingSids ?? []).length) {
      this.test!.title += ` [skipped: the worker's token has no restricting SIDs here${onWine ? ' (Wine applies no restricted token, measured)' : ''}; the LocalSystem job runs it]`;
      this.skip();
    }
    assert.equal(session.restrictingSids!.filter((s) => s.startsWith('S-1-5-5-')).length, 1, JSON.stringify(session));
    assert.equal(own.restrictingSids!.filter((s) => s.startsWith('S-1-5-5-')).length, 0, JSON.stringify(own));
    const gui = json<{ user32: string; namedEvent: string }>(await collect(spawnIsolated(w, ['gui'], { ...relaxed, session: 'console' })));
    assert.deepEqual([gui.user32, gui.namedEvent], ['ok', 'ok']);
  });

  it("Windows: a session worker's private TEMP is in the session user's own temp directory (LocalAppData\\Temp; LocalLow\\Temp for 'low'), usable, and gone at its end", async function () {
    await sessionStarts(this);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const oracle = require('./oracle-win') as typeof import('./oracle-win');
    for (const [privileges, folder] of [['restricted', 'LocalAppData'], ['low', 'LocalAppDataLow']] as const) {
      const p = spawnIsolated(w, ['tempfile'], { ...relaxed, session: 'console', privileges, tempDir: true });
      const c = await collect(p);
      assert.equal(c.exit.code, 0, `${privileges}: ${String(c.stdout)} ${c.stderr}`);
      const got = json<{ file: string; dir: string }>(c);
      const base = path.join(oracle.sessionKnownFolder(folder), 'Temp').toLowerCase();
      assert.equal(path.dirname(got.dir).toLowerCase(), base, `${privileges}: ${got.dir}`);
      assert.ok(got.file.startsWith(got.dir), 'it wrote a file there');
      assert.equal(fs.existsSync(got.dir), false, 'its directory was left behind');
    }
  });

  it('Windows: the worker reports its session and account', async function () {
    if (!isWindows) {
      this.test!.title += ' [skipped: Windows only]';
      this.skip();
    }
    const p = spawnIsolated(probePath(), ['limits'], { ...relaxed, stdio: 'pipe' });
    const inside = JSON.parse(String((await collect(p)).stdout)) as { session: number; user: string };
    assert.equal(typeof p.sessionId, 'number');
    assert.match(String(p.user), /\\/);
    // From inside (the Go module): the same session and account.
    assert.deepEqual([inside.session, inside.user.toLowerCase()], [p.sessionId, String(p.user).toLowerCase()]);
  });
});
