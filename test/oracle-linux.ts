// An independent oracle on Linux: pidfds through koffi (libc directly, not the addon), and /proc.
import * as fs from 'node:fs';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require('koffi');

const libc = koffi.load('libc.so.6');
const pidfdOpen = libc.func('int pidfd_open(int pid, unsigned int flags)');
koffi.struct('pollfd', { fd: 'int', events: 'short', revents: 'short' });
const pollFn = libc.func('int poll(_Inout_ pollfd *fds, unsigned long n, int timeout)');
const closeFn = libc.func('int close(int fd)');

/** A pidfd held by the test: it names this process even if its pid is reused. */
export class ProcessRef {
  private readonly fd: number;
  constructor(readonly pid: number) {
    this.fd = pidfdOpen(pid, 0);
    if (this.fd < 0) throw new Error(`pidfd_open(${pid}) failed: the process is not there`);
  }
  private ready(ms: number): boolean {
    const deadline = Date.now() + ms;
    for (;;) {
      const pfd = { fd: this.fd, events: 1 /* POLLIN */, revents: 0 };
      const n = pollFn(pfd, 1, Math.max(0, deadline - Date.now()));
      if (n > 0) return (pfd.revents & 1) !== 0;
      if (n === 0 || Date.now() >= deadline) return false;
      // n < 0: EINTR (a SIGCHLD of this test's own children): wait again for the rest
    }
  }
  alive(): boolean {
    return !this.ready(0);
  }
  /** Waits for the exit itself (a pidfd becomes readable then): an event, not a poll loop. */
  waitExit(ms: number): boolean {
    return this.ready(ms);
  }
  close(): void {
    closeFn(this.fd);
  }
}

/** The host pids of `pid`'s children (what the worker reports are PID-namespace pids). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (s) out.push(...s.split(/\s+/).map(Number));
  }
  return out;
}
