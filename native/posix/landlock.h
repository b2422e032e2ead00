// Landlock (Linux 5.13+, unprivileged): confines a worker that shares the launcher's identity
// (a non-root launcher) or runs at 'low', so that it writes only beneath its private temp
// directory and a few character devices, cannot ptrace (read /proc/PID/environ, mem, fd of)
// any process outside its own domain, and (ABI 6+) cannot signal one.
// The child half (ApplyInChild) makes only system calls: it runs between clone and exec.
#pragma once

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace si {
namespace posix {
namespace landlock {

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

constexpr uint64_t kWriteFile = 1ull << 1;
constexpr uint64_t kRemoveDir = 1ull << 4, kRemoveFile = 1ull << 5, kMakeChar = 1ull << 6, kMakeDir = 1ull << 7, kMakeReg = 1ull << 8,
                   kMakeSock = 1ull << 9, kMakeFifo = 1ull << 10, kMakeBlock = 1ull << 11, kMakeSym = 1ull << 12;
constexpr uint64_t kRefer = 1ull << 13;                                       // ABI 2
constexpr uint64_t kTruncate = 1ull << 14;                                    // ABI 3
constexpr uint64_t kIoctlDev = 1ull << 15;                                    // ABI 5
constexpr uint64_t kScopeAbstractUnix = 1ull << 0, kScopeSignal = 1ull << 1;  // ABI 6

struct RulesetAttr {
  uint64_t handledFs;
  uint64_t handledNet;
  uint64_t scoped;
};
struct PathBeneath {
  uint64_t allowed;
  int32_t parentFd;
} __attribute__((packed));

// The ABI version this kernel offers, 0 when Landlock is missing or disabled.
inline int Abi() {
  long v = syscall(__NR_landlock_create_ruleset, nullptr, 0, 1u /* LANDLOCK_CREATE_RULESET_VERSION */);
  return v < 0 ? 0 : static_cast<int>(v);
}

// Every right that modifies the file system, at this ABI.
inline uint64_t WriteRights(int abi) {
  uint64_t r = kWriteFile | kRemoveDir | kRemoveFile | kMakeChar | kMakeDir | kMakeReg | kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) r |= kRefer;
  if (abi >= 3) r |= kTruncate;
  return r;
}
// The rights that apply to a file (not a directory) among those.
inline uint64_t FileWriteRights(int abi) { return kWriteFile | (abi >= 3 ? kTruncate : 0); }

// Devices a worker may write (its stdio may be any of them).
constexpr const char* kWritableDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"};

// Its own tmpfs file systems (child.cc), when it has them: nobody else's files are there.
constexpr const char* kPrivateDirs[] = {"/tmp", "/var/tmp", "/dev/shm"};

// In the child: restrict this process (and what it execs) to writing beneath `dir`, the
// devices above and (privateTmp) its own tmpfs mounts. No-new-privs must be set already.
// Returns 0 or an errno.
inline int ApplyInChild(int abi, const char* dir, bool privateTmp) {
  RulesetAttr attr = {WriteRights(abi), 0, abi >= 6 ? (kScopeSignal | kScopeAbstractUnix) : 0};
  int rs = static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0));
  if (rs < 0) return errno;
  auto allow = [&](const char* path, uint64_t rights) -> int {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ENXIO ? 0 : errno;
    PathBeneath pb = {rights, fd};
    long r = syscall(__NR_landlock_add_rule, rs, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &pb, 0);
    int err = r < 0 ? errno : 0;
    close(fd);
    return err;
  };
  int err = dir != nullptr ? allow(dir, WriteRights(abi)) : 0;
  if (privateTmp)
    for (const char* d : kPrivateDirs)
      if (err == 0) err = allow(d, WriteRights(abi));
  for (const char* dev : kWritableDevices)
    if (err == 0) err = allow(dev, FileWriteRights(abi));
  if (err == 0 && syscall(__NR_landlock_restrict_self, rs, 0) != 0) err = errno;
  close(rs);
  return err;
}

}  // namespace landlock
}  // namespace posix
}  // namespace si
