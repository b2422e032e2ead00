// The launcher's answers to a worker tree's seccomp user notifications (seccomp.h:
// notifyChildren, notifyExec), given on the monitor thread, one at a time:
//
// - processes: N > 1. A process-creating fork / vfork / clone is admitted only while the tree
//   has fewer than N processes, counting the creations admitted whose outcome is not known yet
//   (so two concurrent forks at N-1 cannot both pass); over it, the call fails with EAGAIN and a
//   'processes' limit event is posted. The tree is read from its cgroup (cgroup.procs); an
//   admitted creation stops being counted apart once its new process is seen among its creating
//   thread's children, or once that thread is known to have left the call (it asks again, it is
//   gone, or it is inside another system call).
// - memory.process by per-process memory cgroups. A process that execs is first moved to a
//   memory cgroup of its own (Cgroup::AddLeaf), so its new image is charged there from its first
//   page; a process already alone in its leaf keeps it.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "sys.h"

namespace si {
namespace posix {

struct Child;

class Notifier {
 public:
  // At most this many per-process leaves in a tree at once (those that hold no process go every
  // sample): beyond it an exec'ing process stays in the leaf it is in, sharing its budget.
  static constexpr size_t kMaxLeaves = 256;
  explicit Notifier(Fd listener) : fd_(std::move(listener)) {}
  int fd() const { return fd_.get(); }
  // Receives and answers one pending request of `c`'s tree (the fd was readable).
  void Serve(Child& c);

 private:
  struct Admitted {
    pid_t tgid = 0;
    std::vector<pid_t> before;  // the tree's processes when it was admitted
  };
  void Creation(Child& c, uint64_t id, pid_t tid);
  void Exec(Child& c, uint64_t id, pid_t tid);
  // RLIMIT_DATA evidence (Child::dataRefused), asked at a large private writable mapping
  // (`bytes`) and at a failing end (`bytes` 0; `runtimeFatal`: exit code 2, Go's runtime's fatal
  // errors, or abort()). A failing end is memory's when a mapping that did not fit was refused
  // shortly before (kRefusalWindowMs), or when it is a runtime's fatal end with less than
  // kLargeMap of room left (a smaller request may have been refused). A refusal the program
  // got over, or a plain failing exit with its data size near the limit (Go reserves up to it),
  // is not.
  void DataRequest(Child& c, uint64_t id, pid_t tid, uint64_t bytes, bool runtimeFatal = false);
  static constexpr int64_t kRefusalWindowMs = 100;
  int64_t lastRefusalMs_ = -1;  // when a mapping last did not fit
  // Forgets admitted creations whose outcome is known; adds the processes they made to `born`.
  void Settle(Child& c, pid_t asking, std::vector<pid_t>& born, bool probe);
  // The tree's processes, our init aside, by the ids its count uses: host pids from its cgroup,
  // or (no cgroup) pids in its PID namespace, from that namespace's procfs. `ok` false when it
  // could not be read.
  std::vector<pid_t> Tree(Child& c, bool* ok);
  pid_t TreeId(Child& c, pid_t pid);  // a host pid as Tree names it (0: not known)
  bool TreeLive(Child& c, pid_t id);  // whether the process Tree names `id` is live

  Fd fd_;
  std::map<pid_t, Admitted> admitted_;  // by creating thread
  // memory.process: the process each leaf other than the worker's was made for (Exec). A
  // process gets one leaf of its own, at its first exec that finds it sharing a leaf: an exec
  // that then fails leaves it running there, and must not earn it another (its charges stay in
  // the leaves it left).
  std::map<std::string, pid_t> leafOwner_;
  double events_ = 64;  // 'processes' events that may be posted now (notify.cc: kEventBurst)
  int64_t lastEventMs_ = 0;
};

// The listener fd a worker sent over `sock` (SCM_RIGHTS, a SOCK_SEQPACKET pair) before its exec;
// invalid if none came: errno EAGAIN (nothing there yet), EPIPE (every sender is gone without
// one), EMFILE (it came, but this process had no fd number free), EPROTO (not a listener).
Fd ReceiveListener(int sock);

}  // namespace posix
}  // namespace si
