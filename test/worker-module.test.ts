// The worker-side Go module (go/): what a worker reads about its own confinement from inside,
// and Tune(). The probe is built on it (`limits`, `tune` modes).
import * as assert from 'node:assert/strict';
import { execIsolated, isolationSupport, LimitName } from '../lib';
import { probePath } from '../lib/selftest';
import { isLinux, isWindows, onWine } from './helpers';

interface Limits {
  mechanism: string;
  memoryTotal: number;
  cpuCores: number;
  tasks: number;
  handles: number;
  processes: number;
  killOnClose: boolean;
  noNewPrivs: boolean;
  capabilities: number;
  integrity?: string;
}

async function limits(options: Parameters<typeof execIsolated>[2]): Promise<Limits> {
  const r = await execIsolated(probePath(), ['limits'], { enforcement: 'best-effort', ...options });
  assert.equal(r.code, 0, String(r.stderr));
  return JSON.parse(String(r.stdout)) as Limits;
}

(isolationSupport().spawn ? describe : describe.skip)('worker-side Go module', () => {
  const enforced = (l: LimitName) => isolationSupport().limits[l].enforced;

  it('Limits(): the worker reads the limits it was given, from the OS, from inside', async function () {
    const l = await limits({ memory: '256MiB', cpu: 1, processes: 4, handles: 500 });
    if (isLinux) {
      if (!enforced('memory.total') || !enforced('cpu.cores')) {
        this.test!.title += ' [skipped: needs cgroups for memory and cpu here]';
        this.skip();
      }
      assert.match(l.mechanism, /^cgroup-v[12]$/);
      assert.equal(l.memoryTotal, 256 * 1024 * 1024);
      assert.equal(l.cpuCores, 1);
      assert.ok(l.tasks >= 4 * 64, `tasks ${l.tasks}`);
      assert.equal(l.handles, 500);
      assert.equal(l.killOnClose, true);
      assert.equal(l.noNewPrivs, true);
      assert.equal(l.capabilities, 0);
    }
    if (isWindows) {
      assert.equal(l.mechanism, 'job-object', 'the worker finds itself in a job');
      if (onWine) {
        // Wine stores no job limit: the worker reads, truthfully, none.
        assert.deepEqual([l.memoryTotal, l.processes], [0, 0]);
      } else {
        assert.deepEqual([l.memoryTotal, l.processes, l.killOnClose], [256 * 1024 * 1024, 4, true]);
        assert.ok(Math.abs(l.cpuCores - 1) < 0.01, `cpuCores ${l.cpuCores}`);
      }
    }
  });

  it('Limits(): control: without limits the worker reads none of them', async function () {
    const l = await limits({ privileges: 'inherit', killOnClose: false });
    assert.equal(l.memoryTotal === 256 * 1024 * 1024, false);
    if (isLinux) assert.notEqual(l.handles, 500);
  });

  it('Limits(): a low worker reads low integrity (Windows, where the token is applied)', async function () {
    if (!isWindows || !enforced('privileges')) {
      this.test!.title += ` [skipped: ${isWindows ? 'Wine applies no token' : 'Windows only'}]`;
      this.skip();
    }
    assert.equal((await limits({ privileges: 'low' })).integrity, 'low');
    assert.equal((await limits({ privileges: 'restricted' })).integrity, 'medium');
  });

  it('Tune(): GOMAXPROCS and the Go memory limit from what Limits() found, where the environment set neither', async function () {
    if (!enforced('memory.total') || !enforced('cpu.cores')) {
      this.test!.title += ' [skipped: memory and cpu limits are not enforced here]';
      this.skip();
    }
    const r = await execIsolated(probePath(), ['tune'], { memory: '256MiB', cpu: 1, go: false, enforcement: 'best-effort' });
    const t = JSON.parse(String(r.stdout)) as { gomaxprocs: number; tuned: { memoryLimit: number } };
    assert.equal(t.gomaxprocs, 1);
    assert.equal(t.tuned.memoryLimit, Math.floor(256 * 1024 * 1024 * 0.9));
  });
});
