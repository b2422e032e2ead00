// The private channel (options.channel) and the Go module's Channel() / Require(), end to end
// with the probe, which is built on the module.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { execIsolated, isolationSupport, spawnIsolated } from '../lib';
import { probePath } from '../lib/selftest';
import { isWindows, onWine, worker } from './helpers';

const UNCONFINED = 78; // spawnisolated.ExitUnconfined

/** The probe's `require` run by child_process, as from a shell, with the variable set to `channel`. */
function runDirect(channel: string, stdin: 'ignore' | 'pipe'): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(probePath(), ['require'], { env: { ...process.env, SPAWN_ISOLATED_CHANNEL: channel }, stdio: [stdin, 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d));
    c.on('close', (code) => resolve({ code, stderr }));
  });
}

(isolationSupport().spawn ? describe : describe.skip)('channel', () => {
  const relaxed = { enforcement: 'best-effort' as const, memory: '128MiB' };

  it("channel: 'json': messages both ways; closing our end is the worker's end of input", async () => {
    const p = spawnIsolated(probePath(), ['echo'], { ...relaxed, channel: 'json' });
    const got: unknown[] = [];
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d));
    p.on('message', (m) => {
      got.push(m);
      if (got.length === 2) p.channel!.end();
    });
    await new Promise<void>((r) => p.once('spawn', () => r()));
    p.send({ n: 1, s: 'é ☃' });
    p.send([2]);
    const e = await new Promise<{ code: number | null }>((r) => p.once('close', (code) => r({ code })));
    assert.deepEqual(got, [{ echo: { n: 1, s: 'é ☃' } }, { echo: [2] }]);
    assert.equal(e.code, 0);
    assert.match(out, /"end":"EOF"/);
  });

  it('channel: true: a raw duplex stream; send() needs json', async () => {
    const p = spawnIsolated(probePath(), ['echo'], { ...relaxed, channel: true });
    assert.throws(() => p.send({}), { code: 'ERR_IPC_CHANNEL_CLOSED' });
    let reply = '';
    p.channel!.on('data', (d: Buffer) => {
      reply += d;
      if (reply.endsWith('\n')) p.channel!.end();
    });
    p.channel!.write('{"raw":true}\n');
    await p.exited;
    assert.equal(reply, '{"echo":{"raw":true}}\n');
  });

  it('Require(FromLauncher()): runs when started with a channel; refuses when run directly, or with the variable forged', async () => {
    const ok = await execIsolated(probePath(), ['require'], { ...relaxed, channel: true });
    assert.equal(ok.code, 0, String(ok.stderr));
    assert.equal(JSON.parse(String(ok.stdout)).running, true);
    // Forged in options.env: the launcher strips it, so the worker sees no channel.
    const forged = await execIsolated(probePath(), ['require'], { ...relaxed, env: { ...process.env, SPAWN_ISOLATED_CHANNEL: '3' } });
    assert.equal(forged.code, UNCONFINED);
    assert.match(String(forged.stderr), /no channel/);
    // Run directly (child_process), the variable naming its stdin (the null device): refused.
    const direct = await runDirect('0', 'ignore');
    assert.equal(direct.code, UNCONFINED, direct.stderr);
    assert.match(direct.stderr, /not one its launcher made/);
    // A parent that hands its child a connected socket / pipe of its own passes the channel
    // check (it is the child's launcher); only the confinement check tells it from ours.
    const handed = await runDirect(isWindows ? '' : '0', 'pipe');
    assert.equal(handed.code, UNCONFINED, handed.stderr);
  });

  it('a worker built on the module, with channel and tempDir: reports its limits from inside, talks both ways, leaves nothing behind', async () => {
    const p = spawnIsolated(probePath(), ['worker'], { enforcement: 'best-effort', memory: '192MiB', cpu: 1, channel: 'json', tempDir: true });
    const closed = new Promise((r) => p.once('close', r));
    const messages: Record<string, unknown>[] = [];
    const replied = new Promise<void>((resolve) =>
      p.on('message', (m) => {
        messages.push(m as Record<string, unknown>);
        if (messages.length === 1) p.send({ ping: 1 });
        else {
          p.channel!.end();
          resolve();
        }
      }),
    );
    await replied;
    const exit = await p.exited;
    await closed;
    const first = messages[0] as { limits: { mechanism: string; memoryTotal: number; cpuCores: number }; temp: string; wrote: boolean; tuned: { memoryLimit: number } };
    if (isolationSupport().limits['memory.total'].enforced) {
      assert.equal(first.limits.memoryTotal, 192 * 1024 * 1024);
      assert.equal(first.tuned.memoryLimit, Math.floor(192 * 1024 * 1024 * 0.9));
    } else {
      assert.equal(first.limits.mechanism, isWindows ? 'job-object' : first.limits.mechanism);
    }
    assert.equal(first.wrote, true);
    assert.equal(first.temp.toLowerCase(), p.tempDir!.toLowerCase());
    assert.deepEqual(messages[1], { echo: { ping: 1 } });
    assert.equal(exit.code, 0);
    assert.equal(fs.existsSync(p.tempDir!), false, 'its temp directory was left behind');
  });

  it('a reader goroutine blocked in Receive does not hold up Send from another goroutine (progress while waiting for orders)', async function () {
    this.timeout(20_000);
    const p = spawnIsolated(probePath(), ['progress', '5'], { ...relaxed, channel: 'json' });
    const got: Record<string, unknown>[] = [];
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d));
    // Its stdout is all read at 'close' ('exit' may come first, as under child_process).
    const closed = new Promise((r) => p.on('close', r));
    const progressed = new Promise<void>((resolve) =>
      p.on('message', (m) => {
        got.push(m as Record<string, unknown>);
        if (got.length === 5) resolve();
        if ((m as { got?: unknown }).got !== undefined) p.channel!.end();
      }),
    );
    // Nothing is sent before all five progress messages have arrived: the worker's reader is
    // blocked in Receive the whole time (Windows serializes I/O on a synchronous handle).
    const timer = setTimeout(() => p.kill(), 10_000);
    await Promise.race([progressed, p.exited]);
    clearTimeout(timer);
    assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => ({ progress: i })), `the worker's sends were held up (got ${JSON.stringify(got)}; stdout ${out})`);
    p.send({ order: 1 });
    const e = await p.exited;
    assert.deepEqual(got[5], { got: { order: 1 } });
    assert.equal(e.code, 0);
    await closed;
    assert.match(out, /"end":"EOF"/);
  });

  it("Windows: the worker's end of the channel is opened for overlapped I/O (a synchronous handle serializes reads and writes)", async function () {
    if (!isWindows) {
      this.test!.title += ' [skipped: Windows only]';
      this.skip();
    }
    const r = await execIsolated(worker(), ['chanmode'], { ...relaxed, channel: true });
    assert.equal(r.code, 0, String(r.stderr));
    const mode = JSON.parse(String(r.stdout)) as { synchronous?: boolean; error?: number };
    assert.equal(mode.error, undefined, String(r.stdout));
    assert.equal(mode.synchronous, false, `FileModeInformation ${String(r.stdout)}`);
  });

  it("Windows without a console: gracefulStop is 'channel', and stop() closes it: the worker ends by itself", async function () {
    if (!isWindows) {
      this.test!.title += ' [skipped: Windows only (POSIX stops with a signal)]';
      this.skip();
    }
    const p = spawnIsolated(probePath(), ['echo'], { ...relaxed, channel: 'json' });
    assert.equal(p.gracefulStop, 'channel');
    await new Promise<void>((r) => p.once('spawn', () => r()));
    const e = await p.stop({ grace: '20s' });
    assert.equal(e.code, 0, 'the worker read the end of its channel and exited by itself');
    assert.equal(e.reason, 'killed');
    void onWine;
  });
});
