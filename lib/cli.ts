#!/usr/bin/env node
/**
 * The `spawn-isolated` command: `spawn-isolated [limits] [--json] [--dry-run] -- FILE [ARGS...]`.
 * @packageDocumentation
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { formatSelfTest, isolationSupport, IsolationOptions, selfTest, spawnIsolated } from './index';
import { normalizeOptions } from './options';
import { resolveExecutable } from './resolve';
import { signalNumber } from './signals';
import { formatBytes } from './units';

/** Exit codes of the command (besides the worker's own code, and 128 + signal number). */
export const EXIT = {
  usage: 2,
  notEnforced: 120,
  memory: 121,
  cpuTime: 122,
  handles: 123,
  threads: 119,
  timeout: 124,
  startFailed: 125,
  notExecutable: 126,
  notFound: 127,
} as const;

const USAGE = `usage: spawn-isolated [limits] [--json] [--quiet] [--dry-run] [--] FILE [ARGS...]
       spawn-isolated --self-test [--json]

The first argument that is not an option is FILE; everything after it is the worker's.

Runs FILE under hard limits, with stdio passed straight through, and exits with its exit code.

limits:
  --memory SIZE          memory of the whole tree (512MiB, 2GiB, 500MB)
  --memory-process SIZE  memory (commit / data) of each process
  --cpu, --cpus CORES    cores for the whole tree, fractional allowed (0.5)
  --cpu-time DURATION    CPU time of each process (30s, 1m30s)
  --affinity LIST        logical CPUs, comma-separated (0,1)
  --processes N          processes alive at once, the worker included (1: no children)
  --threads N            tasks (threads of every process) alive at once (default: processes x 64)
  --handles N            open handles (Windows) / fds (POSIX) per process
  --privileges LEVEL     restricted (default), low or inherit
  --timeout DURATION     wall-clock limit (then SIGTERM, and SIGKILL after --kill-after)
  --kill-after DURATION  how long the worker has to end after SIGTERM (default 5s), as timeout -k
  --uid N, --gid N       POSIX: run as this user / group
  --user NAME            POSIX: run as this user, with its groups and login environment (runuser -l)
  --session console|ID   Windows: run in that session as its user (a LocalSystem service only)
  --best-effort          run even where a limit cannot be enforced
  --no-kill-on-close     let the tree outlive this command
  --no-go                do not set GOMAXPROCS / GOMEMLIMIT from the limits
process:
  --cwd DIR              working directory
  --env NAME=VALUE       set a variable (repeatable)
  --inherit-env          start from this environment (default)
  --clear-env            start from an empty environment
output:
  --json                 the closing summary (stderr) as JSON
  -q, --quiet            no closing summary
  --dry-run              print what would be applied and how this host enforces it; start nothing
  --self-test            run the bundled probe under each limit and report, per limit, what this
                         host claims and what was measured (exit 1 when they differ)
  -h, --help             this text
  -V, --version          the version

exit codes: the worker's own code; 128 + N when signal N ended it; ${EXIT.memory} memory limit;
${EXIT.cpuTime} CPU-time limit; ${EXIT.threads} thread limit; ${EXIT.handles} handle limit; ${EXIT.timeout} timeout; ${EXIT.notEnforced} a limit this host cannot
enforce (strict mode); ${EXIT.notFound} FILE not found; ${EXIT.notExecutable} FILE not executable; ${EXIT.startFailed} other failure to start;
${EXIT.usage} bad usage.
`;

class UsageError extends Error {}

const FLAG_OF: [RegExp, string][] = [
  [/options\.memory\.process/, '--memory-process'],
  [/options\.memory(\.total)?/, '--memory'],
  [/options\.cpu\.time/, '--cpu-time'],
  [/options\.cpu\.affinity/, '--affinity'],
  [/options\.cpu(\.cores)?/, '--cpu'],
  [/options\.processes/, '--processes'],
  [/options\.threads/, '--threads'],
  [/options\.handles/, '--handles'],
  [/options\.privileges/, '--privileges'],
  [/options\.timeout/, '--timeout'],
  [/options\.forceKillAfter/, '--kill-after'],
  [/options\.cwd/, '--cwd'],
  [/options\.env/, '--env'],
  [/options\.uid/, '--uid'],
  [/options\.user/, '--user'],
  [/options\.session/, '--session'],
  [/options\.gid/, '--gid'],
];

