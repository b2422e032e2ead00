// Small POSIX helpers shared by the Linux backend's units: an owned fd, errno to Node codes,
// and reading / writing small files (cgroup and /proc files).
#pragma once

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include <mutex>
#include <string>

#include "../contract.h"
#include "../scoped.h"

#ifndef PIDFD_GET_MNT_NAMESPACE
#define PIDFD_GET_MNT_NAMESPACE _IO(0xFF, 3)  // <linux/pidfd.h>, 6.11
#endif

namespace si {
namespace posix {

struct FdTraits {
  using Type = int;
  static int Null() { return -1; }
  static bool Valid(int fd) { return fd >= 0; }
  static void Close(int fd) {
    int err = errno;
    close(fd);
    errno = err;
  }
};
using Fd = Scoped<FdTraits>;

// Node-style code for an errno value ("ENOENT", ...; "UNKNOWN" for the rest).
const char* ErrnoCode(int e);
SysError Errno(const std::string& syscall, int e, const std::string& context = "");

// `fd` when it is -1 or at least `min`; else a close-on-exec copy numbered at least `min`, the
// original closed (-1, errno kept, when none is free). For an fd that must stay clear of the
// ones a child places below `min`.
int KeepAtLeast(int fd, int min);

// `n` random bytes from the kernel (getrandom with `flags`, again on EINTR); false when they
// could not be had (the caller falls back).
bool RandomBytes(void* buf, size_t n, unsigned flags = 0);

bool ReadFile(const std::string& path, std::string* out);
// 0 or the errno of the failed open / write.
int WriteFile(const std::string& path, const std::string& value);
bool Exists(const std::string& path);

// Control files read or written at every spawn and exit (cgroup files: an open costs ~5 µs, a
// pread or pwrite on an open fd under 1 µs, measured): each opened once and kept, process-wide,
// until its directory is removed (RemoveDir). At most kMaxKeptFiles are kept; past that a file
// is opened each time. A kept fd that went stale (its directory removed elsewhere) is dropped
// and the path opened again. Same results as ReadFile / WriteFile, except for files whose
// content an open file keeps (v1's cgroup.procs and tasks serve one pidlist per open): never
// for those.
constexpr size_t kMaxKeptFiles = 256;  // ~12 per cgroup: the pool's (16) and some in use
bool ReadKept(const std::string& path, std::string* out);
int WriteKept(const std::string& path, const std::string& value);
uint64_t ReadU64Kept(const std::string& path, uint64_t dflt = 0);
// The value of `key` in a file of "key value" lines (memory.events, cpu.stat, pids.events).
uint64_t ReadKeyKept(const std::string& path, const std::string& key);
// rmdir(dir), once every kept file beneath it is closed: 0 or -1 with errno.
int RemoveDir(const std::string& dir);
// The paths of the kept fds (tests).
std::vector<std::string> KeptPaths();
// A condition variable on CLOCK_MONOTONIC over pthread's, for std::mutex locks. (libstdc++'s
// std::condition_variable::wait is a GLIBCXX_3.4.30 symbol, and its steady-clock waits need
// glibc 2.30: the shipped addon must load on older hosts.)
class CondVar {
 public:
  CondVar();
  ~CondVar() { pthread_cond_destroy(&c_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  void notify_one() { pthread_cond_signal(&c_); }
  void notify_all() { pthread_cond_broadcast(&c_); }
  void wait(std::unique_lock<std::mutex>& lock) { pthread_cond_wait(&c_, lock.mutex()->native_handle()); }
  template <typename Pred>
  void wait(std::unique_lock<std::mutex>& lock, Pred done) {
    while (!done()) wait(lock);
  }
  // Waits up to `ms` (a wake-up may come earlier).
  void WaitForMs(std::unique_lock<std::mutex>& lock, uint64_t ms);

 private:
  pthread_cond_t c_;
};

// stat / lstat (follow = false) of `path`; 0 or -1 with errno.
int StatPath(const std::string& path, struct stat* st, bool follow);
bool Privileged();

// A stack of its own for a child that shares this process's memory until its exec
// (CLONE_VM | CLONE_VFORK); base is MAP_FAILED when it could not be made. Taken from a small
// pool of stacks given back (sys.cc), so that a spawn neither maps nor unmaps one. Given back
// only once its owner has said that no child runs on it any more (Done: the child has exec'd
// or ended); otherwise unmapped, so that a child that might still run on it faults rather than
// share it with the next.
class ChildStack {
 public:
  explicit ChildStack(size_t bytes, bool make = true);
  ~ChildStack();
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  bool ok() const;
  void* top() const;
  void Done() { done_ = true; }

 private:
  void* base_;
  size_t bytes_;
  bool done_ = false;
};

// Every signal blocked on this thread while it lives: no handler of this process may run in a
// child that shares its memory before the child has reset them.
class SignalsBlocked {
 public:
  SignalsBlocked();
  ~SignalsBlocked();
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

// NODE_DEBUG names spawn-isolated (or is "*"): the addon's own diagnostics go to stderr.
bool DebugEnabled();

}  // namespace posix
}  // namespace si
