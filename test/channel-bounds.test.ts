// channel: 'json' is bounded: a hostile worker can neither stall nor crash its launcher through
// it. The framing (lib/channel.ts) directly, then real Go workers (the test worker's `chan`
// mode) flooding, nesting and sending messages at the bound.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { isolationSupport, IsolatedProcess, spawnIsolated } from '../lib';
import { DEFAULT_MAX_MESSAGE_SIZE, LineSplitter, MAX_MESSAGE_DEPTH, nestedDeeperThan } from '../lib/channel';
import { NodeStyleError } from '../lib/errors';
import { normalizeOptions } from '../lib/options';
import { worker } from './helpers';

const MiB = 1024 * 1024;

describe('channel framing (lib/channel.ts)', () => {
  function split(chunks: string[], max: number): { lines: string[]; overflow?: number } {
    const r: { lines: string[]; overflow?: number } = { lines: [] };
    const s = new LineSplitter(max, (l) => r.lines.push(l.toString()), (n) => (r.overflow = n));
    for (const c of chunks) s.push(Buffer.from(c));
    return r;
  }

  it('splits lines across and within chunks; a line of exactly the bound passes, one byte more does not', () => {
    assert.deepEqual(split(['ab', 'c\nde', '\n\nf\ng'], 10), { lines: ['abc', 'de', '', 'f'] });
    assert.deepEqual(split(['0123456789\n'], 10), { lines: ['0123456789'] });
    assert.deepEqual(split(['01234', '56789\n'], 10), { lines: ['0123456789'] });
    assert.deepEqual(split(['01234', '567890'], 10), { lines: [], overflow: 11 });
    assert.deepEqual(split(['ok\n0123456789x\nnever\n'], 10), { lines: ['ok'], overflow: 11 });
  });

  it('is linear: 64 MiB without a newline, in 64 KiB chunks, overflows once, quickly, holding no more than the bound', () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let overflows = 0;
    const s = new LineSplitter(64 * MiB + 1, () => assert.fail('no line'), () => overflows++);
    const t0 = performance.now();
    for (let i = 0; i < 1024; i++) s.push(chunk);
    const ms = performance.now() - t0;
    assert.equal(overflows, 0);
    // The old framing re-scanned (and re-joined) everything buffered per chunk: 26.6 s here.
    assert.ok(ms < 1000, `${ms.toFixed(0)} ms for 1024 chunks`);
    s.push(Buffer.from('xx'));
    assert.equal(overflows, 1);
    s.push(Buffer.from('\n'));
    assert.equal(overflows, 1);
  });

  it('nesting: counts [ and { outside strings only, escapes included; refuses past the bound in one pass', () => {
    const deep = (d: number) => Buffer.from('['.repeat(d) + ']'.repeat(d));
    assert.equal(nestedDeeperThan(deep(MAX_MESSAGE_DEPTH), MAX_MESSAGE_DEPTH), false);
    assert.equal(nestedDeeperThan(deep(MAX_MESSAGE_DEPTH + 1), MAX_MESSAGE_DEPTH), true);
    assert.equal(nestedDeeperThan(Buffer.from(JSON.stringify({ s: '[{'.repeat(5000) })), 10), false);
    assert.equal(nestedDeeperThan(Buffer.from(JSON.stringify(['\\', '"[[[', '\\"{{{'])), 1), false);
    assert.equal(nestedDeeperThan(Buffer.from('[{"a":[{"b":"]}]}"}]}]'), 4), false);
    assert.equal(nestedDeeperThan(Buffer.from('[{"a":[{"b":[]}]}]'), 4), true);
    assert.equal(nestedDeeperThan(Buffer.from(JSON.stringify({ 'é☃': ['ü'] })), 2), false);
    const t0 = performance.now();
    assert.equal(nestedDeeperThan(deep(200_000), MAX_MESSAGE_DEPTH), true);
    assert.ok(performance.now() - t0 < 200);
  });
});

describe('options.maxMessageSize (every platform)', () => {
  const expectThrow = (options: object, code: string, ctor: ErrorConstructor) =>
    assert.throws(() => spawnIsolated(worker(), [], options as never), (e: NodeStyleError) => {
      assert.ok(e instanceof ctor, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.code, code, e.message);
      assert.match(e.message, /options\.maxMessageSize/);
      return true;
    });

  it('is validated synchronously, naming the option', () => {
    expectThrow({ channel: 'json', maxMessageSize: true }, 'ERR_INVALID_ARG_TYPE', TypeError);
    expectThrow({ channel: 'json', maxMessageSize: 'lots' }, 'ERR_INVALID_ARG_VALUE', TypeError);
    expectThrow({ channel: 'json', maxMessageSize: 0 }, 'ERR_OUT_OF_RANGE', RangeError);
    expectThrow({ channel: 'json', maxMessageSize: 1.5 }, 'ERR_OUT_OF_RANGE', RangeError);
    expectThrow({ channel: 'json', maxMessageSize: '257MiB' }, 'ERR_OUT_OF_RANGE', RangeError);
    expectThrow({ channel: true, maxMessageSize: '1MiB' }, 'ERR_INVALID_ARG_VALUE', TypeError);
    expectThrow({ maxMessageSize: '1MiB' }, 'ERR_INVALID_ARG_VALUE', TypeError);
  });

  it('takes a byte size; the default is 1 MiB', () => {
    assert.equal(normalizeOptions('w', [], { channel: 'json' }).maxMessageSize, MiB);
    assert.equal(normalizeOptions('w', [], { channel: 'json', maxMessageSize: '64KiB' }).maxMessageSize, 64 * 1024);
    assert.equal(normalizeOptions('w', [], { channel: 'json', maxMessageSize: '256MiB' }).maxMessageSize, 256 * MiB);
    assert.equal(normalizeOptions('w', [], { channel: 'json', maxMessageSize: 1 }).maxMessageSize, 1);
  });
});

