// The self-test (spawn-isolated --self-test / selfTest()): the bundled probe under each limit,
// on this host, against what the host claims.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isolationSupport, selfTest, SelfTestReport } from '../lib';
import { isLinux, onWine, root } from './helpers';

(isolationSupport().spawn ? describe : describe.skip)('self-test', function () {
  this.timeout(180_000);
  let report: SelfTestReport;

  // A victim file, and a link to it planted at the name the self-test once used for its file
  // (and at a few more it might): it must neither follow nor remove any of them.
  let victim: string;
  let planted: string[] = [];
  before(async () => {
    victim = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-victim-')), 'victim');
    fs.writeFileSync(victim, 'untouched', { mode: 0o600 });
    planted = [`spawn-isolated-selftest-${process.pid}.txt`, `spawn-isolated-selftest-${process.pid}`, 'spawn-isolated-selftest']
      .map((n) => path.join(os.tmpdir(), n))
      .filter((p) => !fs.existsSync(p));
    // Windows needs a privilege for symbolic links, and Wine reports success without making
    // one: only the links that exist are checked.
    for (const p of planted) {
      try {
        fs.symlinkSync(victim, p);
      } catch {
        // not plantable here
      }
    }
    planted = planted.filter((p) => {
      try {
        return fs.lstatSync(p).isSymbolicLink();
      } catch {
        return false;
      }
    });
    report = await selfTest();
  });
  after(() => {
    for (const p of planted) fs.rmSync(p, { force: true });
    fs.rmSync(path.dirname(victim), { recursive: true, force: true });
  });

  it('follows no link planted where it writes, and leaves no file behind', function () {
    if (planted.length === 0 && onWine) this.test!.title += " [links not checked: Wine's CreateSymbolicLinkW makes no link (measured)]";
    assert.equal(fs.readFileSync(victim, 'utf8'), 'untouched');
    for (const p of planted) assert.ok(fs.lstatSync(p).isSymbolicLink(), `${p} was replaced`);
    const left = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('spawn-isolated-selftest-') && !planted.includes(path.join(os.tmpdir(), n)));
    assert.deepEqual(left, []);
  });

  it('tries every limit and finds each claim of this host to be what it measured', () => {
    const names = report.checks.map((c) => c.check);
    for (const n of ['memory.total', 'memory.process', 'cpu.time', 'cpu.cores', 'processes', 'handles', 'inheritHandles', 'privileges', 'killOnClose', 'group.memory']) {
      assert.ok(names.includes(n), `no ${n} check`);
    }
    const bad = report.checks.filter((c) => !c.consistent);
    assert.deepEqual(bad, [], JSON.stringify(bad, null, 2));
    assert.equal(report.ok, true);
  });

  it('under Wine it says, truthfully, that no resource limit is enforced (only kill-on-close)', function () {
    if (!onWine) {
      this.test!.title += ' [skipped: not under Wine]';
      this.skip();
    }
    const measured = Object.fromEntries(report.checks.map((c) => [c.check, c.measured]));
    for (const n of ['memory.total', 'memory.process', 'cpu.time', 'processes', 'handles', 'privileges', 'group.memory']) assert.equal(measured[n], 'not-enforced', n);
    assert.equal(measured.killOnClose, 'enforced');
  });

  it('on Linux as root with cgroups every limit is measured enforced', function () {
    const support = isolationSupport();
    if (!isLinux || process.getuid?.() !== 0 || !Object.values(support.limits).every((l) => l.enforced)) {
      this.test!.title += ' [skipped: needs Linux, root and every limit enforced here]';
      this.skip();
    }
    for (const c of report.checks) assert.equal(c.measured, 'enforced', `${c.check}: ${c.detail}`);
  });

  it('the command: --self-test --json prints the report once (stdout; no copy on stderr) and exits 0 when it holds; a stray flag is bad usage', async () => {
    const cli = path.join(root, 'dist', 'lib', 'cli.js');
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [cli, ...args], { timeout: 170_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }));
      });
    const bad = await run(['--self-test', '--bogus']);
    assert.equal(bad.code, 2);
    const r = await run(['--self-test', '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    // Progress is for a terminal only: on a pipe the report is the one record of the checks.
    assert.doesNotMatch(r.stderr, /self-test:/, r.stderr);
    const parsed = JSON.parse(r.stdout) as SelfTestReport;
    assert.equal(parsed.ok, true);
    assert.equal(parsed.checks.length, report.checks.length);
  });
});
