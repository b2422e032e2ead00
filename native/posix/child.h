// What the child does between clone and exec: fds, rlimits, namespaces, identity, Landlock,
// seccomp, exec. Everything it runs is async-signal-safe (the parent may have had other
// threads at clone); the plan is prepared by the parent, with no allocation left to do.
#pragma once

#include <linux/filter.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "landlock.h"

namespace si {
namespace posix {

struct RlimitSpec {
  int resource;
  rlim_t value;
};

constexpr int kMaxRoMounts = 32;
constexpr int kMaxCgroupFds = 16;
constexpr int kMaxLandlockRules = 160;
constexpr int kMaxKeepDirs = 3;

// A path of the host bound back into the worker's private /tmp (or /var/tmp, ...).
struct KeepPath {
  const char* path;
  const char* under;  // the private directory it lies beneath (a name, or where it is on the host)
  bool file;          // a file (its executable), not a directory
  bool readOnly;      // bound read-only (its executable, its cwd); its tempDir stays writable
  // Its cwd: the directory the launcher decided on (device and inode), which the path must
  // still name here (a symlink swapped into it since fails the spawn instead of binding what it
  // points at). The launcher's own fd of it would not do: a bind's source must be in this
  // process's mount namespace.
  bool checkId;
  dev_t dev;
  ino_t ino;
};

struct ChildPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  int sources[64];  // fds in the parent for fds 0..n-1 of the worker (-1: /dev/null)
  int count;
  RlimitSpec rlimits[8];
  int nrlimits;
  bool hasAffinity;
  cpu_set_t affinity;
  bool dropPrivileges;
  int lastCap;  // the highest capability number this kernel has (63 when unknown)
  bool hasUid, hasGid, clearGroups;
  uid_t uid;
  gid_t gid;
  gid_t groups[64];  // supplementary groups (options.user); none when ngroups is 0
  int ngroups;
  // A user namespace of its own (non-root launcher): the child maps its own ids 1:1.
  bool userns;
  char uidMap[32], gidMap[32];
  // A mount namespace of its own: /proc of its PID namespace, cgroup file systems read-only.
  bool mounts;
  const char* roMounts[kMaxRoMounts];
  int nroMounts;
  // Private /tmp, /var/tmp and /dev/shm (tmpfs of tmpfsOptions in its mount namespace, gone
  // with it); the directories it is handed (its tempDir, its executable's directory, its cwd),
  // when beneath one of them, are bound into the new one at their paths (parents first).
  bool privateTmp;
  // Which of landlock::kPrivateDirs it covers (bit i: the i-th), decided by the launcher when it
  // planned the spawn (PrivateDirsHere): the directories that existed then. The launcher holds
  // the tmpfs through the first of them (HoldWorld), so the child covers exactly these: one
  // that came later is the host's in the worker's namespace, one that went fails the mount.
  unsigned privateDirs;
  char tmpfsOptions[96];
  KeepPath keepDirs[kMaxKeepDirs];
  int nkeepDirs;
  // Landlock (landlockAbi > 0): the rights handled, and where they are allowed (landlock.h).
  int landlockAbi;
  uint64_t landlockHandled;
  bool landlockScoped;
  landlock::Rule landlockRules[kMaxLandlockRules];
  int nlandlockRules;
  bool loopbackUp;  // a network namespace of its own: bring its loopback interface up
  sock_fprog filter;
  bool hasFilter;
  // Under an init, the namespace's first process installs initFilter (the privilege level's
  // denials) before it starts the worker, which inherits it, and the worker adds `filter` (the
  // limits' rules: processes, the launcher's questions) -- one large program installed once.
  // Without an init, the worker installs `filter`, everything in one program. When the worker's
  // program asks the launcher (seccomp user notification), it sends its listener fd over notifyFd
  // (SCM_RIGHTS) before its exec (-1: no listener).
  int notifyFd;
  sock_fprog initFilter;
  bool hasInitFilter;
  // initFilter holds the limits' rules too (FilterSpec::startsWorker): the worker is started with
  // workerCloneKey as clone's TLS argument, and, when the program asks the launcher
  // (initNotifies), the first process sends its listener over notifyFd right after installing it.
  bool initNotifies;
  uint64_t workerCloneKey;
  bool pdeathsig;
  // cgroup v1 "tasks" files of the worker's cgroups, opened by the parent: the child writes "0"
  // (itself, one thread), which needs no system-wide lock (cgroup.procs waits for an RCU
  // grace period).
  int cgroupFds[kMaxCgroupFds];
  int ncgroupFds;
  // The memory hierarchy's (the worker's leaf, with memory.process): entered last, right before
  // the exec, so that a memory cgroup holds none of the work before it. -1: none.
  int memoryCgroupFd;
  // An init as PID 1 (initFd >= 0, a memfd): this process starts the worker as its child (on
  // workerStackTop), then execs the init, which writes the worker's wait status to statusFd.
  // The worker waits, before anything else, until the init has made itself non-dumpable (the
  // gate: a pipe the init writes a byte to), so it can never ptrace or write the init's memory.
  int initFd;
  int statusFd;
  int lockFd;  // the transient uid's reservation, kept by the init as its fd 2 (-1: none)
  void* workerStackTop;
  // The worker under an init is a vfork child of the first process (CLONE_VM | CLONE_VFORK), which
  // goes on only once the worker has exec'd: the kernel's OOM killer passes over a vfork child
  // that shares its parent's memory, so a worker in a memory cgroup needs no copy of the
  // launcher's memory; there is no gate. Only where the worker cannot reach the first process
  // meanwhile (the launcher's memory): a root launcher's first process is root until the
  // worker has exec'd and then, with fs.suid_dumpable = 0, not dumpable; a non-root launcher's is
  // outside the worker's Landlock domain (Landlock denies ptrace across domains). The init it
  // execs is not dumpable from the start (it cannot read its image).
  bool vforkWorker;
  // With vforkWorker, the launcher is not suspended until this process's exec (no CLONE_VFORK;
  // it blocks every signal and reads the error pipe instead): the init gets `relayFd` (errFd) as
  // its fd 1, where a gate's init writes its "go", writes kInitUp there once up and out of reach
  // and then sleeps, so the launcher wakes on the init's CPU, not queued behind the worker, which
  // has begun running by then. The init, not this process, enters the memory cgroup: a process
  // that shares the launcher's memory and is not a vfork child must never be in one (an OOM
  // kill of it would kill the launcher).
  int relayFd;
  // With the relay, and where this process was cloned by a thread of the launcher's that runs
  // nothing else meanwhile (BoundedCloner): once the worker has exec'd (its vfork returned, and a
  // failed worker reported first), this process writes kWorkerExecd on relayFd, and the launcher's
  // call returns then instead of after the init is up. That thread holds what this process
  // reads until its exec (its copy of the plan, its stack, the alive pipe) until the error
  // pipe's end, and clones nothing before: this process uses that thread's errno.
  bool announceWorker;
  // Tests only (SPAWN_ISOLATED_TEST_HOLD_FIRST, a FIFO): with the relay, this process waits for a
  // byte there right before it execs the init, for a test to look at it meanwhile.
  const char* holdFirst;
  int aliveFd;       // read end; the parent holds the write end until exec: hang-up means it died
  int aliveWriteFd;  // the parent's write end, which the child closes first (else it holds it itself)
  int errFd;         // write end, close-on-exec: failures are reported here
};

// The init's byte on its fd 1 (init.c).
constexpr char kInitUp = 'g';
// The init's name (/proc/PID/comm): what Linux 6.18 names a program run from its memfd ("memfd:"
// and the memfd's name, init_image.cc, cut to 15 bytes), which the init sets itself too
// (init.c), and the first process before it starts the worker.
constexpr char kInitComm[] = "memfd:spawn-iso";
// The step of the first process's message that the worker has exec'd (ChildPlan::announceWorker),
// the same size as a failure's report ({step, errno}).
constexpr int kWorkerExecd = -1;

enum Step : int {
  kStepCgroup = 1,
  kStepFds,
  kStepRlimit,
  kStepAffinity,
  kStepCwd,
  kStepIds,
  kStepCaps,
  kStepSeccomp,
  kStepExec,
  kStepUserns,
  kStepMounts,
  kStepLandlock,
  kStepStartWorker,
  kStepInit,
  kStepNetwork,
  kStepMemoryCgroup,
};
const char* StepName(int step);

// Runs in the new child; never returns (exec, or _exit(127) after reporting on errFd). The child
// may share the parent's memory (CLONE_VM, with CLONE_VFORK or with the parent's thread blocked
// in a read, every signal blocked: see ChildPlan::relayFd): it writes nothing but its own stack
// and the per-thread libc state of the parent's thread (errno), which that thread does not use
// before the child has exec'd or ended.
[[noreturn]] void ChildMain(const ChildPlan& p);

// The entry point for clone(2): ChildMain on a ChildPlan.
int ChildEntry(void* plan);

}  // namespace posix
}  // namespace si
