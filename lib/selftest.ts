// The self-test: runs the bundled probe under each limit in turn and compares what it measured
// with what this host claims to enforce (isolationSupport()). Every host is its own verifier:
// only a real Windows shows most of what the Windows backend does, and Wine shows none of it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { codedError } from './errors';
import { execIsolated } from './exec';
import type { ExecIsolatedResult } from './exec';
import type { IsolationOptions } from './options';
import { createIsolationGroup, isolationSupport, spawnIsolated } from './spawn';
import { packageRoot } from './native';
import type { LimitName } from './process';

/** What one check measured. */
export type SelfTestOutcome = 'enforced' | 'not-enforced' | 'refused' | 'not-measured';

/** One limit, tried from inside the probe. */
export interface SelfTestCheck {
  /** What was tried (a limit name, or `'group.memory'` for a group budget). */
  check: string;
  /** What this host claims (`isolationSupport()`), or null when it makes no claim. */
  claimed: { enforced: boolean; mechanism: string; reason?: string } | null;
  /** What the probe's run showed. */
  measured: SelfTestOutcome;
  /** The evidence, in words. */
  detail: string;
  /** False when the claim and the measurement disagree. */
  consistent: boolean;
}

/** The self-test's result: `ok` is false when any claim was not what was measured. */
export interface SelfTestReport {
  platform: string;
  arch: string;
  backend: string;
  checks: SelfTestCheck[];
  ok: boolean;
}

/** Options of {@link selfTest}. */
export interface SelfTestOptions {
  /** The probe executable (default: the one shipped in `prebuilds/<platform>-<arch>/`). */
  probe?: string;
  /** Called as each check finishes (for progress output). */
  onCheck?: (check: SelfTestCheck) => void;
}

type Run = ExecIsolatedResult<string>;

/** The probe shipped for this platform. */
export function probePath(): string {
  const name = process.platform === 'win32' ? 'spawn-isolated-probe.exe' : 'spawn-isolated-probe';
  return path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, name);
}

