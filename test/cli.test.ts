import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { isolationSupport } from '../lib';
import { EXIT, windowsSignalAction } from '../lib/cli';
import { isWindows, onWine, requireEnforced, root, worker } from './helpers';

const cli = path.join(root, 'dist', 'lib', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], onStdout?: (s: string, child: ReturnType<typeof spawn>) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

(isolationSupport().spawn ? describe : describe.skip)('the spawn-isolated command', function () {
  const w = worker();
  const relaxed = ['--best-effort'];

  it('passes stdio straight through and exits with the worker’s code; one summary line on stderr', async () => {
    const r = await run([...relaxed, '--', w, 'argv', '--not-a-flag', 'two words']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['--not-a-flag', 'two words']);
    assert.match(r.stderr, /^spawn-isolated: worker(\.exe)? ended \(exit, code 0\): peak .*, cpu \d+ ms, wall \d+ ms\n$/);
    assert.equal((await run([...relaxed, '--', w, 'exit', '37'])).code, 37);
  });

  it('stops reading its own flags at FILE: the worker gets -la and --json as arguments, as under prlimit', async () => {
    const r = await run([...relaxed, '--memory', '512MiB', w, 'argv', '-la', '--json', 'hi']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['-la', '--json', 'hi']);
    assert.match(r.stderr, /^spawn-isolated: worker(\.exe)? ended \(exit, code 0\)/, 'the summary is a line, not JSON: --json went to the worker');
  });

  it('--quiet prints no summary; --cpus is --cpu; --dry-run checks that FILE exists', async () => {
    const q = await run([...relaxed, '--quiet', '--cpus', '1', w, 'exit', '5']);
    assert.deepEqual([q.code, q.stderr], [5, '']);
    assert.equal((await run(['--cpu', '1', '--cpus', '1', w, 'exit', '0'])).code, EXIT.usage);
    const d = await run(['--dry-run', './no-such-worker']);
    assert.equal(d.code, EXIT.notFound);
    assert.match(d.stderr, /ENOENT/);
  });

  it('--json prints the summary as JSON instead', async () => {
    const r = await run([...relaxed, '--json', '--', w, 'exit', '3']);
    assert.equal(r.code, 3);
    const s = JSON.parse(r.stderr);
    assert.equal(s.reason, 'exit');
    assert.equal(s.code, 3);
    assert.equal(s.exitCode, 3);
    assert.equal(typeof s.peakMemory, 'number');
    assert.equal(typeof s.wallMs, 'number');
  });

  it('--env with --clear-env gives exactly those variables (plus what Go is told)', async () => {
    const r = await run([...relaxed, '--clear-env', '--env', 'A=1', '--env', 'B=x=y', '--', w, 'env']);
    // Windows programs get SYSTEMROOT etc. added (as libuv does); Wine's loader adds its own
    // WINE* variables to every process it starts.
    const env = (JSON.parse(r.stdout) as string[]).filter((e) => !/^(SYSTEMROOT|SYSTEMDRIVE|TEMP)=/i.test(e) && !(onWine && /^WINE/.test(e)));
    assert.deepEqual(env.sort(), ['A=1', 'B=x=y']);
  });

  it('a timeout exits 124, a missing FILE 127', async () => {
    assert.equal((await run([...relaxed, '--timeout', '300ms', '--', w, 'sleep', '60000'])).code, EXIT.timeout);
    const r = await run(['--', 'no-such-program-xyz']);
    assert.equal(r.code, EXIT.notFound);
    assert.match(r.stderr, /ENOENT/);
  });

  it('a memory kill exits 121, a CPU-time kill 122', async function () {
    requireEnforced(this, 'memory.total');
    requireEnforced(this, 'cpu.time');
    assert.equal((await run(['--memory', '128MiB', '--no-go', '--', w, 'alloc', '1024'])).code, EXIT.memory);
    assert.equal((await run(['--cpu-time', '1s', '--', w, 'spin', '30000', '1'])).code, EXIT.cpuTime);
  });

  it('--threads: a worker that fails at its thread limit exits 119', async function () {
    requireEnforced(this, 'threads');
    if (isolationSupport().limits.threads.mechanism === 'rlimit-nproc') {
      this.test!.title += ' [skipped: RLIMIT_NPROC leaves no count to tell the reason from]';
      this.skip();
    }
    const r = await run(['--threads', '64', '--', w, 'attack', 'threads', '500']);
    assert.equal(r.code, EXIT.threads, r.stderr.slice(-300));
    assert.match(r.stderr, /ended \(threads/);
  });

  it('a signal to the command ends the tree and exits 128 + that signal', async function () {
    if (isWindows) {
      this.test!.title += ' [skipped: Windows has no SIGTERM to send to a process]';
      this.skip();
    }
    const r = await run([...relaxed, '--', w, 'tree', '60000'], (out, child) => {
      if (out.includes('\n')) child.kill('SIGTERM');
    });
    assert.equal(r.code, 128 + 15);
    assert.match(r.stderr, /killed, signal SIGTERM/);
  });

  it('a signal to the command is forwarded to the worker, whose own handling decides the exit code', async function () {
    if (isWindows) {
      this.test!.title += ' [skipped: Windows has no SIGTERM to send to a process]';
      this.skip();
    }
    // Once: a later chunk (the worker's answer) must not signal the command again as it ends.
    let sent = false;
    const r = await run([...relaxed, '--', w, 'trap', 'SIGTERM', '0'], (out, child) => {
      if (out.includes('ready') && !sent) sent = child.kill('SIGTERM');
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"got":"terminated"/);
  });

  it('--timeout sends SIGTERM, then SIGKILL after --kill-after to a worker that ignores it (exit 124)', async function () {
    if (isWindows) {
      this.test!.title += ' [skipped: Windows has no SIGTERM: the tree is ended at once]';
      this.skip();
    }
    const t0 = Date.now();
    const r = await run([...relaxed, '--timeout', '100ms', '--kill-after', '300ms', '--', w, 'ignore', 'SIGTERM', '30000']);
    assert.equal(r.code, EXIT.timeout, r.stderr);
    assert.ok(Date.now() - t0 >= 390, 'killed before --kill-after');
    assert.match(r.stderr, /SIGKILL/);
    const bad = await run(['--kill-after', 'soon', '--', w]);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.stderr, /--kill-after/);
  });

  it("the summary starts on a line of its own after a worker's partial last stderr line", async () => {
    const r = await run([...relaxed, '--', w, 'stderr', 'no newline at the end']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /^no newline at the end\nspawn-isolated: /);
  });

  it('bad flags: one line naming the flag, exit 2, no stack trace', async () => {
    for (const [args, flag] of [
      [['--memory', 'lots', '--', w], '--memory'],
      [['--cpu', 'fast', '--', w], '--cpu'],
      [['--memroy', '1GiB', '--', w], '--memroy'],
      [['--processes', '0', '--', w], '--processes'],
      [['--privileges', 'root', '--', w], '--privileges'],
      [['--memory', '1GiB'], 'FILE'],
    ] as [string[], string][]) {
      const r = await run(args);
      assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.includes(flag), `${r.stderr} should name ${flag}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  it('--dry-run starts nothing, says how each limit is enforced, and fails where strict mode would refuse', async () => {
    const support = isolationSupport();
    const r = await run(['--dry-run', '--json', '--memory', '256MiB', '--handles', '500', '--', w, 'exit', '9']);
    const s = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(s.limits).sort(), ['handles', 'memory.total']);
    const refuses = !support.limits['memory.total'].enforced || !support.limits.handles.enforced;
    assert.equal(r.code, refuses ? EXIT.notEnforced : 0, 'the worker (exit 9) never ran');
    const best = await run(['--dry-run', '--best-effort', '--memory', '256MiB', '--', w]);
    assert.equal(best.code, 0);
    assert.match(best.stdout, /memory\.total/);
  });

  it('--help and --version', async () => {
    const h = await run(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /usage: spawn-isolated/);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    assert.equal((await run(['--version'])).stdout.trim(), require(path.join(root, 'package.json')).version);
  });
});

describe('the spawn-isolated command: Windows console signals', () => {
  it('Ctrl+Break from the keyboard already reached a worker sharing the console: no second CTRL_BREAK, only --kill-after; Ctrl+C (disabled in its process group) is forwarded', () => {
    assert.equal(windowsSignalAction('SIGBREAK', 'ctrl-break', true), 'wait');
    assert.equal(windowsSignalAction('SIGINT', 'ctrl-break', true), 'stop');
    // Other workers share no console: nothing reached them, each is asked to stop in its way.
    assert.equal(windowsSignalAction('SIGBREAK', 'channel', true), 'stop');
    assert.equal(windowsSignalAction('SIGBREAK', 'none', true), 'stop');
  });

  it('a signal that came before the worker existed is replayed as a stop request (CTRL_BREAK), not by ending its tree', () => {
    // The worker did not exist when the keyboard's Ctrl+Break came: it never got it.
    assert.equal(windowsSignalAction('SIGBREAK', 'ctrl-break', false), 'stop');
    assert.equal(windowsSignalAction('SIGINT', 'ctrl-break', false), 'stop');
  });
});