/** How late the event loop ran (a 1 ms interval's longest gap) and the peak RSS, while it runs. */
class LoopMeter {
  maxGapMs = 0;
  readonly rssBefore = process.memoryUsage.rss();
  peakRss = this.rssBefore;
  private last = performance.now();
  private readonly timer = setInterval(() => {
    const now = performance.now();
    this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
    this.last = now;
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
  }, 1);

  stop(): { maxGapMs: number; rssGrowthMiB: number } {
    clearInterval(this.timer);
    return { maxGapMs: Math.round(this.maxGapMs), rssGrowthMiB: Math.round((this.peakRss - this.rssBefore) / MiB) };
  }
}

/**
 * The worker read the end of its channel: EOF, or a reset when we closed our end with its later
 * lines unread (a Unix socket reports that as ECONNRESET).
 */
const CHANNEL_END = /^EOF$|connection reset/;

interface ChanResult {
  wrote: number;
  got: number[];
  end: string;
  writeError?: string;
}

/** The test worker's `chan` mode with `ops`; its report, its exit, messages and channel errors. */
function chan(ops: string[], options: { maxMessageSize?: string | number; onMessage?: (m: unknown, p: IsolatedProcess) => void } = {}) {
  const p = spawnIsolated(worker(), ['chan', ...ops], {
    enforcement: 'best-effort',
    memory: '256MiB',
    channel: 'json',
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
  });
  const messages: unknown[] = [];
  const errors: NodeStyleError[] = [];
  const t0 = performance.now();
  let errorAfterMs: number | undefined;
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d));
  p.on('message', (m) => {
    messages.push(m);
    options.onMessage?.(m, p);
  });
  p.on('error', (e) => {
    errorAfterMs ??= performance.now() - t0;
    errors.push(e);
  });
  const done = (async () => {
    const exit = await p.exited;
    await new Promise((r) => (p.stdout!.readableEnded ? r(null) : p.stdout!.once('end', r)));
    let report: ChanResult;
    try {
      report = JSON.parse(out) as ChanResult;
    } catch {
      throw new Error(`the worker printed ${JSON.stringify(out.slice(0, 300))} (exit ${JSON.stringify(exit)})`);
    }
    return { exit, report, messages, errors, errorAfterMs };
  })();
  return { p, done };
}

