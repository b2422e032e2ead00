import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { pathToFileURL } from 'node:url';
import { isolationSupport, parseByteSize, parseDuration, spawnIsolated } from '../lib';
import { goEnvironment } from '../lib/environment';
import { normalizeOptions } from '../lib/options';
import { collect, json, worker } from './helpers';

function throwsCode(fn: () => unknown, code: string, name: string | RegExp, ctor: ErrorConstructor = TypeError): void {
  assert.throws(fn, (err: Error & { code?: string }) => {
    assert.ok(err instanceof ctor, `expected ${ctor.name}, got ${err.constructor.name}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    if (typeof name === 'string') assert.ok(err.message.includes(name), `message should name ${name}: ${err.message}`);
    else assert.match(err.message, name);
    return true;
  });
}

describe('option validation (every platform)', () => {
  const w = worker();

  it('with several bad options, the first checked is the error (cwd before the temp dir; a variable\'s name before its value)', () => {
    throwsCode(() => normalizeOptions(w, [], { cwd: 5, keepTempDir: true }), 'ERR_INVALID_ARG_TYPE', 'options.cwd');
    throwsCode(() => normalizeOptions(w, [], { stdio: 'bogus', profile: 'private' }), 'ERR_INVALID_ARG_VALUE', 'stdio');
    // A value whose conversion throws is never converted when its name is refused.
    throwsCode(() => normalizeOptions(w, [], { env: { 'A=B': Object.create(null) } }), 'ERR_INVALID_ARG_VALUE', 'options.env.A=B');
    throwsCode(() => normalizeOptions(w, [], { env: { 'A\u0000B': 'x' } }), 'ERR_INVALID_ARG_VALUE', /null bytes/);
    throwsCode(() => normalizeOptions(w, [], { env: { A: 'x\u0000y' } }), 'ERR_INVALID_ARG_VALUE', /options\.env\.A.*null bytes/);
    throwsCode(() => normalizeOptions(w, [], { env: { '': 'x' } }), 'ERR_INVALID_ARG_VALUE', "without '='");
  });

  it('parses byte sizes in binary and decimal units', () => {
    assert.equal(parseByteSize(1234, 'x'), 1234);
    assert.equal(parseByteSize('512MiB', 'x'), 512 * 1024 * 1024);
    assert.equal(parseByteSize('2GiB', 'x'), 2 * 1024 ** 3);
    assert.equal(parseByteSize('500MB', 'x'), 500_000_000);
    assert.equal(parseByteSize('64k', 'x'), 65536);
    assert.equal(parseByteSize('1.5 GiB', 'x'), 1.5 * 1024 ** 3);
    throwsCode(() => parseByteSize('12 parsecs', 'options.memory'), 'ERR_INVALID_ARG_VALUE', 'options.memory');
    throwsCode(() => parseByteSize(0, 'options.memory'), 'ERR_OUT_OF_RANGE', 'options.memory', RangeError);
    throwsCode(() => parseByteSize(-5, 'options.memory'), 'ERR_OUT_OF_RANGE', 'options.memory', RangeError);
    throwsCode(() => parseByteSize(1.5, 'options.memory'), 'ERR_OUT_OF_RANGE', 'options.memory', RangeError);
  });

  it('parses durations', () => {
    assert.equal(parseDuration(250, 'x'), 250);
    assert.equal(parseDuration('30s', 'x'), 30_000);
    assert.equal(parseDuration('1m30s', 'x'), 90_000);
    assert.equal(parseDuration('250ms', 'x'), 250);
    assert.equal(parseDuration('2h', 'x'), 7_200_000);
    throwsCode(() => parseDuration('soon', 'options.timeout'), 'ERR_INVALID_ARG_VALUE', 'options.timeout');
    throwsCode(() => parseDuration('10', 'options.timeout'), 'ERR_INVALID_ARG_VALUE', 'options.timeout');
    throwsCode(() => parseDuration(0, 'options.timeout'), 'ERR_OUT_OF_RANGE', 'options.timeout', RangeError);
  });

  const bad: [string, () => unknown, string, string, ErrorConstructor?][] = [
    ['file not a string', () => spawnIsolated(42 as unknown as string), 'ERR_INVALID_ARG_TYPE', '"file"'],
    ['empty file', () => spawnIsolated(''), 'ERR_INVALID_ARG_VALUE', 'file'],
    ['NUL in file', () => spawnIsolated('a\u0000b'), 'ERR_INVALID_ARG_VALUE', 'file'],
    ['args not an array', () => spawnIsolated(w, 'x' as unknown as string[]), 'ERR_INVALID_ARG_TYPE', 'args'],
    ['Symbol arg (no string form)', () => spawnIsolated(w, ['a', Symbol('x') as unknown as string]), 'ERR_INVALID_ARG_TYPE', 'args[1]'],
    ['NUL in arg', () => spawnIsolated(w, ['a\u0000']), 'ERR_INVALID_ARG_VALUE', 'args[0]'],
    ['unknown option', () => spawnIsolated(w, [], { memroy: '1GiB' } as never), 'ERR_INVALID_ARG_VALUE', 'options.memroy'],
    ['unknown memory key', () => spawnIsolated(w, [], { memory: { totl: 5 } } as never), 'ERR_INVALID_ARG_VALUE', 'options.memory.totl'],
    ['memory wrong type', () => spawnIsolated(w, [], { memory: true } as never), 'ERR_INVALID_ARG_TYPE', 'options.memory'],
    ['memory.process bad', () => spawnIsolated(w, [], { memory: { process: 'lots' } }), 'ERR_INVALID_ARG_VALUE', 'options.memory.process'],
    ['memory zero', () => spawnIsolated(w, [], { memory: 0 }), 'ERR_OUT_OF_RANGE', 'options.memory', RangeError],
    ['cpu negative', () => spawnIsolated(w, [], { cpu: -1 }), 'ERR_OUT_OF_RANGE', 'options.cpu', RangeError],
    ['cpu NaN', () => spawnIsolated(w, [], { cpu: NaN }), 'ERR_OUT_OF_RANGE', 'options.cpu', RangeError],
    ['cpu.cores string', () => spawnIsolated(w, [], { cpu: { cores: '2' as never } }), 'ERR_INVALID_ARG_TYPE', 'options.cpu.cores'],
    ['cpu.time bad', () => spawnIsolated(w, [], { cpu: { time: 'forever' } }), 'ERR_INVALID_ARG_VALUE', 'options.cpu.time'],
    ['cpu.affinity empty', () => spawnIsolated(w, [], { cpu: { affinity: [] } }), 'ERR_INVALID_ARG_VALUE', 'options.cpu.affinity'],
    ['cpu.affinity dup', () => spawnIsolated(w, [], { cpu: { affinity: [0, 0] } }), 'ERR_INVALID_ARG_VALUE', 'options.cpu.affinity'],
    ['cpu.affinity float', () => spawnIsolated(w, [], { cpu: { affinity: [0.5] } }), 'ERR_OUT_OF_RANGE', 'options.cpu.affinity[0]', RangeError],
    ['processes zero', () => spawnIsolated(w, [], { processes: 0 }), 'ERR_OUT_OF_RANGE', 'options.processes', RangeError],
    ['processes string', () => spawnIsolated(w, [], { processes: '1' as never }), 'ERR_INVALID_ARG_TYPE', 'options.processes'],
    ['handles fraction', () => spawnIsolated(w, [], { handles: 10.5 }), 'ERR_OUT_OF_RANGE', 'options.handles', RangeError],
    ['inheritHandles not array', () => spawnIsolated(w, [], { inheritHandles: 3 as never }), 'ERR_INVALID_ARG_TYPE', 'options.inheritHandles'],
    ['inheritHandles bad entry', () => spawnIsolated(w, [], { inheritHandles: ['3' as never] }), 'ERR_INVALID_ARG_TYPE', 'options.inheritHandles[0]'],
    ['inheritHandles negative fd', () => spawnIsolated(w, [], { inheritHandles: [-1] }), 'ERR_OUT_OF_RANGE', 'options.inheritHandles[0]', RangeError],
    ['privileges unknown', () => spawnIsolated(w, [], { privileges: 'root' as never }), 'ERR_INVALID_ARG_VALUE', 'options.privileges'],
    ['enforcement unknown', () => spawnIsolated(w, [], { enforcement: 'lax' as never }), 'ERR_INVALID_ARG_VALUE', 'options.enforcement'],
    ['killOnClose not bool', () => spawnIsolated(w, [], { killOnClose: 1 as never }), 'ERR_INVALID_ARG_TYPE', 'options.killOnClose'],
    ['go not bool', () => spawnIsolated(w, [], { go: 'yes' as never }), 'ERR_INVALID_ARG_TYPE', 'options.go'],
    ['timeout bad', () => spawnIsolated(w, [], { timeout: 'whenever' }), 'ERR_OUT_OF_RANGE', 'options.timeout', RangeError],
    ['signal not a signal', () => spawnIsolated(w, [], { signal: {} as never }), 'ERR_INVALID_ARG_TYPE', 'options.signal'],
    ['stdio bad string', () => spawnIsolated(w, [], { stdio: 'pipes' as never }), 'ERR_INVALID_ARG_VALUE', 'options.stdio[0]'],
    ['stdio too long', () => spawnIsolated(w, [], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] }), 'ERR_INVALID_ARG_VALUE', 'options.stdio'],
    ['cwd wrong type', () => spawnIsolated(w, [], { cwd: 5 as never }), 'ERR_INVALID_ARG_TYPE', 'options.cwd'],
    ['cwd with NUL', () => spawnIsolated(w, [], { cwd: 'a\u0000' }), 'ERR_INVALID_ARG_VALUE', 'options.cwd'],
    ['env value with NUL', () => spawnIsolated(w, [], { env: { A: 'x\u0000y' } }), 'ERR_INVALID_ARG_VALUE', 'options.env.A'],
    ['env name with =', () => spawnIsolated(w, [], { env: { 'A=B': 'x' } }), 'ERR_INVALID_ARG_VALUE', 'options.env.A=B'],
    ['env not an object', () => spawnIsolated(w, [], { env: 'PATH=/' as never }), 'ERR_INVALID_ARG_TYPE', 'options.env'],
    ['options not an object', () => spawnIsolated(w, [], 'fast' as never), 'ERR_INVALID_ARG_TYPE', 'options'],
    ['killSignal unknown', () => spawnIsolated(w, [], { killSignal: 'SIGNOPE' as never }), 'ERR_UNKNOWN_SIGNAL', 'SIGNOPE', Error],
  ];
  for (const [title, fn, code, name, ctor] of bad) {
    it(`throws ${code} synchronously: ${title}`, () => throwsCode(fn, code, name, ctor ?? (code === 'ERR_OUT_OF_RANGE' ? RangeError : TypeError)));
  }

  it('accepts the two call shapes and a file: URL cwd', () => {
    const a = normalizeOptions(w, [], { cwd: pathToFileURL(process.cwd()) });
    assert.equal(a.cwd, process.cwd());
    const b = normalizeOptions(w, ['x'], { memory: { process: '1GiB', total: '2GiB' }, cpu: { cores: 1.5, time: '10s', affinity: [1, 0] } });
    assert.deepEqual({ ...b.limits }, { memoryProcess: 2 ** 30, memoryTotal: 2 ** 31, cpuCores: 1.5, cpuTimeMs: 10_000, affinity: [0, 1] });
    assert.equal(b.strict, true);
    assert.equal(b.privileges, 'restricted');
    assert.equal(b.privilegesExplicit, false);
    assert.deepEqual(b.stdio, ['pipe', 'pipe', 'pipe']);
    assert.deepEqual(normalizeOptions(w, [], { stdio: ['ignore'] }).stdio, ['ignore', 'pipe', 'pipe']);
  });

  it('derives GOMAXPROCS and GOMEMLIMIT, and the caller’s values win', () => {
    const n = normalizeOptions(w, [], { env: {}, cpu: 0.5, memory: { process: '100MiB', total: '1GiB' } });
    const env = goEnvironment(n);
    assert.equal(env.GOMAXPROCS, '1');
    assert.equal(env.GOMEMLIMIT, String(Math.floor(100 * 1024 * 1024 * 0.9)));
    assert.equal(goEnvironment(normalizeOptions(w, [], { env: {}, cpu: 2.2 })).GOMAXPROCS, '3');
    assert.equal(goEnvironment(normalizeOptions(w, [], { env: {}, cpu: { cores: 4, affinity: [0, 1] } })).GOMAXPROCS, '2');
    const mine = goEnvironment(normalizeOptions(w, [], { env: { GOMAXPROCS: '7', GOMEMLIMIT: '5MiB' }, cpu: 1, memory: '1GiB' }));
    assert.equal(mine.GOMAXPROCS, '7');
    assert.equal(mine.GOMEMLIMIT, '5MiB');
    const off = goEnvironment(normalizeOptions(w, [], { env: {}, cpu: 1, memory: '1GiB', go: false }));
    assert.equal(off.GOMAXPROCS, undefined);
    assert.equal(off.GOMEMLIMIT, undefined);
  });

  it('isolationSupport() reports every limit with a mechanism, and a reason when not enforced', () => {
    const s = isolationSupport();
    assert.equal(s.platform, process.platform);
    for (const name of ['memory.process', 'memory.total', 'cpu.cores', 'cpu.time', 'cpu.affinity', 'processes', 'handles', 'privileges', 'killOnClose', 'inheritHandles'] as const) {
      const l = s.limits[name];
      assert.equal(typeof l.enforced, 'boolean', name);
      assert.equal(typeof l.mechanism, 'string', name);
      if (!l.enforced) assert.ok(l.reason && l.reason.length > 10, `${name} needs a reason`);
    }
  });

  it('a missing executable is an ENOENT error event and a rejected exited, not a throw', async () => {
    const p = spawnIsolated('definitely-not-a-program-xyz', ['a'], { enforcement: 'best-effort' });
    const err = await new Promise<Error & { code?: string; path?: string; spawnargs?: string[]; syscall?: string }>((resolve) => p.on('error', resolve));
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.path, 'definitely-not-a-program-xyz');
    assert.deepEqual(err.spawnargs, ['a']);
    assert.equal(err.syscall, 'spawn definitely-not-a-program-xyz');
    await assert.rejects(p.exited, { code: 'ENOENT' });
    assert.equal(p.pid, undefined);
  });

  it('gaps that used to surface as an async error are synchronous, naming the right entry', () => {
    // A hole is converted as child_process converts it (to 'undefined'), not skipped.
    // eslint-disable-next-line no-sparse-arrays
    assert.deepEqual(normalizeOptions('w', ['a', , 'b'], {}, 'linux').args, ['a', 'undefined', 'b']);
    // eslint-disable-next-line no-sparse-arrays
    throwsCode(() => normalizeOptions('w', [], { inheritHandles: [3, , 4] }, 'linux'), 'ERR_INVALID_ARG_TYPE', /inheritHandles\[1\]/);
    throwsCode(() => normalizeOptions('w', [], { cpu: { time: 1.5 } }, 'linux'), 'ERR_OUT_OF_RANGE', /options\.cpu\.time/, RangeError);
    throwsCode(() => normalizeOptions('w', [], { cpu: { affinity: [os.cpus().length] } }, 'linux'), 'ERR_OUT_OF_RANGE', /options\.cpu\.affinity\[0\]/, RangeError);
    throwsCode(() => normalizeOptions('w', [], { processes: 2 ** 23 }, 'linux'), 'ERR_OUT_OF_RANGE', /options\.processes/, RangeError);
    throwsCode(() => normalizeOptions('w', [], { inheritHandles: Array.from({ length: 62 }, (_, i) => i + 3) }, 'linux'), 'ERR_OUT_OF_RANGE', /options\.inheritHandles/, RangeError);
    if (process.platform === 'linux') {
      const nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8'));
      throwsCode(() => normalizeOptions('w', [], { handles: nrOpen + 1 }, 'linux'), 'ERR_OUT_OF_RANGE', /options\.handles/, RangeError);
    }
    const env = Object.create(null) as Record<string, string>;
    env.A = '1';
    assert.deepEqual({ ...normalizeOptions('w', [], { env }, 'linux').env }, { A: '1' });
  });

  it('a byte size with a long blank run is parsed (or refused) in linear time', () => {
    const t0 = Date.now();
    assert.throws(() => parseByteSize('1' + ' '.repeat(80_000) + '!', 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.equal(parseByteSize('  64 MiB  ', 'x'), 64 * 2 ** 20);
    // Quadratic parsing of 80,000 blanks takes many seconds; linear, a few ms (room for a busy machine).
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });
});

describe('the worker environment (every platform)', () => {
  const w = worker();
  it("is process.env's own variables (or options.env's), never what a polluted Object.prototype adds", async () => {
    const proto = Object.prototype as Record<string, unknown>;
    const own = `SI_OWN_${process.pid}`;
    const evil = `SI_POLLUTED_${process.pid}`;
    process.env[own] = 'mine';
    proto[evil] = 'injected';
    try {
      for (const options of [{}, { env: { ...process.env } }]) {
        const env = normalizeOptions(w, [], options).env;
        assert.equal(env[own], 'mine', `${Object.keys(options)}: its own variable`);
        assert.equal(Object.prototype.hasOwnProperty.call(env, evil), false, `${Object.keys(options)}: the polluted one`);
      }
      // An object's inherited variables (not Object.prototype's) are passed, as by child_process.
      const inherited = normalizeOptions(w, [], { env: Object.create({ FROM_PARENT: 'p' }) as Record<string, string> }).env;
      assert.equal(inherited.FROM_PARENT, 'p');
      // And the worker's own view.
      const c = await collect(spawnIsolated(w, ['env'], { stdio: ['ignore', 'pipe', 'pipe'] }));
      const vars = json<string[]>(c);
      assert.ok(vars.includes(`${own}=mine`), 'the worker gets its own variable');
      assert.ok(!vars.some((v) => v.startsWith(`${evil}=`)), 'and not the polluted one');
    } finally {
      delete process.env[own];
      delete proto[evil];
    }
  });
});
