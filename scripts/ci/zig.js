// The compiler of the Linux prebuild: zig's clang (PyPI's ziglang wheel, pinned), which links
// against the glibc version it is told (here 2.28) whatever the build machine runs, and brings
// its own C++ runtime (libc++, linked statically). So the prebuild made on Ubuntu 24.04 or
// Debian 12 loads on glibc 2.28 without an old build container; glibc-baseline.js checks it.
// The wheel goes into .cache/ziglang-<version> with pip --target (no virtualenv, and allowed
// on a system Python that PEP 668 marks as externally managed). $ZIG names another zig.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const ZIG_VERSION = '0.15.2';
const GLIBC_TARGET = '2.28';
const ARCH = { x64: 'x86_64', arm64: 'aarch64' };

/** The zig executable, installed from PyPI on first use. */
function zig() {
  if (process.env.ZIG) return process.env.ZIG;
  const dir = path.join(root, '.cache', `ziglang-${ZIG_VERSION}`);
  const exe = path.join(dir, 'ziglang', process.platform === 'win32' ? 'zig.exe' : 'zig');
  if (fs.existsSync(exe)) return exe;
  const python = ['python3', 'python'].find((p) => {
    try {
      execFileSync(p, ['-m', 'pip', '--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (!python) throw new Error('the Linux prebuild is compiled with zig from PyPI (ziglang), which needs Python 3 with pip (Debian/Ubuntu: apt-get install python3-pip); or set ZIG to a zig executable');
  console.log(`zig: pip install --target ${path.relative(root, dir)} ziglang==${ZIG_VERSION}`);
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-compile', '--target', dir, `ziglang==${ZIG_VERSION}`], { stdio: 'inherit' });
  if (!fs.existsSync(exe)) throw new Error(`ziglang==${ZIG_VERSION} did not install ${exe}`);
  return exe;
}

/** zig's target triple for this machine's arch against the glibc baseline. */
function target(arch = process.arch) {
  if (!ARCH[arch]) throw new Error(`no zig target for ${arch}`);
  return `${ARCH[arch]}-linux-gnu.${GLIBC_TARGET}`;
}

/**
 * Environment for node-gyp's make build to compile and link the addon with zig. Only the
 * *_target variables: $CC stays the host's, so that build-init.js builds the freestanding
 * init (no libc at all) with the compiler and flags it was written for.
 */
function zigEnv(arch = process.arch) {
  const z = zig();
  if (/\s/.test(z)) throw new Error(`zig's path has a space, which make cannot take: ${z}`);
  const t = target(arch);
  return {
    CC_target: `${z} cc -target ${t}`,
    CXX_target: `${z} c++ -target ${t}`,
    LINK_target: `${z} c++ -target ${t}`,
    ZIG_GLOBAL_CACHE_DIR: path.join(root, '.cache', 'zig-cache'),
    ZIG_LOCAL_CACHE_DIR: path.join(root, '.cache', 'zig-cache'),
  };
}

module.exports = { zig, zigEnv, target, ZIG_VERSION, GLIBC_TARGET };

if (require.main === module) console.log(`${zig()} (${execFileSync(zig(), ['version'], { encoding: 'utf8' }).trim()}), target ${target()}`);