(isolationSupport().spawn ? describe : describe.skip)('channel bounds, with a hostile Go worker', function () {
  this.timeout(60_000);
  const FLOOD = 64 * MiB;

  it(`64 MiB without a newline: the channel errors and closes at the bound (${DEFAULT_MAX_MESSAGE_SIZE / MiB} MiB) within seconds; the loop stays responsive and RSS bounded (against a control of 64 MiB in lines)`, async () => {
    // The hostile worker first (nothing of the control's garbage in its RSS).
    const floodMeter = new LoopMeter();
    const flood = await chan(['flood', String(FLOOD)]).done;
    const floodLoop = floodMeter.stop();
    // The control: the same bytes as 1024 lines of 64 KiB, every one a message; the worker ends
    // when we close our end after the last.
    const controlMeter = new LoopMeter();
    const { p, done } = chan(['lines', String(FLOOD), String(64 * 1024), 'send', '{"last":true}'], {
      onMessage: (m, proc) => {
        if ((m as { last?: boolean }).last) proc.channel!.end();
      },
    });
    const control = await done;
    const controlLoop = controlMeter.stop();
    const measured = `flood: error after ${flood.errorAfterMs?.toFixed(0)} ms, loop gap ${floodLoop.maxGapMs} ms, RSS +${floodLoop.rssGrowthMiB} MiB; control: loop gap ${controlLoop.maxGapMs} ms, RSS +${controlLoop.rssGrowthMiB} MiB`;
    console.log(`      ${measured}`);

    assert.equal(control.messages.length, 1025, measured);
    assert.equal(control.errors.length, 0);
    assert.equal(p.channel!.destroyed, true);

    assert.deepEqual(flood.errors.map((e) => e.code), ['ERR_CHANNEL_MESSAGE_TOO_LARGE'], measured);
    assert.match(flood.errors[0].message, /options\.maxMessageSize/);
    assert.equal(flood.messages.length, 0);
    // It was closed at the bound: the worker's writes failed there, and it read the end.
    assert.ok(flood.report.writeError, `the worker wrote all of it: ${JSON.stringify(flood.report)}`);
    assert.ok(flood.report.wrote < DEFAULT_MAX_MESSAGE_SIZE + 8 * MiB, `the worker wrote ${flood.report.wrote} bytes`);
    assert.match(flood.report.end, CHANNEL_END);
    assert.equal(flood.exit.code, 0);
    // Margins for a shared 2-core machine with another process keeping one core busy: the old
    // framing took 26.6 s and 370 MiB here.
    assert.ok(flood.errorAfterMs! < 5000, measured);
    assert.ok(floodLoop.maxGapMs < Math.max(250, 2 * controlLoop.maxGapMs), measured);
    assert.ok(floodLoop.rssGrowthMiB < DEFAULT_MAX_MESSAGE_SIZE / MiB + 32, measured);
  });

  it('a smaller maxMessageSize: a flood is cut at it', async () => {
    const meter = new LoopMeter();
    const r = await chan(['flood', String(FLOOD)], { maxMessageSize: '1MiB' }).done;
    const loop = meter.stop();
    assert.deepEqual(r.errors.map((e) => e.code), ['ERR_CHANNEL_MESSAGE_TOO_LARGE']);
    assert.ok(r.report.wrote < 9 * MiB, `the worker wrote ${r.report.wrote} bytes`);
    assert.ok(loop.rssGrowthMiB < 1 + 32, `RSS +${loop.rssGrowthMiB} MiB`);
  });

  it('a 200,000-deep array is refused (an error, the channel closed) and never reaches a listener; 1000 levels pass', async () => {
    let stringified = 0;
    const deep = await chan(['deep', '200000', 'send', '{"after":1}'], {
      onMessage: (m) => {
        JSON.stringify(m); // what overflowed the launcher's stack with the unbounded channel
        stringified++;
      },
    }).done;
    assert.deepEqual(deep.errors.map((e) => e.code), ['ERR_CHANNEL_MESSAGE_TOO_DEEP']);
    assert.equal(stringified, 0, 'nothing after the refused message is read either');
    assert.match(deep.report.end, CHANNEL_END);

    const ok = await chan(['deep', String(MAX_MESSAGE_DEPTH), 'send', '{"after":1}'], {
      onMessage: (m, p) => {
        JSON.stringify(m);
        if ((m as { after?: number }).after) p.channel!.end();
      },
    }).done;
    assert.equal(ok.errors.length, 0);
    assert.equal(ok.messages.length, 2);
    let depth = 0;
    for (let v = ok.messages[0]; Array.isArray(v); v = v[0]) depth++;
    assert.equal(depth, MAX_MESSAGE_DEPTH);
  });

  it("with nobody listening for 'error', a hostile worker's deep and endless messages do not end the launcher", () => {
    const script = `
      const { spawnIsolated } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib'))});
      const run = (ops) => {
        const p = spawnIsolated(${JSON.stringify(worker())}, ['chan', ...ops], { enforcement: 'best-effort', channel: 'json' });
        p.on('message', (m) => JSON.stringify(m));
        return p.exited;
      };
      Promise.all([run(['deep', '200000']), run(['flood', String(${FLOOD})])]).then((e) => console.log('alive', e.map((x) => x.code).join(',')));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'alive 0,0');
  });

  it('messages at the bound pass both ways (the default 1 MiB, and a set 4 MiB); one byte more is refused each way', async () => {
    for (const [max, option] of [[DEFAULT_MAX_MESSAGE_SIZE, undefined], [4 * MiB, '4MiB']] as const) {
      // The worker sends a message of exactly the bound; we send two back (ASCII, and two-byte
      // UTF-8), and try one byte too many of each; the worker answers each line with its size.
      const refused: NodeStyleError[] = [];
      let replies = 0;
      const r = await chan(['size', String(max)], {
        maxMessageSize: option,
        onMessage: (m, p) => {
          const msg = m as { s?: string; got?: number };
          if (msg.s !== undefined) {
            assert.equal(msg.s.length, max - 8);
            for (const s of ['y'.repeat(max - 8), 'é'.repeat((max - 8) / 2)]) {
              p.send({ s });
              try {
                p.send({ s: `${s}z` });
              } catch (e) {
                refused.push(e as NodeStyleError);
              }
            }
          } else if (++replies === 2) p.channel!.end();
        },
      }).done;
      assert.equal(refused.length, 2, `send() past the bound (${max}) was not refused`);
      for (const e of refused) {
        assert.ok(e instanceof RangeError);
        assert.equal(e.code, 'ERR_OUT_OF_RANGE');
        assert.match(e.message, /options\.maxMessageSize/);
      }
      assert.equal(r.errors.length, 0);
      assert.deepEqual(r.report.got, [max, max], `max ${max}`);
      assert.deepEqual(r.messages.slice(1), [{ got: max }, { got: max }]);
    }

    // From the worker, one byte past a set bound.
    const over = await chan(['size', String(MiB + 1)], { maxMessageSize: MiB }).done;
    assert.deepEqual(over.errors.map((e) => e.code), ['ERR_CHANNEL_MESSAGE_TOO_LARGE']);
    assert.equal(over.messages.length, 0);
  });
});
