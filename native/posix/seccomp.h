// The seccomp filters a worker runs under (built in the parent, installed by the child just
// before exec).
#pragma once

#include <linux/filter.h>
#include <stdint.h>

#include <vector>

namespace si {
namespace posix {

// The architecture the filters are for (seccomp_data.arch).
extern const uint32_t kAuditArch;

struct FilterSpec {
  bool noChildren = false;     // processes: 1: no fork / vfork / clone of a process
  bool restricted = false;     // 'restricted' and 'low': no namespaces, no kernel attack surface
  bool low = false;            // 'low': also no ptrace / process_vm_* / personality
  bool noUnixSockets = false;  // network: 'none': no socket(AF_UNIX) (a host service by path)
  // processes: N > 1: fork, vfork and clone of a process ask the launcher (SECCOMP_RET_USER_NOTIF,
  // served by the monitor: notify.h), which counts the tree; threads pass in BPF.
  bool notifyChildren = false;
  // memory.process held by per-process memory cgroups: execve / execveat ask the launcher, which
  // places the caller in a cgroup of its own before its new image allocates. The worker's own
  // exec (the exact path, argv and envp pointers of its plan: PatchExec) passes in BPF.
  bool notifyExec = false;
  // memory.process held by RLIMIT_DATA: the evidence that the limit refused an allocation, even
  // for a worker that fails before any sample could (Go's runtime at start). A large private
  // writable mmap (kLargeMap bytes or more: Go's heap grows by such) and a failing exit (exit /
  // exit_group with a nonzero code, SIGABRT sent by kill / tgkill as abort() does) ask the
  // launcher first, which reads the caller's data size then (notify.h).
  bool notifyFailure = false;
  // Installed by the namespace's first process, for its init and the worker it starts: that
  // start (a clone of a process) passes with the spawn's key (PatchCloneKey) as clone's TLS
  // argument, which the kernel ignores without CLONE_SETTLS. With noChildren or notifyChildren
  // only, so that the worker installs no program of its own (each costs ~50 us here: a JIT and
  // the kernel's per-syscall action cache).
  bool startsWorker = false;
};

// A key for one spawn's startsWorker program: 64 random bits (no worker can read a program or
// the launcher's memory; one that guessed its own key could only make a process uncounted).
// 0: none could be had (no startsWorker program then).
uint64_t NewCloneKey();
// Writes `key` into a startsWorker program's comparisons (no-op for a program without them).
void PatchCloneKey(std::vector<sock_filter>& prog, uint64_t key);
// clone's TLS argument (its index in seccomp_data.args).
#if defined(__x86_64__)
constexpr int kCloneTlsArg = 4;
#else
constexpr int kCloneTlsArg = 3;
#endif

// The classic-BPF program for `spec`; empty when nothing is to be filtered. Built once per
// distinct spec and copied (the monitor's thread and every spawn may ask at once).
std::vector<sock_filter> BuildFilter(const FilterSpec& spec);

// A spec with notifyExec lets the worker's own execve(path, argv, envp) through: writes those
// three pointers into `prog`'s comparisons (no-op for a program without them).
void PatchExec(std::vector<sock_filter>& prog, const void* path, const void* argv, const void* envp);

constexpr uint32_t kLargeMap = 1u << 20;

// True when `spec` makes the worker ask the launcher (a listener fd is needed).
inline bool Notifies(const FilterSpec& spec) { return spec.notifyChildren || spec.notifyExec || spec.notifyFailure; }

}  // namespace posix
}  // namespace si