function lastJson(r: Run): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  try {
    return lines.length ? (JSON.parse(lines[lines.length - 1]) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function run(probe: string, args: string[], options: IsolationOptions): Promise<Run | Error> {
  try {
    return (await execIsolated(probe, args, { enforcement: 'best-effort', timeout: '60s', ...options })) as Run;
  } catch (e) {
    return e as Error;
  }
}

function ended(r: Pick<Run, 'reason' | 'code' | 'signal'>): string {
  return r.reason === 'exit' ? `exited with code ${String(r.code)}` : `ended with reason '${r.reason}'${r.signal ? ` (${r.signal})` : ''}`;
}

type Measure = (probe: string) => Promise<{ measured: SelfTestOutcome; detail: string }>;

// A limit the probe pushes past: enforced when the run ended with `reason`, or when `held`
// says the probe was stopped short inside.
function pushPast(args: string[], options: IsolationOptions, reason: string, held: (out: Record<string, unknown>) => boolean, what: string): Measure {
  return async (probe) => {
    const r = await run(probe, args, options);
    if (r instanceof Error) return { measured: 'refused', detail: `${(r as { code?: string }).code ?? 'error'}: ${r.message}` };
    const out = lastJson(r);
    if (r.reason === reason) return { measured: 'enforced', detail: `${what}: ${ended(r)}` };
    if (held(out)) return { measured: 'enforced', detail: `${what}: refused inside the probe (${JSON.stringify(out)})` };
    return { measured: 'not-enforced', detail: `${what}: the probe got through (${JSON.stringify(out)}), ${ended(r)}` };
  };
}

const cpuCores: Measure = async (probe) => {
  const wallMs = 2000;
  const r = await run(probe, ['spin', String(wallMs), '2'], { cpu: 0.5 });
  if (r instanceof Error) return { measured: 'refused', detail: r.message };
  const used = r.stats.cpuUserMs + r.stats.cpuKernelMs;
  if (used === 0) return { measured: 'not-measured', detail: 'this host reports no CPU time for another process' };
  const cores = used / wallMs;
  const detail = `two spinning threads for ${wallMs} ms under 0.5 cores used ${cores.toFixed(2)} cores`;
  if (os.cpus().length < 2 && cores <= 0.75) return { measured: 'not-measured', detail: `${detail} (one CPU: cannot tell a cap from the machine)` };
  return { measured: cores <= 0.75 ? 'enforced' : 'not-enforced', detail };
};

const inheritHandles: Measure = async (probe) => {
  // A directory of its own with a random name (mkdtemp: made exclusively, 0700), and the file
  // made there exclusively ('wx'): no name another user could have planted a link at.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-selftest-'));
  const file = path.join(dir, 'listed.txt');
  let fd: number;
  try {
    fs.writeFileSync(file, 'listed', { flag: 'wx', mode: 0o600 });
    fd = fs.openSync(file, 'r');
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  try {
    const r = await run(probe, ['fds'], { inheritHandles: [fd] });
    if (r instanceof Error) return { measured: 'refused', detail: r.message };
    const out = lastJson(r) as { listed?: boolean; fds?: Record<string, string>; why?: string };
    if (!out.listed) return { measured: 'not-measured', detail: out.why ?? 'the probe cannot list its handles here' };
    const fds = Object.values(out.fds ?? {});
    const real = fs.realpathSync(file);
    // Windows: paths compare without case (the probe reads its handle's final path).
    const ok = fds.length === 1 && (process.platform === 'win32' ? fds[0].toLowerCase() === real.toLowerCase() : fds[0] === real);
    return { measured: ok ? 'enforced' : 'not-enforced', detail: `one fd listed; besides its stdio the probe holds ${JSON.stringify(out.fds)}` };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

const privileges: Measure = async (probe) => {
  // A memory limit gives the probe a cgroup of its own (Linux), so its write test touches nothing else.
  const r = await run(probe, ['escape', String(process.pid)], { memory: '512MiB' });
  if (r instanceof Error) return { measured: 'refused', detail: r.message };
  const out = lastJson(r);
  const gained = Object.entries(out).filter(([k, v]) =>
    k === 'writableLimits' ? Array.isArray(v) && v.length > 0 : k === 'capEff' ? !/^0+$/.test(String(v)) : k === 'noNewPrivs' ? v === false : v === true,
  );
  if (Object.keys(out).length === 0) return { measured: 'not-measured', detail: `the probe said nothing (${ended(r)})` };
  return {
    measured: gained.length === 0 ? 'enforced' : 'not-enforced',
    detail: gained.length === 0 ? `the default worker could not act on its launcher or its limits (${JSON.stringify(out)})` : `the default worker could: ${JSON.stringify(Object.fromEntries(gained))}`,
  };
};

// A launcher killed outright: its worker must go with it.
const killOnClose: Measure = async (probe) => {
  const lib = path.join(__dirname, 'index.js');
  const script = `const { spawnIsolated } = require(${JSON.stringify(lib)});
    const p = spawnIsolated(${JSON.stringify(probe)}, ['sleep', '30000'], { enforcement: 'best-effort', stdio: 'ignore' });
    p.on('spawn', () => { process.stdout.write(String(p.pid) + '\\n'); process.kill(process.pid, 'SIGKILL'); });`;
  const pid = await new Promise<number>((resolve) => {
    execFile(process.execPath, ['-e', script], { timeout: 30_000 }, (_err, stdout) => resolve(Number(String(stdout).trim())));
  });
  if (!(pid > 0)) return { measured: 'not-measured', detail: 'the launcher did not report its worker' };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return { measured: 'enforced', detail: 'a launcher killed outright took its worker with it' };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid);
  } catch {
    // gone meanwhile
  }
  return { measured: 'not-enforced', detail: `the worker (pid ${pid}) outlived its launcher by 10 s` };
};

const groupMemory: Measure = async (probe) => {
  let g;
  try {
    g = createIsolationGroup({ enforcement: 'best-effort', memory: '96MiB' });
  } catch (e) {
    return { measured: 'refused', detail: (e as Error).message };
  }
  try {
    const p = g.spawn(probe, ['alloc', '256'], { enforcement: 'best-effort', memory: '1GiB', stdio: 'ignore', timeout: '60s' });
    p.on('error', () => undefined); // the rejection of exited reports it
    const r = await p.exited.catch((e: Error) => e);
    if (r instanceof Error) return { measured: 'refused', detail: r.message };
    return r.reason === 'memory'
      ? { measured: 'enforced', detail: `a member (own limit 1 GiB) allocating 256 MiB in a 96 MiB group: ${ended(r)}` }
      : { measured: 'not-enforced', detail: `a member allocating 256 MiB in a 96 MiB group: ${ended(r)}` };
  } finally {
    await g.close();
  }
};

// The probe's terminal, with this process's stdin: no controlling terminal, no TIOCSTI.
const terminal: Measure = async (probe) => {
  if (process.platform === 'win32') return { measured: 'not-measured', detail: 'Windows has no TIOCSTI: a console cannot be pushed input this way' };
  const p = spawnIsolated(probe, ['terminal'], { enforcement: 'best-effort', stdio: ['inherit', 'pipe', 'ignore'], timeout: '60s' });
  let text = '';
  p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  // Its output is all read at 'close' (after stdout ends), not at the exit, which a busy
  // machine can report first.
  const closed = new Promise<void>((resolve) => p.once('close', () => resolve()));
  const e = await p.exited.catch((err: Error) => err);
  if (e instanceof Error) return { measured: 'refused', detail: e.message };
  await closed;
  const out = lastJson({ stdout: text } as Run) as { ttyOpen?: boolean; terminals?: number; pushed?: number };
  if (out.ttyOpen === undefined) return { measured: 'not-measured', detail: `the probe said nothing (${ended(e)})` };
  const held = !out.ttyOpen && out.pushed === 0;
  return {
    measured: held ? 'enforced' : 'not-enforced',
    detail: `controlling terminal ${out.ttyOpen ? 'opened' : 'none'}; pushed input into ${out.pushed} of ${out.terminals} terminals it holds`,
  };
};

// Files left in the host's /tmp and /dev/shm by a default worker.
const privateTmp: Measure = async (probe) => {
  if (process.platform === 'win32') return { measured: 'not-measured', detail: 'Windows has no shared /tmp or /dev/shm' };
  // A random name nobody can have planted anything at; what is found there is only looked at
  // (lstat, never followed) and only our own regular file is removed.
  const name = `spawn-isolated-selftest-left-${randomBytes(16).toString('hex')}`;
  const places = ['/tmp', '/dev/shm'].filter((d) => fs.existsSync(d));
  const r = await run(probe, ['leave', name], {});
  if (r instanceof Error) return { measured: 'refused', detail: r.message };
  const wrote = lastJson(r) as Record<string, boolean>;
  const found = (d: string) => {
    try {
      return fs.lstatSync(path.join(d, name));
    } catch {
      return null;
    }
  };
  const left = places.filter((d) => found(d) !== null);
  for (const d of left) {
    const st = found(d);
    if (st?.isFile()) fs.rmSync(path.join(d, name), { force: true });
  }
  if (!places.some((d) => wrote[d])) return { measured: 'not-measured', detail: `the probe could write none of ${places.join(', ')}` };
  return {
    measured: left.length === 0 ? 'enforced' : 'not-enforced',
    detail: left.length === 0 ? `a file it wrote to ${places.filter((d) => wrote[d]).join(' and ')} is not on the host` : `it left files in the host's ${left.join(', ')}`,
  };
};

// network: 'none' against a loopback listener of this process (control: the default reaches it).
const network: Measure = async (probe) => {
  const net = await import('node:net');
  const server = net.createServer((c) => c.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = `127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const r = await run(probe, ['connect', addr], { network: 'none' });
    if (r instanceof Error) return { measured: 'refused', detail: r.message };
    const control = await run(probe, ['connect', addr], {});
    if (control instanceof Error || lastJson(control).connected !== true) return { measured: 'not-measured', detail: 'even a default worker could not reach this loopback listener' };
    const connected = lastJson(r).connected === true;
    return { measured: connected ? 'not-enforced' : 'enforced', detail: `under network: 'none' a loopback listener of the launcher was ${connected ? 'reached' : 'out of reach'} (a default worker reaches it)` };
  } finally {
    server.close();
  }
};

// filesystem: { read: [] } against a file every user may read (control: the default reads it;
// not one of this package's, which may lie under a /tmp the worker sees as its own).
const filesystem: Measure = async (probe) => {
  const file = process.platform === 'win32' ? path.join(process.env.SystemRoot ?? 'C:\\Windows', 'win.ini') : '/etc/passwd';
  const control = await run(probe, ['read', file], {});
  if (control instanceof Error || lastJson(control).read !== true) return { measured: 'not-measured', detail: `a default worker cannot read ${file} either` };
  const r = await run(probe, ['read', file], { filesystem: { read: [] } });
  if (r instanceof Error) return { measured: 'refused', detail: r.message };
  const read = lastJson(r).read === true;
  return { measured: read ? 'not-enforced' : 'enforced', detail: `under filesystem: { read: [] } ${file} was ${read ? 'read' : 'refused'} (a default worker reads it)` };
};

const CHECKS: { check: string; claim: LimitName | 'group'; measure: Measure }[] = [
  { check: 'memory.total', claim: 'memory.total', measure: pushPast(['alloc', '256'], { memory: '64MiB' }, 'memory', () => false, 'allocating 256 MiB under 64 MiB') },
  { check: 'memory.process', claim: 'memory.process', measure: pushPast(['alloc', '256'], { memory: { process: '64MiB' } }, 'memory', () => false, 'allocating 256 MiB under 64 MiB per process') },
  { check: 'cpu.time', claim: 'cpu.time', measure: pushPast(['spin', '3000', '1'], { cpu: { time: '1s' } }, 'cpu-time', () => false, 'spinning 3 s under 1 s of CPU time') },
  { check: 'cpu.cores', claim: 'cpu.cores', measure: cpuCores },
  {
    check: 'processes',
    claim: 'processes',
    measure: pushPast(['spawn', '1', '1000'], { processes: 1 }, 'processes', (o) => o.started === 0, 'starting a child under processes: 1'),
  },
  {
    // A process count on both (Windows: ActiveProcessLimit; Linux: the launcher counts each
    // creation, seccomp user notification): of 40 children started one after another, each
    // sleeping 2 s, only 1 may live beside the probe.
    check: 'processes (N > 1)',
    claim: 'processes',
    measure: pushPast(['spawn', '40', '2000'], { processes: 2 }, 'processes', (o) => typeof o.started === 'number' && o.started < 2, 'starting 40 children under processes: 2'),
  },
  {
    check: 'handles',
    claim: 'handles',
    measure: pushPast(['handles', '1000'], { handles: 256 }, 'handles', (o) => typeof o.opened === 'number' && o.opened < 1000, 'opening 1000 handles under 256'),
  },
  { check: 'inheritHandles', claim: 'inheritHandles', measure: inheritHandles },
  { check: 'privileges', claim: 'privileges', measure: privileges },
  { check: 'killOnClose', claim: 'killOnClose', measure: killOnClose },
  { check: 'terminal', claim: 'privileges', measure: terminal },
  { check: 'private /tmp', claim: 'privileges', measure: privateTmp },
  { check: 'network', claim: 'network', measure: network },
  { check: 'filesystem', claim: 'filesystem', measure: filesystem },
  { check: 'group.memory', claim: 'group', measure: groupMemory },
];

/**
 * Proves, on this host, what each limit does: runs the bundled probe under each limit in turn
 * and reports per limit what was measured (enforced, not enforced, refused, not measured) next
 * to what {@link isolationSupport} claims. `ok` is false when a claim and a measurement differ.
 */
export async function selfTest(options: SelfTestOptions = {}): Promise<SelfTestReport> {
  const probe = options.probe ?? probePath();
  if (!fs.existsSync(probe)) throw codedError('ERR_SELF_TEST_PROBE', `The self-test probe is missing: ${probe} (build it with node scripts/build-probe.js; it needs Go)`);
  const support = isolationSupport();
  const checks: SelfTestCheck[] = [];
  for (const c of CHECKS) {
    const claimed = c.claim === 'group' ? support.limits['memory.total'] : support.limits[c.claim];
    const m = await c.measure(probe);
    const claim = claimed ? { enforced: claimed.enforced, mechanism: claimed.mechanism, ...(claimed.reason ? { reason: claimed.reason } : {}) } : null;
    const consistent = m.measured === 'not-measured' || claim === null || claim.enforced === (m.measured === 'enforced');
    const check: SelfTestCheck = { check: c.check, claimed: claim, measured: m.measured, detail: m.detail, consistent };
    checks.push(check);
    options.onCheck?.(check);
  }
  return { platform: process.platform, arch: process.arch, backend: support.backend, checks, ok: checks.every((c) => c.consistent) };
}

/** The report as a table for people. */
export function formatSelfTest(r: SelfTestReport): string {
  const rows = r.checks.map((c) => [c.check, c.claimed ? (c.claimed.enforced ? `enforced (${c.claimed.mechanism})` : 'not enforced') : '-', c.measured, c.consistent ? 'ok' : 'MISMATCH', c.detail]);
  const head = ['limit', 'claimed', 'measured', '', 'evidence'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (i < 4 ? row[i].length : 0))));
  const line = (cells: string[]) => cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c)).join('  ');
  return [`spawn-isolated self-test: ${r.platform}-${r.arch}, ${r.backend}`, line(head), ...rows.map(line), r.ok ? 'every claim matches what was measured' : 'SOME CLAIMS DO NOT MATCH WHAT WAS MEASURED'].join('\n');
}
