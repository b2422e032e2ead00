import { getSystemErrorMap, inspect } from 'node:util';

/** An Error with Node's `code` convention. */
export interface NodeStyleError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  spawnargs?: string[];
  /** For `ERR_LIMIT_NOT_ENFORCED`: the limit this host cannot enforce. */
  limit?: string;
  /** Windows: the Win32 error the `code` was mapped from. */
  win32Error?: number;
}

let errnoByName: Map<string, number> | undefined;

/**
 * Node's convention for a system error: `errno` is libuv's (negative) number for `code` on
 * this platform (`ENOENT` is -2 on Linux, -4058 on Windows), as child_process reports it. The
 * OS's own number, where it differs (a Win32 error), moves to `win32Error`.
 */
export function nodeErrno(err: NodeStyleError): void {
  if (!errnoByName) {
    errnoByName = new Map();
    for (const [n, [name]] of getSystemErrorMap()) errnoByName.set(name, n);
  }
  const uv = errnoByName.get(err.code);
  if (uv === undefined) {
    // A code libuv has no name for (ENOEXEC in Node 20): Node's convention on POSIX, where
    // libuv's codes are the negated errno, so that exitCode is -errno as for any failed start.
    if (process.platform !== 'win32' && typeof err.errno === 'number' && err.errno > 0) err.errno = -err.errno;
    return;
  }
  if (process.platform === 'win32' && typeof err.errno === 'number' && err.errno > 0) err.win32Error = err.errno;
  err.errno = uv;
}

function withCode<E extends Error>(err: E, code: string): E & { code: string } {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return err as E & { code: string };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor?.name;
    return ctor ? `an instance of ${ctor}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

/** `TypeError [ERR_INVALID_ARG_TYPE]`, worded as Node words it. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError & { code: string } {
  const kind = name.includes('.') || name.includes('[') ? 'property' : 'argument';
  return withCode(new TypeError(`The "${name}" ${kind} must be ${expected}. Received ${describe(actual)}`), 'ERR_INVALID_ARG_TYPE');
}

/** `TypeError [ERR_INVALID_ARG_VALUE]`. */
export function invalidArgValue(name: string, value: unknown, reason: string): TypeError & { code: string } {
  const kind = name.includes('.') || name.includes('[') ? 'property' : 'argument';
  return withCode(
    new TypeError(`The ${kind} '${name}' ${reason}. Received ${inspect(value, { depth: 0, breakLength: Infinity })}`),
    'ERR_INVALID_ARG_VALUE',
  );
}

/** `RangeError [ERR_OUT_OF_RANGE]`. */
export function outOfRange(name: string, range: string, value: unknown): RangeError & { code: string } {
  return withCode(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value, { breakLength: Infinity })}`),
    'ERR_OUT_OF_RANGE',
  );
}

export function codedError(code: string, message: string, props: Partial<NodeStyleError> = {}): NodeStyleError {
  const err = withCode(new Error(message), code) as NodeStyleError;
  Object.assign(err, props);
  return err;
}

/** Node's AbortError (`code: 'ABORT_ERR'`). */
export function abortError(cause: unknown): NodeStyleError {
  const err = codedError('ABORT_ERR', 'The operation was aborted');
  err.name = 'AbortError';
  if (cause !== undefined) (err as Error & { cause?: unknown }).cause = cause;
  return err;
}
