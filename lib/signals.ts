// Signal names and numbers of this platform (os.constants.signals).
import { constants as osConstants } from 'node:os';
import { codedError, invalidArgType } from './errors';

const SIGNALS = osConstants.signals as Record<string, number>;

/** A signal's number on this platform (0 for none or unknown). */
export function signalNumber(sig: string | null): number {
  return sig !== null && Object.prototype.hasOwnProperty.call(SIGNALS, sig) ? SIGNALS[sig] : 0;
}

/** The name of a signal number on this platform, or null. */
export function signalFromNumber(num: number): NodeJS.Signals | null {
  for (const [k, n] of Object.entries(SIGNALS)) if (n === num) return k as NodeJS.Signals;
  return null;
}

/** Resolves a signal name or number to a name known on this platform. */
export function signalName(v: unknown, name: string): NodeJS.Signals {
  if (typeof v === 'string' && signalNumber(v) !== 0) return v as NodeJS.Signals;
  const fromNumber = typeof v === 'number' ? signalFromNumber(v) : null;
  if (fromNumber !== null) return fromNumber;
  if (typeof v !== 'string' && typeof v !== 'number') throw invalidArgType(name, 'of type string or number', v);
  throw codedError('ERR_UNKNOWN_SIGNAL', `Unknown signal: ${String(v)}`);
}
