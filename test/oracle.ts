// The oracle for this platform: the same small surface on Windows and Linux.
import { isWindows } from './helpers';

export interface ProcessRef {
  readonly pid: number;
  alive(): boolean;
  waitExit(ms: number): boolean;
  close(): void;
}

/* eslint-disable @typescript-eslint/no-require-imports */
export function openProcess(pid: number): ProcessRef {
  return isWindows ? new (require('./oracle-win').ProcessRef)(pid) : new (require('./oracle-linux').ProcessRef)(pid);
}

/** The host pid of the grandchild a `tree` worker started. */
export function grandchildPid(workerPid: number, reported: number): number {
  if (isWindows) return reported;
  const kids = (require('./oracle-linux') as typeof import('./oracle-linux')).childrenOf(workerPid);
  if (kids.length !== 1) throw new Error(`expected one child of ${workerPid}, found ${kids.join(',')}`);
  return kids[0];
}
