// Landlock (Linux 5.13+, unprivileged): confines a worker that shares the launcher's identity
// (a non-root launcher) or runs at 'low', so that it writes only beneath its private temp
// directory, its private /tmp and a few character devices, cannot ptrace (read
// /proc/PID/environ, mem, fd of) any process outside its own domain, and (ABI 6+) cannot
// signal one; with options.filesystem, it also reads only what the caller listed.
// The child half (ApplyInChild) makes only system calls: it runs between clone and exec.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
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

// Rights to read: run a file, read a file, list a directory.
constexpr uint64_t kExecute = 1ull << 0, kReadFile = 1ull << 2, kReadDir = 1ull << 3;
constexpr uint64_t kReadRights = kExecute | kReadFile | kReadDir;
// The rights Landlock accepts on a rule for a file (not a directory).
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

// Devices a worker may write (its stdio may be any of them).
constexpr const char* kWritableDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"};

// Its own tmpfs file systems (child.cc), when it has them: nobody else's files are there. Every
// place a Debian / Ubuntu / RHEL host leaves world-writable (sticky) for everyone.
constexpr const char* kPrivateDirs[] = {"/tmp", "/var/tmp", "/dev/shm", "/run/lock"};

// One path and what may be done beneath it (made by the parent; the child only opens it).
// `hold`: the child keeps the path open (close-on-exec) until its exec, so that the exec finds
// the very inode the rule names: on a file system whose inodes do not outlive their last open
// (9p without a cache, as a VM's shared folder) a later lookup makes a new inode, and a rule on
// the worker's own executable would then refuse its exec.
// `fd`: the path opened (O_PATH) by the parent, which keeps it; the child uses it instead of
// looking the path up (-1: it opens `path` itself).
struct Rule {
  const char* path;
  uint64_t rights;
  bool hold;
  int fd;
};

// In the child, in its final mount namespace and before any rlimit: a ruleset allowing
// `handled` rights only where the rules say (a rule on a file keeps only file rights); with
// `scoped`, (ABI 6+) no signals or abstract Unix sockets outside its domain. A rule's path that
// does not exist is skipped; a rule with `hold` stays open until the exec. Its fd goes to *rs, numbered at least `minFd` (above the fds the
// worker's stdio will take). Returns 0 or an errno.
inline int BuildRuleset(int abi, uint64_t handled, bool scoped, const Rule* rules, int nrules, int minFd, int* rs) {
  RulesetAttr attr = {handled, 0, scoped && abi >= 6 ? (kScopeSignal | kScopeAbstractUnix) : 0};
  int fd = static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0));
  if (fd < 0) return errno;
  int err = 0;
  for (int i = 0; i < nrules && err == 0; i++) {
    bool own = rules[i].fd < 0;
    int pfd = own ? open(rules[i].path, O_PATH | O_CLOEXEC) : rules[i].fd;
    if (pfd < 0) {
      if (errno != ENOENT && errno != ENXIO && errno != ENOTDIR) err = errno;
      continue;
    }
    struct stat st;
    uint64_t rights = rules[i].rights & handled;
    if (fstat(pfd, &st) == 0 && !S_ISDIR(st.st_mode)) rights &= kFileRights;
    PathBeneath pb = {rights, pfd};
    if (rights != 0 && syscall(__NR_landlock_add_rule, fd, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &pb, 0) < 0) err = errno;
    if (!own) continue;  // the parent's
    // A held path stays open above the worker's fds until the exec closes it.
    if (err == 0 && rules[i].hold && pfd < minFd) {
      int moved = fcntl(pfd, F_DUPFD_CLOEXEC, minFd);
      if (moved < 0) err = errno;
      close(pfd);
      pfd = moved;
    }
    if (!rules[i].hold || err != 0) close(pfd);
  }
  if (err == 0 && fd < minFd) {
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, minFd);
    if (moved < 0) err = errno;
    close(fd);
    fd = moved;
  }
  if (err != 0) {
    if (fd >= 0) close(fd);
    return err;
  }
  *rs = fd;
  return 0;
}

// Restricts this process (and what it execs) by the ruleset. No-new-privs must be set already.
inline int Restrict(int rs) { return syscall(__NR_landlock_restrict_self, rs, 0) != 0 ? errno : 0; }

}  // namespace landlock
}  // namespace posix
}  // namespace si
