#include "notify.h"

#include <dirent.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "monitor.h"
#include "mountinfo.h"
#include "seccomp.h"

namespace si {
namespace posix {
namespace {

// The kernel's seccomp_notif / seccomp_notif_resp (linux/seccomp.h, 5.0+), spelled out so that
// the addon also builds against older headers.
struct NotifData {
  int32_t nr;
  uint32_t arch;
  uint64_t ip;
  uint64_t args[6];
};
struct NotifRequest {
  uint64_t id;
  uint32_t pid;
  uint32_t flags;
  NotifData data;
};
struct NotifResponse {
  uint64_t id;
  int64_t val;
  int32_t error;
  uint32_t flags;
};
constexpr unsigned long kNotifRecv = _IOWR('!', 0, NotifRequest);
constexpr unsigned long kNotifSend = _IOWR('!', 1, NotifResponse);
constexpr uint32_t kFlagContinue = 1;  // SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5)

// 'processes' events: one per refusal, from a budget of kEventBurst that refills at
// kEventsPerSecond: a worker that keeps trying to fork is refused every time, but cannot flood
// the launcher's event loop with events.
constexpr double kEventBurst = 64;
constexpr double kEventsPerSecond = 100;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<pid_t> ParsePids(const std::string& s) {
  std::vector<pid_t> out;
  std::istringstream in(s);
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

bool Has(const std::vector<pid_t>& v, pid_t p) { return std::find(v.begin(), v.end(), p) != v.end(); }

// The memory cgroup `tid` is in, as its /proc entry names it (v1: the memory hierarchy's;
// v2: the unified one), or "" when it cannot be read.
std::string MemoryCgroupOf(pid_t tid, bool v2) {
  std::string s;
  if (!ReadFile("/proc/" + std::to_string(tid) + "/cgroup", &s)) return "";
  ProcCgroup p = ParseProcCgroup(s);
  if (v2) return p.unified;
  auto it = p.byController.find("memory");
  return it == p.byController.end() ? "" : it->second;
}

pid_t Tgid(pid_t tid) {
  std::string s;
  if (!ReadFile("/proc/" + std::to_string(tid) + "/status", &s)) return 0;
  size_t at = s.find("\nTgid:");
  return at == std::string::npos ? 0 : static_cast<pid_t>(strtol(s.c_str() + at + 6, nullptr, 10));
}

// The live processes `tid` (of `tgid`) created (its own children list: the kernel links a child
// to the thread that created it).
std::vector<pid_t> ChildrenOf(pid_t tgid, pid_t tid) {
  std::string s;
  ReadFile("/proc/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/children", &s);
  return ParsePids(s);
}

// Whether `tid` may still be inside a process-creating call: running (the kernel cannot say),
// or blocked in one. False once it is gone or blocked elsewhere.
bool MaybeCreating(pid_t tid) {
  std::string s;
  if (!ReadFile("/proc/" + std::to_string(tid) + "/syscall", &s)) return false;
  if (s.rfind("running", 0) == 0) return true;
  long nr = strtol(s.c_str(), nullptr, 10);
  if (nr == __NR_clone) return true;
#ifdef __NR_fork
  if (nr == __NR_fork || nr == __NR_vfork) return true;
#endif
#ifdef __NR_clone3
  if (nr == __NR_clone3) return true;
#endif
  return false;
}

// A live process (`dir`: its /proc directory): not a zombie, not exiting (PF_EXITING: it has
// begun to exit and has left cgroup.procs already) -- unless that is only its first thread,
// which may end (SYS_exit) while its other threads run on and make processes: then it counts.
bool LiveAt(const std::string& dir) {
  std::string s;
  if (!ReadFile(dir + "/stat", &s)) return false;
  size_t r = s.rfind(')');
  if (r == std::string::npos || r + 2 >= s.size()) return false;
  char state = s[r + 2];
  std::istringstream in(s.substr(r + 2));
  std::string f;
  for (int i = 0; i < 7 && in >> f; i++) {
  }
  bool exiting = state == 'Z' || state == 'X' || state == 'x' || (strtoull(f.c_str(), nullptr, 10) & 0x4 /* PF_EXITING */) != 0;
  if (!exiting) return true;
  std::string status;
  if (!ReadFile(dir + "/status", &status)) return false;
  size_t at = status.find("\nThreads:");
  return at != std::string::npos && strtol(status.c_str() + at + 9, nullptr, 10) > 1;
}

bool Live(pid_t pid) { return LiveAt("/proc/" + std::to_string(pid)); }

// `pid`'s pid in the innermost PID namespace it is in (the last of its NSpid), or 0.
pid_t InnermostPid(pid_t pid) {
  std::string s;
  if (!ReadFile("/proc/" + std::to_string(pid) + "/status", &s)) return 0;
  size_t at = s.find("\nNSpid:");
  if (at == std::string::npos) return 0;
  size_t end = s.find('\n', at + 1);
  std::vector<pid_t> ids = ParsePids(s.substr(at + 7, end == std::string::npos ? std::string::npos : end - at - 7));
  return ids.empty() ? 0 : ids.back();
}

bool Respond(int fd, uint64_t id, int err) {
  NotifResponse r;
  memset(&r, 0, sizeof(r));
  r.id = id;
  if (err == 0)
    r.flags = kFlagContinue;
  else
    r.error = -err;
  return ioctl(fd, kNotifSend, &r) == 0;
}

// The live processes of a PID namespace, by their pids there, from its own procfs (`proc`: a
// path to it): listed by pid, whatever their parents (a walk of children lists misses processes
// re-parented while it runs). `ok` false when it cannot be read.
std::vector<pid_t> NamespacePids(const std::string& proc, bool* ok) {
  std::vector<pid_t> out;
  DIR* d = opendir(proc.c_str());
  *ok = d != nullptr;
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    if (LiveAt(proc + "/" + e->d_name)) out.push_back(static_cast<pid_t>(strtol(e->d_name, nullptr, 10)));
  }
  closedir(d);
  return out;
}

// Where the tree's processes are counted when it has no cgroup: the procfs its namespace's
// PID 1 sees (the worker's own /proc, mounted with its mount namespace), which lists every
// process of its PID namespace.
std::string NamespaceProc(const Child& c) { return "/proc/" + std::to_string(c.pid) + "/root/proc"; }

}  // namespace

void Notifier::Serve(Child& c) {
  NotifRequest req;
  memset(&req, 0, sizeof(req));
  if (ioctl(fd_.get(), kNotifRecv, &req) != 0) return;  // withdrawn (the caller was killed)
  pid_t tid = static_cast<pid_t>(req.pid);
  std::lock_guard<std::mutex> lock(c.cgMu);
  if (c.cgRetired) {
    // The tree is going: nothing to count or place any more; exits and execs go on.
    bool creation = req.data.nr == __NR_clone;
#ifdef __NR_fork
    creation = creation || req.data.nr == __NR_fork || req.data.nr == __NR_vfork;
#endif
    Respond(fd_.get(), req.id, creation ? EAGAIN : 0);
    return;
  }
  switch (req.data.nr) {
#ifdef __NR_fork
    case __NR_fork:
    case __NR_vfork:
#endif
    case __NR_clone:
      // CLONE_PARENT makes the new process another thread's child (its caller's parent's): the
      // count reads a creating thread's children list to learn how its admitted call ended, and
      // a child put there by someone else would settle a creation still in progress.
      if (req.data.args[0] & CLONE_PARENT) {
        Respond(fd_.get(), req.id, EPERM);
        return;
      }
      Creation(c, req.id, tid);
      return;
    case __NR_execve:
    case __NR_execveat: Exec(c, req.id, tid); return;
    case __NR_exit_group:
    case __NR_exit: DataRequest(c, req.id, tid, 0, (req.data.args[0] & 0xff) == 2); return;
    case __NR_kill:
    case __NR_tgkill: DataRequest(c, req.id, tid, 0, true); return;  // abort(): the filter asks only for SIGABRT
    case __NR_mmap: DataRequest(c, req.id, tid, req.data.args[1]); return;
    default: Respond(fd_.get(), req.id, ENOSYS);  // the filter asks about nothing else
  }
}

std::vector<pid_t> Notifier::Tree(Child& c, bool* ok) {
  *ok = true;
  if (!c.cg.Empty()) {
    std::vector<pid_t> all = c.cg.TreePids();
    if (c.init) all.erase(std::remove(all.begin(), all.end(), c.pid), all.end());
    return all;
  }
  std::vector<pid_t> all = NamespacePids(NamespaceProc(c), ok);
  if (c.init) all.erase(std::remove(all.begin(), all.end(), 1), all.end());
  return all;
}

pid_t Notifier::TreeId(Child& c, pid_t pid) { return c.cg.Empty() ? InnermostPid(pid) : pid; }

bool Notifier::TreeLive(Child& c, pid_t id) { return c.cg.Empty() ? LiveAt(NamespaceProc(c) + "/" + std::to_string(id)) : Live(id); }

void Notifier::Settle(Child& c, pid_t asking, std::vector<pid_t>& born, bool probe) {
  for (auto it = admitted_.begin(); it != admitted_.end();) {
    pid_t tid = it->first;
    // It asks again, or is gone: its last call has returned (a process it made is in the
    // cgroup, which the kernel joins before the call returns, or has ended).
    bool known = tid == asking || !Exists("/proc/" + std::to_string(tid));
    if (!known) {
      // A live child it made that the tree did not have when it was admitted (live children it
      // took over from a sibling thread that ended were in the tree already; zombies, its own
      // or taken over, tell nothing: they are left to the checks below). Counted even if the
      // cgroup does not list it yet (the kernel links a child to its parent first).
      for (pid_t kid : ChildrenOf(it->second.tgid, tid)) {
        pid_t id = TreeId(c, kid);
        if (id <= 0 || Has(it->second.before, id) || !Live(kid)) continue;
        known = true;
        if (!Has(born, id)) born.push_back(id);
      }
    }
    if (!known && probe) known = !MaybeCreating(tid);
    it = known ? admitted_.erase(it) : std::next(it);
  }
}

void Notifier::Creation(Child& c, uint64_t id, pid_t tid) {
  uint32_t limit = c.limits.processes;
  // What is known of the admitted creations first, the tree after: a creation found to have
  // returned had put its process in the cgroup by then, so the tree read next holds it.
  std::vector<pid_t> born;
  bool readable = true;
  auto count = [&](bool probe) {
    Settle(c, tid, born, probe);
    bool ok = true;
    std::vector<pid_t> alive = Tree(c, &ok);
    readable = readable && ok;
    for (pid_t kid : born)
      if (!Has(alive, kid) && TreeLive(c, kid)) alive.push_back(kid);
    return alive;
  };
  std::vector<pid_t> alive = count(false);
  if (!readable) {  // the tree cannot be counted: refused, never let through uncounted
    Respond(fd_.get(), id, EAGAIN);
    return;
  }
  // Over the budget with creations still counted apart: look closer at where their threads are.
  if (alive.size() + admitted_.size() >= limit && !admitted_.empty()) alive = count(true);
  if (alive.size() + admitted_.size() < limit) {
    Admitted a;
    a.tgid = Tgid(tid);
    a.before = alive;
    if (a.tgid <= 0) {
      // Not to be counted apart (it is gone, which withdrew the call, or its status could not be
      // read): refused, never left unanswered.
      Respond(fd_.get(), id, EAGAIN);
      return;
    }
    if (Respond(fd_.get(), id, 0)) admitted_[tid] = std::move(a);
    return;
  }
  Respond(fd_.get(), id, EAGAIN);
  int64_t now = NowMs();
  events_ = std::min(kEventBurst, events_ + (now - lastEventMs_) * kEventsPerSecond / 1000.0);
  lastEventMs_ = now;
  if (events_ >= 1) {
    events_ -= 1;
    c.sink->Post(LimitEvent(c.id, "processes", Tgid(tid), alive.size() + admitted_.size()));
  }
}

void Notifier::Exec(Child& c, uint64_t id, pid_t tid) {
  pid_t tgid = Tgid(tid);
  Cgroup& cg = c.cg;
  // The leaf it is in, from its own /proc entry (one read, however many leaves the tree has).
  std::string in = MemoryCgroupOf(tid, cg.v2);
  const std::string* leaf = nullptr;
  for (const std::string& l : cg.leaves)
    if (!in.empty() && l.size() >= in.size() && l.compare(l.size() - in.size(), in.size(), in) == 0) leaf = &l;
  if (leaf != nullptr) {
    // Already alone (with our init, in the worker's) in a leaf: it keeps it.
    std::string procs;
    ReadFile(*leaf + "/cgroup.procs", &procs);
    bool alone = true;
    for (pid_t p : ParsePids(procs)) alone = alone && (p == tgid || (c.init && p == c.pid));
    // Not alone, in the leaf it was given already (the worker's, or one an earlier exec of its
    // made): that exec failed, or it has since made processes that share its leaf. It stays,
    // sharing the budget: a failed exec (after a fork that leaves it not alone) must not earn a
    // fresh budget, over and over, while what it charged stays in the leaves it left.
    auto owner = leafOwner_.find(*leaf);
    bool own = *leaf == cg.leaves.front() ? tgid == WorkerPid(c) : owner != leafOwner_.end() && owner->second == tgid;
    if (alone || own) {
      Respond(fd_.get(), id, 0);
      return;
    }
  }
  if (cg.leaves.size() >= kMaxLeaves) {  // it execs where it is, under a budget it shares
    Respond(fd_.get(), id, 0);
    return;
  }
  // A leaf of its own, entered before its new image maps anything. Should that fail, it execs
  // where it is: in its parent's leaf, under a budget it shares (never none).
  // Its whole process moves (cgroup.procs, v1 too: a thread id written there moves its thread
  // group): were only the calling thread moved (v1's "tasks"), an exec that fails would leave
  // the process split across cgroups, and each of its threads could have a cgroup made for it.
  try {
    std::string made = cg.AddLeaf(c.limits.memoryProcess);
    if (leafOwner_.size() > 2 * kMaxLeaves) {  // forget the leaves removed since (PruneLeaves)
      for (auto it = leafOwner_.begin(); it != leafOwner_.end();)
        it = std::find(cg.leaves.begin(), cg.leaves.end(), it->first) == cg.leaves.end() ? leafOwner_.erase(it) : std::next(it);
    }
    leafOwner_[made] = tgid;
    WriteFile(made + "/cgroup.procs", std::to_string(tid));
  } catch (const SysError&) {
  }
  Respond(fd_.get(), id, 0);
}

void Notifier::DataRequest(Child& c, uint64_t id, pid_t tid, uint64_t bytes, bool runtimeFatal) {
  // Its data size as it asks (or gives up: its mappings are there while it waits for this).
  std::string s;
  if (ReadFile("/proc/" + std::to_string(tid) + "/status", &s)) {
    size_t at = s.find("VmData:");
    uint64_t data = at == std::string::npos ? 0 : strtoull(s.c_str() + at + 7, nullptr, 10) * 1024;
    // A large mapping that does not fit is refused by the kernel once this answer lets it go on;
    // a process that gives up with less than kLargeMap of room may have been refused a smaller
    // one (larger ones were seen here).
    bool fits = data + (bytes ? bytes : kLargeMap) <= c.limits.memoryProcess;
    int64_t now = NowMs();
    if (bytes > 0) {
      if (!fits) lastRefusalMs_ = now;
    } else if ((lastRefusalMs_ >= 0 && now - lastRefusalMs_ <= kRefusalWindowMs) || (runtimeFatal && !fits)) {
      c.dataRefused = true;
    }
  }
  Respond(fd_.get(), id, 0);
}

Fd ReceiveListener(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof(ctl.buf);
  ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n == 0) {
    errno = EPIPE;  // every sender is gone, and none sent one
    return Fd();
  }
  if (n != 1) {
    if (n > 0) errno = EPROTO;
    return Fd();
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    errno = EMFILE;  // the fd was dropped: this process had no number free for it
    return Fd();
  }
  struct cmsghdr* h = CMSG_FIRSTHDR(&msg);
  if (h == nullptr || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int))) {
    errno = EPROTO;
    return Fd();
  }
  int fd;
  memcpy(&fd, CMSG_DATA(h), sizeof(int));
  return Fd(fd);
}

}  // namespace posix
}  // namespace si
