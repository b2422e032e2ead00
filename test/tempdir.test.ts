// options.tempDir: a directory of the worker's own, owner only, removed at its end.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isolationSupport, spawnIsolated } from '../lib';
import { collect, firstLine, isLinux, isWindows, json, onWine, worker } from './helpers';

(isolationSupport().spawn ? describe : describe.skip)('private temp directories (tempDir)', () => {
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };

  /** A restricted sibling cannot create a file in `dir`; an 'inherit' worker (`control`) can. */
  async function siblingCannotWrite(dir: string, control: string): Promise<void> {
    const b = await collect(spawnIsolated(w, ['touch', path.join(dir, 'from-sibling')], relaxed));
    assert.notEqual(b.exit.code, 0, 'a sibling wrote into it');
    const c = await collect(spawnIsolated(w, ['touch', path.join(dir, 'from-control')], { ...relaxed, privileges: 'inherit' }));
    assert.equal(c.exit.code, 0, `control: ${control} writes there`);
  }

  it('the worker writes to its own TEMP / TMPDIR, which is gone once it has ended', async () => {
    // Made before the worker starts, there while it runs (a worker that waits: one that exits at
    // once may be gone, and its directory with it, by the time spawnIsolated returns).
    const held = spawnIsolated(w, ['sleep', '600000'], { ...relaxed, tempDir: true });
    assert.ok(held.tempDir && fs.existsSync(held.tempDir), 'made before it starts');
    held.kill('SIGKILL');
    await held.exited;
    assert.equal(fs.existsSync(held.tempDir), false, 'left behind by a killed worker');
    const p = spawnIsolated(w, ['tempfile'], { ...relaxed, tempDir: true });
    assert.ok(p.tempDir);
    const c = await collect(p);
    assert.equal(c.exit.code, 0, String(c.stdout) + c.stderr);
    const got = json<{ file: string; dir: string }>(c);
    assert.equal(path.resolve(got.dir).toLowerCase(), path.resolve(p.tempDir).toLowerCase());
    assert.equal(fs.existsSync(p.tempDir), false, 'left behind');
  });

  it('keepTempDir leaves it (and what the worker wrote) in place', async () => {
    const p = spawnIsolated(w, ['tempfile'], { ...relaxed, tempDir: true, keepTempDir: true });
    const got = json<{ file: string }>(await collect(p));
    try {
      assert.equal(fs.readFileSync(got.file, 'utf8'), 'x');
    } finally {
      fs.rmSync(p.tempDir!, { recursive: true, force: true });
    }
  });

  it("profile: 'private' points the per-user cache and config locations inside it", async () => {
    const p = spawnIsolated(w, ['env'], { ...relaxed, tempDir: true, profile: 'private' });
    const env = json<string[]>(await collect(p));
    const names = isWindows ? ['LOCALAPPDATA', 'APPDATA'] : ['XDG_CACHE_HOME', 'XDG_CONFIG_HOME'];
    for (const n of names) {
      const e = env.find((x) => x.toUpperCase().startsWith(`${n}=`));
      assert.ok(e && e.slice(n.length + 1).toLowerCase().startsWith(p.tempDir!.toLowerCase()), `${n}: ${e}`);
    }
    assert.throws(() => spawnIsolated(w, [], { profile: 'private' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.profile/ });
  });

  it('Linux: 0700 and owned by the worker; another restricted worker cannot write into it (control: root can)', async function () {
    if (!isLinux || process.getuid?.() !== 0 || !isolationSupport().limits.privileges.enforced) {
      this.test!.title += ' [skipped: needs Linux, root and restricted workers]';
      this.skip();
    }
    const a = spawnIsolated(w, ['tree', '20000'], { ...relaxed, tempDir: true });
    try {
      await firstLine(a);
      const st = fs.statSync(a.tempDir!);
      assert.equal(st.mode & 0o777, 0o700);
      assert.notEqual(st.uid, 0, 'owned by the worker (a transient uid), not by root');
      await siblingCannotWrite(a.tempDir!, 'root');
    } finally {
      a.kill('SIGKILL');
      await a.exited;
    }
  });

  it("Windows: a restricted sibling cannot write into a worker's tempDir (control: an inherit worker can)", async function () {
    if (!isWindows || !isolationSupport().limits.privileges.enforced) {
      this.test!.title += ` [skipped: ${isWindows ? 'Wine applies no token' : 'Windows only'}]`;
      this.skip();
    }
    const a = spawnIsolated(w, ['sleep', '20000'], { ...relaxed, tempDir: true });
    try {
      await new Promise<void>((r) => a.once('spawn', () => r()));
      await siblingCannotWrite(a.tempDir!, 'a worker with our token');
    } finally {
      a.kill('SIGKILL');
      await a.exited;
    }
  });

  it('Windows: a protected DACL of this user, the worker and SYSTEM (oracle: GetNamedSecurityInfoW)', async function () {
    if (!isWindows || onWine) {
      // Wine 8 keeps no DACL on a file: it answers one made from the Unix mode bits (measured:
      // three ACEs of other SIDs set with SetSecurityInfo read back as SYSTEM, the Unix owner
      // and Everyone; made with CreateDirectoryW's security attributes, as SYSTEM alone).
      this.test!.title += ` [skipped: ${onWine ? 'Wine keeps no file DACLs: it reads back one made from the Unix mode bits' : 'Windows only'}]`;
      this.skip();
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const oracle = require('./oracle-win') as typeof import('./oracle-win');
    const p = spawnIsolated(w, ['sleep', '5000'], { ...relaxed, tempDir: true });
    try {
      assert.deepEqual(oracle.fileDacl(p.tempDir!), { aces: 3, protected: true });
    } finally {
      p.kill('SIGKILL');
      await p.exited;
    }
  });
});
