import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isWindows, root, worker } from './helpers';

// Both build systems must produce a working addon. Under Wine the whole suite already runs on
// the cmake-js (MinGW) prebuild; natively each build is loaded in a fresh Node process.
(isWindows && process.env.SPAWN_ISOLATED_WINE === '1' ? describe.skip : describe)('builds', () => {
  const builds: [string, string][] = [
    ['node-gyp (binding.gyp)', path.join(root, 'build', 'Release', 'spawn_isolated.node')],
    ['cmake-js (CMakeLists.txt)', path.join(root, 'build-cmake', 'Release', 'spawn_isolated.node')],
  ];
  for (const [name, file] of builds) {
    it(`the ${name} addon loads and launches a worker`, function () {
      if (!fs.existsSync(file)) {
        if (process.env.CI) throw new Error(`${file} was not built`);
        this.test!.title += ' [skipped: not built here; npm run test:host builds both]';
        this.skip();
      }
      const script = `
        const { spawnIsolated, isolationSupport } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
        const s = isolationSupport();
        const p = spawnIsolated(${JSON.stringify(worker())}, ['argv', 'ok'], { enforcement: 'best-effort' });
        let out = '';
        p.on('error', () => {});
        if (p.stdout) p.stdout.on('data', (d) => out += d);
        p.on('close', () => p.exited.then((e) => console.log(JSON.stringify({ backend: s.backend, code: e.code, out }))));
        p.exited.catch((e) => console.log(JSON.stringify({ backend: s.backend, error: e.code })));`;
      const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, SPAWN_ISOLATED_ADDON: file }, encoding: 'utf8' });
      const r = JSON.parse(out);
      assert.notEqual(r.backend, 'none', out);
      if (r.error) assert.equal(r.error, 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', out);
      else assert.deepEqual([r.code, JSON.parse(r.out)], [0, ['ok']]);
    });
  }
});
