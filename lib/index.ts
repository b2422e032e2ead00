/**
 * spawn-isolated: launch worker processes under hard, kernel-enforced limits.
 * @packageDocumentation
 */
export type {
  CpuLimit,
  EnforcementMode,
  FilesystemAccess,
  InheritHandle,
  IsolationOptions,
  MemoryLimit,
  PrivilegeLevel,
  StdioEntry,
  StdioOption,
} from './options';
export type { ExitReason, GracefulStop, IsolatedExit, IsolatedProcessEvents, IsolationStats, LimitEnforcement, LimitEvent, LimitName, StopOptions } from './process';
export type { ByteSize, Duration } from './units';
export type { NodeStyleError } from './errors';
export { channels, IsolatedProcess } from './process';
export { createIsolationGroup, isolationSupport, spawnIsolated } from './spawn';
export type { IsolationSupport } from './spawn';
export { execIsolated } from './exec';
export type { ExecBufferOptions, ExecIsolatedError, ExecIsolatedOptions, ExecIsolatedResult, ExecOwnOptions, ExecSpawnOptions, ExecTextOptions } from './exec';
export { formatSelfTest, selfTest } from './selftest';
export type { SelfTestCheck, SelfTestOptions, SelfTestOutcome, SelfTestReport } from './selftest';
export { IsolationGroup } from './group';
export type { GroupLimits, GroupLimitEvent, IsolationGroupEvents } from './group';
export { parseByteSize, parseDuration } from './units';