function number(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(v.trim())) throw new UsageError(`${flag}: expected a number, got '${v}'`);
  return Number(v);
}

interface Parsed {
  file: string;
  args: string[];
  options: IsolationOptions;
  json: boolean;
  quiet: boolean;
  dryRun: boolean;
}

function version(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(path.join(__dirname, '..', '..', 'package.json')) as { version: string }).version;
}

const OPTIONS = {
  memory: { type: 'string' },
  'memory-process': { type: 'string' },
  cpu: { type: 'string' },
  cpus: { type: 'string' },
  'cpu-time': { type: 'string' },
  affinity: { type: 'string' },
  processes: { type: 'string' },
  threads: { type: 'string' },
  handles: { type: 'string' },
  privileges: { type: 'string' },
  timeout: { type: 'string' },
  'kill-after': { type: 'string' },
  cwd: { type: 'string' },
  env: { type: 'string', multiple: true },
  'inherit-env': { type: 'boolean' },
  'clear-env': { type: 'boolean' },
  uid: { type: 'string' },
  gid: { type: 'string' },
  user: { type: 'string' },
  session: { type: 'string' },
  'best-effort': { type: 'boolean' },
  'no-kill-on-close': { type: 'boolean' },
  'no-go': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/**
 * This command's own arguments, and FILE with its arguments: everything from the first
 * argument that is not an option (or after `--`) belongs to the worker, as with prlimit and
 * firejail, so `spawn-isolated --memory 100M ls -la` passes `-la` to ls.
 */
function splitCommand(argv: string[]): { own: string[]; command: string[] } {
  const valued = new Set(Object.entries(OPTIONS).filter(([, o]) => o.type === 'string').map(([k]) => `--${k}`));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return { own: argv.slice(0, i), command: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { own: argv.slice(0, i), command: argv.slice(i) };
    if (valued.has(a)) i++; // its value, which may itself start with '-'
  }
  return { own: argv, command: [] };
}

/** Parses the command line; throws UsageError with a one-line message. */
export function parseCommandLine(argv: string[]): Parsed | 'help' | 'version' {
  const { own, command } = splitCommand(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: false,
      strict: true,
      options: OPTIONS,
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  if (command.length === 0) throw new UsageError('no FILE to run (spawn-isolated [limits] -- FILE [ARGS...])');
  if (v['inherit-env'] && v['clear-env']) throw new UsageError('--inherit-env and --clear-env exclude each other');

  // With --user / --session the worker starts from that user's environment (as runuser -l):
  // only --env values (and --inherit-env) go on top.
  const asOther = v.user !== undefined || (v.session !== undefined && v.session !== 'current');
  const env: Record<string, string> = v['clear-env'] || (asOther && !v['inherit-env']) ? {} : { ...(process.env as Record<string, string>) };
  for (const kv of v.env ?? []) {
    const eq = kv.indexOf('=', 1);
    if (eq < 1) throw new UsageError(`--env: expected NAME=VALUE, got '${kv}'`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const options: IsolationOptions = { stdio: 'inherit' };
  if (!asOther || Object.keys(env).length > 0) options.env = env;
  if (v.user !== undefined) options.user = v.user;
  if (v.session !== undefined) options.session = /^\d+$/.test(v.session) ? Number(v.session) : (v.session as IsolationOptions['session']);
  if (v.memory !== undefined || v['memory-process'] !== undefined) {
    options.memory = { ...(v.memory !== undefined ? { total: v.memory } : {}), ...(v['memory-process'] !== undefined ? { process: v['memory-process'] } : {}) };
  }
  if (v.cpu !== undefined && v.cpus !== undefined) throw new UsageError('--cpu and --cpus are the same flag: give one');
  const cores = number(v.cpus !== undefined ? '--cpus' : '--cpu', v.cpu ?? v.cpus);
  if (cores !== undefined || v['cpu-time'] !== undefined || v.affinity !== undefined) {
    options.cpu = {};
    if (cores !== undefined) options.cpu.cores = cores;
    if (v['cpu-time'] !== undefined) options.cpu.time = v['cpu-time'];
    if (v.affinity !== undefined) {
      options.cpu.affinity = v.affinity.split(',').map((s) => {
        const n = number('--affinity', s);
        return n as number;
      });
    }
  }
  if (v.processes !== undefined) options.processes = number('--processes', v.processes);
  if (v.threads !== undefined) options.threads = number('--threads', v.threads);
  if (v.handles !== undefined) options.handles = number('--handles', v.handles);
  if (v.privileges !== undefined) options.privileges = v.privileges as IsolationOptions['privileges'];
  if (v.timeout !== undefined) options.timeout = v.timeout;
  if (v['kill-after'] !== undefined) options.forceKillAfter = v['kill-after'];
  if (v.cwd !== undefined) options.cwd = v.cwd;
  if (v.uid !== undefined) options.uid = number('--uid', v.uid);
  if (v.gid !== undefined) options.gid = number('--gid', v.gid);
  if (v['best-effort']) options.enforcement = 'best-effort';
  if (v['no-kill-on-close']) options.killOnClose = false;
  if (v['no-go']) options.go = false;
  // The library's own validation, reported against the flag.
  try {
    normalizeOptions(command[0], command.slice(1), options);
  } catch (e) {
    const msg = (e as Error).message;
    const flag = FLAG_OF.find(([re]) => re.test(msg))?.[1];
    throw new UsageError(flag ? `${flag}: ${msg}` : msg);
  }
  return { file: command[0], args: command.slice(1), options, json: !!v.json, quiet: !!v.quiet, dryRun: !!v['dry-run'] };
}

function requestedLimits(o: IsolationOptions): string[] {
  const n = normalizeOptions('x', [], o).limits;
  const out: string[] = [];
  if (n.memoryTotal) out.push('memory.total');
  if (n.memoryProcess) out.push('memory.process');
  if (n.cpuCores) out.push('cpu.cores');
  if (n.cpuTimeMs) out.push('cpu.time');
  if (n.affinity) out.push('cpu.affinity');
  if (n.processes) out.push('processes');
  if (n.threads) out.push('threads');
  if (n.handles) out.push('handles');
  if (o.privileges !== undefined && o.privileges !== 'inherit') out.push('privileges');
  return out;
}

function dryRun(p: Parsed, out: (s: string) => void): number {
  const support = isolationSupport();
  const limits = requestedLimits(p.options);
  const strict = p.options.enforcement !== 'best-effort';
  const refused = limits.filter((l) => !support.limits[l as keyof typeof support.limits].enforced);
  if (p.json) {
    out(JSON.stringify({
      file: p.file, args: p.args, backend: support.backend, strict,
      limits: Object.fromEntries(limits.map((l) => [l, support.limits[l as keyof typeof support.limits]])),
      wouldRun: !strict || refused.length === 0,
    }) + '\n');
  } else {
    out(`would run: ${[p.file, ...p.args].join(' ')}\nbackend: ${support.backend}, ${strict ? 'strict' : 'best-effort'}\n`);
    for (const l of limits) {
      const s = support.limits[l as keyof typeof support.limits];
      out(`  ${l.padEnd(15)} ${s.enforced ? `enforced by ${s.mechanism}` : `NOT enforced: ${s.reason}`}\n`);
    }
    if (limits.length === 0) out('  (no limits requested)\n');
    if (strict && refused.length > 0) out(`strict mode would refuse: ${refused.join(', ')}\n`);
  }
  return strict && refused.length > 0 ? EXIT.notEnforced : 0;
}

/** `--self-test [--json]`: every limit tried on this host; exit 1 when a claim is not what was measured. */
async function runSelfTest(rest: string[], io: Io): Promise<number> {
  const unknown = rest.filter((a) => a !== '--json');
  if (unknown.length) {
    io.err(`spawn-isolated: --self-test takes only --json (got ${unknown.join(' ')})\n`);
    return EXIT.usage;
  }
  const json = rest.includes('--json');
  try {
    // Progress only on a terminal, on one line that the next overwrites and that is cleared at the
    // end: the report (stdout) is the one record of the checks, not printed a second time.
    const live = io.errIsTTY === true;
    const report = await selfTest(live ? { onCheck: (c) => io.err(`\r\x1b[Kself-test: ${c.check}: ${c.measured}${c.consistent ? '' : ' (claimed otherwise)'}`) } : {});
    if (live) io.err('\r\x1b[K');
    io.out(json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSelfTest(report)}\n`);
    return report.ok ? 0 : 1;
  } catch (e) {
    io.err(`spawn-isolated: ${(e as Error).message}\n`);
    return EXIT.startFailed;
  }
}

/**
 * Windows: what the command does with a signal it gets while its worker runs (`existed`: the
 * worker existed when the signal came). A worker sharing this console (`'ctrl-break'`) is in a
 * process group of its own, where Ctrl+C is disabled but Ctrl+Break is not: a Ctrl+C (SIGINT)
 * never reaches it, so it is asked to stop (CTRL_BREAK_EVENT, then its tree ended after
 * --kill-after); a Ctrl+Break from the keyboard (SIGBREAK) reaches every process of the console,
 * the worker included, so it is not sent a second one ('wait': only --kill-after runs), unless
 * the worker did not exist yet. Other workers ('channel', 'none') are asked to stop in their way.
 */
export function windowsSignalAction(sig: NodeJS.Signals, gracefulStop: string, existed: boolean): 'stop' | 'wait' {
  if (gracefulStop === 'ctrl-break' && sig === 'SIGBREAK' && existed) return 'wait';
  return 'stop';
}

/** Where the command writes: stdout, stderr, and whether stderr is a terminal. */
export interface Io {
  out: (s: string) => void;
  err: (s: string | Uint8Array) => void;
  errIsTTY?: boolean;
}

/** Runs the command; resolves with the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  if (argv[0] === '--self-test') return runSelfTest(argv.slice(1), io);
  let p: Parsed;
  try {
    const r = parseCommandLine(argv);
    if (r === 'help') {
      io.out(USAGE);
      return 0;
    }
    if (r === 'version') {
      io.out(`${version()}\n`);
      return 0;
    }
    p = r;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`spawn-isolated: ${e.message}\n`);
    return EXIT.usage;
  }
  if (p.dryRun) {
    const found = resolveExecutable(p.file, (p.options.env ?? process.env) as Record<string, string>, p.options.cwd as string | undefined);
    if ('error' in found) {
      io.err(`spawn-isolated: ${found.error.message}\n`);
      return found.error.code === 'EACCES' ? EXIT.notExecutable : EXIT.notFound;
    }
    return dryRun(p, io.out);
  }

  // The worker's stderr is relayed when a summary follows it and it is no terminal: then the
  // summary starts on a line of its own even after a partial last line of the worker's.
  const relay = !p.quiet && !process.stderr.isTTY;
  if (relay) p.options.stdio = ['inherit', 'inherit', 'pipe'];
  let endsWithNewline = true;
  // Signals are forwarded from before the spawn: one that comes while it starts is delivered
  // once it has, not left to end this command with the worker running on.
  let child: ReturnType<typeof spawnIsolated> | undefined;
  const early: NodeJS.Signals[] = [];
  let forceTimer: NodeJS.Timeout | undefined;
  const graceMs = normalizeOptions(p.file, p.args, p.options).forceKillAfterMs;
  const handle = (c: NonNullable<typeof child>, sig: NodeJS.Signals, existed: boolean) => {
    if (process.platform !== 'win32') {
      c.kill(sig);
      return;
    }
    const action = windowsSignalAction(sig, c.gracefulStop, existed);
    if (action === 'stop') void c.stop({ signal: sig });
    else if (graceMs !== undefined && !forceTimer) forceTimer = setTimeout(() => c.kill('SIGKILL'), graceMs).unref();
  };
  const forward = (sig: NodeJS.Signals) => {
    if (!child) early.push(sig);
    else handle(child, sig, true);
  };
  const signals: NodeJS.Signals[] = process.platform === 'win32' ? ['SIGINT', 'SIGBREAK' as NodeJS.Signals] : ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, forward);
  const t0 = Date.now();
  child = spawnIsolated(p.file, p.args, p.options);
  // As it would have been on arrival (Windows: asked to stop, not its tree ended): the worker did
  // not exist then, so a Ctrl+Break from the keyboard did not reach it.
  for (const sig of early) handle(child, sig, false);
  const closed = new Promise((r) => child.once('close', r));
  child.stderr?.on('data', (d: Buffer) => {
    if (d.length > 0) endsWithNewline = d[d.length - 1] === 0x0a;
    io.err(d);
  });
  let failure: (Error & { code?: string }) | undefined;
  child.on('error', (e: Error & { code?: string }) => {
    failure ??= e;
  });
  const summary = await child.exited.then(
    (e) => e,
    () => undefined,
  );
  if (summary) await closed; // everything the worker wrote is relayed before the summary
  for (const s of signals) process.removeListener(s, forward);
  if (forceTimer) clearTimeout(forceTimer);
  const wallMs = Date.now() - t0;
  if (!endsWithNewline && !p.quiet) io.err('\n');
  if (!summary) {
    const code = failure?.code === 'ENOENT' ? EXIT.notFound : failure?.code === 'EACCES' ? EXIT.notExecutable : failure?.code === 'ERR_LIMIT_NOT_ENFORCED' ? EXIT.notEnforced : EXIT.startFailed;
    if (p.json) io.err(JSON.stringify({ file: p.file, error: failure?.code, message: failure?.message, exitCode: code }) + '\n');
    else io.err(`spawn-isolated: ${failure?.message ?? 'the worker could not start'}\n`);
    return code;
  }
  let exitCode: number;
  switch (summary.reason) {
    case 'memory': exitCode = EXIT.memory; break;
    case 'cpu-time': exitCode = EXIT.cpuTime; break;
    case 'handles': exitCode = EXIT.handles; break;
    case 'threads': exitCode = EXIT.threads; break;
    case 'timeout': exitCode = EXIT.timeout; break;
    default: exitCode = summary.code ?? 128 + signalNumber(summary.signal);
  }
  const cpuMs = Math.round(summary.stats.cpuUserMs + summary.stats.cpuKernelMs);
  if (p.quiet) return exitCode;
  if (p.json) {
    io.err(JSON.stringify({
      file: p.file, reason: summary.reason, code: summary.code, signal: summary.signal, exitCode,
      peakMemory: summary.stats.peakMemory, cpuUserMs: summary.stats.cpuUserMs, cpuKernelMs: summary.stats.cpuKernelMs,
      wallMs, enforcement: child.enforcement,
    }) + '\n');
  } else {
    const how = summary.code !== null ? `code ${summary.code}` : `signal ${summary.signal}`;
    io.err(`spawn-isolated: ${path.basename(p.file)} ended (${summary.reason}, ${how}): peak ${formatBytes(summary.stats.peakMemory)}, cpu ${cpuMs} ms, wall ${wallMs} ms\n`);
  }
  return exitCode;
}

if (require.main === module) {
  main(process.argv.slice(2), { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), errIsTTY: process.stderr.isTTY === true }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: Error) => {
      process.stderr.write(`spawn-isolated: ${e.message}\n`);
      process.exitCode = EXIT.startFailed;
    },
  );
}
