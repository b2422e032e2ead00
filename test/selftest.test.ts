// The self-test (spawn-isolated --self-test / selfTest()): the bundled probe under each limit,
// on this host, against what the host claims.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { isolationSupport, selfTest, SelfTestReport } from '../lib';
import { isLinux, onWine, root } from './helpers';

(isolationSupport().spawn ? describe : describe.skip)('self-test', function () {
  this.timeout(180_000);
  let report: SelfTestReport;

  before(async () => {
    report = await selfTest();
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

  it('the command: --self-test --json prints the report and exits 0 when it holds; a stray flag is bad usage', async () => {
    const cli = path.join(root, 'dist', 'lib', 'cli.js');
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        execFile(process.execPath, [cli, ...args], { timeout: 170_000 }, (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout }));
      });
    const bad = await run(['--self-test', '--bogus']);
    assert.equal(bad.code, 2);
    const r = await run(['--self-test', '--json']);
    assert.equal(r.code, 0, r.stdout);
    const parsed = JSON.parse(r.stdout) as SelfTestReport;
    assert.equal(parsed.ok, true);
    assert.equal(parsed.checks.length, report.checks.length);
  });
});
