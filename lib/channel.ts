// The JSON channel's framing (`channel: 'json'`): one JSON value per line each way, bounded so
// that a hostile worker can neither stall nor crash its launcher through it. Every step is
// linear in the bytes received: a chunk is scanned once for '\n' and kept as it came; a line is
// joined once, when its end arrives; its nesting is checked by one scan before JSON.parse.
import { codedError, NodeStyleError } from './errors';

/**
 * The default of `options.maxMessageSize`: 1 MiB. JSON.parse of a message of many small values
 * costs about 0.1-0.25 s per MiB of event-loop time and several times its size in memory (a
 * 16 MiB array of numbers held the loop 1.5-4 s): a bigger bound is the caller's choice.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;
/** Bytes of messages parsed in one turn of the event loop before the channel yields. */
export const PARSE_SLICE_BYTES = 1024 * 1024;
/** The largest `options.maxMessageSize`: 256 MiB (a line becomes one string; V8's are below 512 MiB). */
export const MAX_MAX_MESSAGE_SIZE = 256 * 1024 * 1024;
/** The deepest nesting of arrays and objects a message from the worker may have. */
export const MAX_MESSAGE_DEPTH = 1000;

const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * True when the JSON text in `buf` nests arrays and objects deeper than `maxDepth`: one pass
 * counting `[` and `{` (and their ends) outside strings. UTF-8 continuation bytes are >= 0x80,
 * so they are never taken for ASCII punctuation. Invalid JSON is JSON.parse's to refuse.
 */
export function nestedDeeperThan(buf: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/**
 * Splits a byte stream into lines of at most `maxLine` bytes (the '\n' not counted), in time
 * linear in the bytes pushed. A line's chunks are kept as they came and joined once, at its end.
 * Past `maxLine` without a '\n', `onOverflow` is called once, with the bytes seen so far, and
 * everything is dropped from then on.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private failed = false;

  constructor(
    private readonly maxLine: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onOverflow: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (!this.failed) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      const size = this.size + (end - start);
      if (size > this.maxLine) {
        this.fail(size);
        return;
      }
      if (nl === -1) {
        if (end > start) {
          this.parts.push(start === 0 ? chunk : chunk.subarray(start));
          this.size = size;
        }
        return;
      }
      let line: Buffer;
      if (this.parts.length === 0) line = chunk.subarray(start, nl);
      else {
        this.parts.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.parts, size);
        this.parts = [];
      }
      this.size = 0;
      start = nl + 1;
      this.onLine(line);
    }
  }

  /** Stops: what is buffered is released, and nothing more is taken. */
  close(): void {
    this.failed = true;
    this.parts = [];
    this.size = 0;
  }

  private fail(bytes: number): void {
    this.close();
    this.onOverflow(bytes);
  }
}

/** The channel error a worker's message past the bounds is reported with. */
export function messageTooLarge(bytes: number, max: number): NodeStyleError {
  return codedError(
    'ERR_CHANNEL_MESSAGE_TOO_LARGE',
    `The worker sent a channel message of more than ${max} bytes (options.maxMessageSize) without ending it: ${bytes} bytes so far. The channel is closed.`,
  );
}

export function messageTooDeep(max: number): NodeStyleError {
  return codedError('ERR_CHANNEL_MESSAGE_TOO_DEEP', `The worker sent a channel message nested deeper than ${max} levels. The channel is closed.`);
}

function sendTooLarge(received: string, max: number): RangeError & { code: string } {
  const err = new RangeError(
    `The value of "message" is out of range. Its JSON must be at most ${max} bytes (options.maxMessageSize). Received ${received}`,
  ) as RangeError & { code: string };
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

/** `message` as one line of JSON (without its '\n'); throws synchronously when it cannot be sent. */
export function encodeMessage(message: unknown, max: number): string {
  const line = JSON.stringify(message);
  if (line === undefined) throw codedError('ERR_INVALID_ARG_TYPE', 'The "message" argument cannot be serialized as JSON');
  // UTF-8 takes at least one byte per UTF-16 unit: only a line that might pass is measured.
  if (line.length > max) throw sendTooLarge(`${line.length} bytes or more`, max);
  if (line.length * 3 > max) {
    const bytes = Buffer.byteLength(line);
    if (bytes > max) throw sendTooLarge(`${bytes} bytes`, max);
  }
  return line;
}
