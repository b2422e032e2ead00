import * as path from 'node:path';

/** What the native addon returns from spawn(). */
export interface NativeSpawnResult {
  id: number;
  pid: number;
  pipes: (string | number | null)[];
  inherited: number[];
  enforcement: { limit: string; mechanism: string; enforced: boolean; reason?: string }[];
}

export interface NativeStats {
  cpuUserMs: number;
  cpuKernelMs: number;
  peakMemory: number;
  processes: { active: number; total: number };
}

export type NativeEvent =
  | { type: 'exit'; id: number; exitCode: number; signal: number; terminated: boolean; reason: string; stats: NativeStats }
  | { type: 'limit'; id: number; limit: string; pid: number; value: number };

export interface NativeProbe {
  backend: string;
  spawn: boolean;
  spawnReason?: string;
  limits: NativeSpawnResult['enforcement'];
}

export interface NativeBinding {
  init(handler: (ev: NativeEvent) => void): void;
  spawn(req: object): NativeSpawnResult;
  resume(id: number): void;
  kill(id: number, reason: string, signal: number): boolean;
  stats(id: number): NativeStats;
  release(id: number): void;
  probe(): NativeProbe;
  createGroup(req: object): { id: number; enforcement: NativeSpawnResult['enforcement'] };
  groupStats(id: number): NativeStats;
  releaseGroup(id: number): void;
}

let binding: NativeBinding | undefined;
let loadError: Error | undefined;

/** The package root (dist/lib/.. /..). */
export const packageRoot = path.resolve(__dirname, '..', '..');

/**
 * Loads the addon once per JS environment: `SPAWN_ISOLATED_ADDON` names a .node file to use
 * (for testing a particular build); otherwise node-gyp-build finds build/Release or prebuilds/.
 */
export function loadBinding(): NativeBinding | Error {
  if (binding) return binding;
  if (loadError) return loadError;
  try {
    const override = process.env.SPAWN_ISOLATED_ADDON;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = (override ? require(path.resolve(override)) : require('node-gyp-build')(packageRoot)) as NativeBinding;
    return binding;
  } catch (e) {
    loadError = e as Error;
    return loadError;
  }
}
