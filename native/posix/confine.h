// The policy of the Linux backend: how a worker is confined at its privilege level, and
// which mechanism serves each requested limit on this host (the enforcement list).
#pragma once

#include <string>
#include <vector>

#include "cgroup.h"

namespace si {
namespace posix {

// How a worker is confined, from its privilege level and who this launcher is.
struct Confinement {
  bool restricted = false;    // 'restricted' or 'low'
  bool transientId = false;   // root launcher, no uid given: a uid/gid of its own
  bool userns = false;        // non-root launcher: a user namespace of its own (ids mapped 1:1)
  bool mounts = false;        // own mount namespace: its own /proc, cgroup file systems read-only
  int landlockAbi = 0;        // > 0: writes only beneath its private temp dir (see landlock.h)
  bool perTreeTasks = false;  // RLIMIT_NPROC counts exactly its tree (an identity of its own)
  Enforcement entry;          // the 'privileges' enforcement entry
};

// Decided per spawn, from the level and who this launcher is.
Confinement Confine(Privileges privileges, bool hasUid);

// The Landlock ABI this kernel offers (0: none).
int LandlockAbi();

// seccomp user notification with the CONTINUE answer (Linux 5.5+): processes: N > 1 counted
// exactly, and per-process memory cgroups for processes that exec.
bool UserNotify();

// memory.process is held by per-process memory cgroups here (else RLIMIT_DATA).
bool ProcessMemoryCgroups(const CgroupLayout& l);

// processes: N > 1 is counted exactly here (seccomp user notification; the tree read from its
// cgroup); else it is a task budget (pids.max / RLIMIT_NPROC through `threads`).
bool ExactProcesses(const CgroupLayout& l);
// processes: N > 1 counted without a cgroup: the worker's PID namespace (which a worker with a
// mount namespace has), whose every process is its PID 1's descendant, walked through /proc.
bool NamespaceProcesses(const Confinement& conf);

// A host that refused new namespaces (remembered for this process's later workers).
bool NamespacesRefused();
void SetNamespacesRefused();

struct Plan {
  std::vector<Enforcement> enforcement;
};

// Which mechanism serves each requested limit (of a worker, or of a group) on this host.
Plan PlanLimits(const Limits& lim, const Confinement& conf, const CgroupLayout& l, bool group);

}  // namespace posix
}  // namespace si
