#include "monitor.h"

#include "cgroup_pool.h"
#include "landlock.h"
#include "vault.h"
#include "trash.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <thread>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace si {
namespace posix {
namespace {

constexpr int kSampleMs = 50;  // sampling period while a worker needs it (see SamplePeriod)
// memory.process: VmData is the only evidence of an RLIMIT_DATA refusal, and a worker that is
// refused ends within milliseconds: sampled more often.
constexpr int kDataSampleMs = 10;
constexpr int kTreeGoneMs = 20;  // re-check period while the rest of an exited tree goes
constexpr int kMaxEvents = 32;
// RLIMIT_CPU kills at whole seconds; the kernel's rusage of the killed worker can read less.
constexpr double kCpuTimeSlackMs = 50;
// memory.process: one Go heap arena, or a quarter of the limit (see ProcessMemoryReason).
constexpr uint64_t kArenaBytes = 64ull << 20;
// epoll keys: a worker's id for its pidfd, with this bit for its seccomp listener.
constexpr uint64_t kNotifyKey = 1ull << 63;

// VmData and VmHWM (the peak RSS of its own memory, since its exec) of `pid`, in one read.
void MemorySample(pid_t pid, uint64_t* data, uint64_t* hwm) {
  std::string status;
  if (!ReadFile("/proc/" + std::to_string(pid) + "/status", &status)) return;
  auto key = [&](const char* k) -> uint64_t {
    size_t at = status.find(k);
    return at == std::string::npos ? 0 : std::strtoull(status.c_str() + at + strlen(k), nullptr, 10) * 1024;
  };
  *data = key("VmData:");
  *hwm = key("VmHWM:");
}

double Ms(const struct timeval& tv) { return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; }

// What only sampling shows: VmData peaks, v1 OOM kills (v1 kills one process, not the
// group), and forks refused at the task limit.
// How often a live worker is sampled (-1: never).
int SamplePeriod(const Child& c) {
  if (c.limits.memoryProcess) return c.cg.leaves.empty() ? kDataSampleMs : kSampleMs;
  return ((c.limits.memoryTotal || c.group) && !c.cg.v2) || NeedsPids(c.limits) ? kSampleMs : -1;
}

void PostLimit(Child& c, const char* limit) {
  if (c.limitPosted) return;
  c.limitPosted = true;
  c.sink->Post(LimitEvent(c.id, limit, c.pid));
}

void PostThreadsLimit(Child& c) {
  if (c.threadsPosted) return;
  c.threadsPosted = true;
  c.sink->Post(LimitEvent(c.id, "threads", c.pid));
}

// How the worker itself ended, and the CPU time the kernel's RLIMIT_CPU check saw.
struct WorkerEnd {
  int64_t code = 0;
  int signal = 0;
  uint64_t profNs = 0;
  bool profKnown = false;
};

// What the init writes on the status pipe (native/posix/init/init.c).
struct InitReport {
  int32_t status = 0, pad = 0;
  uint64_t profNs = 0;
};

// Why a worker that was not ended by us ended, from the kernel's evidence.
std::string EvidenceReason(Child& c, const WorkerEnd& end, const struct rusage& ru) {
  bool failed = end.signal != 0 || end.code != 0;
  if (c.cg.OomKills() > 0) return "memory";
  if (c.limits.cpuTimeMs && (end.signal == SIGKILL || end.signal == SIGXCPU)) {
    // RLIMIT_CPU (whole seconds) is checked against the process's tick-sampled CPU time, which
    // can run ahead of the precise time rusage reports: that clock itself, read while the
    // worker was a zombie, is the evidence. Without it, rusage within a margin.
    double limitMs = std::ceil(c.limits.cpuTimeMs / 1000.0) * 1000.0;
    if (end.profKnown ? end.profNs >= static_cast<uint64_t>(limitMs) * 1000000ULL
                      : Ms(ru.ru_utime) + Ms(ru.ru_stime) + kCpuTimeSlackMs >= limitMs)
      return "cpu-time";
  }
  if (c.limits.memoryProcess && c.cg.leaves.empty() && failed && end.signal != SIGKILL) {
    // RLIMIT_DATA makes allocations fail; the worker then ends its own way (Go: exit 2), never
    // by SIGKILL. Evidence, read by the launcher while the process waited (notify.h): a large
    // private writable mapping it asked for that its data size left no room for, or a failing
    // exit with less room left than a large one. Without the launcher's questions (Linux before
    // 5.5), VmData samples within one Go heap arena (or a quarter of the limit) of the limit.
    if (c.dataRefused) return "memory";
    uint64_t margin = std::min<uint64_t>(kArenaBytes, c.limits.memoryProcess / 4);
    if (!c.notifier && c.peakData + margin >= c.limits.memoryProcess) return "memory";
  }
  // A file grew past options.disk (RLIMIT_FSIZE): SIGXFSZ ended it (Go ignores the signal and
  // sees EFBIG instead, and ends its own way).
  if (c.limits.disk && end.signal == SIGXFSZ) return "disk";
  // The tree was refused a task and the worker then failed (Go: "failed to create new OS
  // thread", exit 2): the kernel's own counter is the evidence.
  if (failed && c.cg.TaskLimitHits() > 0) return "threads";
  return "";
}

// The CPU time RLIMIT_CPU is checked against (CPUCLOCK_PROF) of an exited, unreaped process.
bool ProfClock(pid_t pid, uint64_t* ns) {
  struct timespec ts;
  clockid_t clock = static_cast<clockid_t>((~static_cast<long>(pid)) << 3);
  if (clock_gettime(clock, &ts) != 0) return false;
  *ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
  return true;
}

}  // namespace

Registry<Group>& Groups() {
  static Registry<Group>* g = new Registry<Group>();  // never destroyed, like the monitor
  return *g;
}

void RetireCgroup(Child& c, bool wake) {
  std::lock_guard<std::mutex> lock(c.cgMu);
  if (c.cgRetired.exchange(true)) return;
  CgroupPool::Get().LetGo(std::move(c.mountNs), wake);
  ReleaseVaultHolds(c);
  CgroupPool::Get().Retire(c.cg, wake);
}

pid_t InitsFirstChild(pid_t init) {
  std::string kids;
  std::string path = "/proc/" + std::to_string(init) + "/task/" + std::to_string(init) + "/children";
  return ReadFile(path, &kids) ? static_cast<pid_t>(std::strtol(kids.c_str(), nullptr, 10)) : 0;
}

pid_t WorkerPid(Child& c) {
  // Its spawn returned before the worker's exec: until its start is settled, the worker (or its
  // first process, where it is not there yet) may still run in the launcher's memory.
  if (c.start && !c.start->Settled()) return 0;
  if (!c.init) return c.pid;
  if (c.workerPid == 0) c.workerPid = InitsFirstChild(c.pid);
  return c.workerPid > 0 ? c.workerPid : c.pid;
}

// Its temp directory leaves its path (a sized one is unmounted: the tmpfs goes with its
// contents) and is removed in the background.
void DiscardTempDir(Child& c) {
  if (c.tempDir.empty() || c.keepTempDir) return;
  if (c.tempDirMounted) {
    // A tmpfs of `disk`'s size: held in the vault across its unmount and let go after the
    // worker's namespace (Reap), which has a copy of it, so that neither the vault's receiving
    // thread nor a child's exec tears a filled one down (Vault).
    std::vector<Fd> hold;
    hold.emplace_back(open(c.tempDir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (hold.front().valid()) c.tempDirVault = Vault::Get().Keep(hold, false);
    umount2(c.tempDir.c_str(), MNT_DETACH);
  }
  c.tempDirMounted = false;
  Trash::Get().Discard(c.tempDir);
  c.tempDir.clear();
}

Child::~Child() {
  DiscardTempDir(*this);
  Vault::Get().Release(tempDirVault);
}

Stats ReadStats(const Cgroup& cg, pid_t livePid, const struct rusage* ru, uint32_t inits) {
  Stats s;
  if (!cg.Empty()) {
    std::string mem = cg.Dir("memory"), acct = cg.Dir(cg.v2 ? "cpu" : "cpuacct");
    if (!mem.empty()) s.peakMemory = cg.v2 ? ReadU64Kept(mem + "/memory.peak") : ReadU64Kept(mem + "/memory.max_usage_in_bytes");
    if (!acct.empty()) {
      if (cg.v2) {
        s.cpuUserMs = ReadKeyKept(acct + "/cpu.stat", "user_usec") / 1000.0;
        s.cpuKernelMs = ReadKeyKept(acct + "/cpu.stat", "system_usec") / 1000.0;
      } else {
        // cpuacct.usage is the precise total (the scheduler's runtime); usage_user / usage_sys
        // come from tick sampling, which overcounts a busy tree on a busy machine: they only
        // split the total.
        double total = ReadU64Kept(acct + "/cpuacct.usage") / 1e6;
        double user = static_cast<double>(ReadU64Kept(acct + "/cpuacct.usage_user"));
        double sys = static_cast<double>(ReadU64Kept(acct + "/cpuacct.usage_sys"));
        s.cpuUserMs = user + sys > 0 ? total * user / (user + sys) : total;
        s.cpuKernelMs = total - s.cpuUserMs;
      }
    }
    // Our inits are in the cgroup too, but are not the caller's processes.
    uint32_t n = static_cast<uint32_t>(cg.TreePids().size());
    s.active = n > inits ? n - inits : 0;
  }
  bool cgroupCpu = !cg.Empty() && !cg.Dir(cg.v2 ? "cpu" : "cpuacct").empty();
  if (ru != nullptr) {
    // The cgroup's figures cover the whole tree precisely; rusage only where there is none.
    if (!cgroupCpu) {
      s.cpuUserMs = Ms(ru->ru_utime);
      s.cpuKernelMs = Ms(ru->ru_stime);
    }
  } else if (livePid > 0) {
    std::string stat;
    if (ReadFile("/proc/" + std::to_string(livePid) + "/stat", &stat)) {
      size_t close = stat.rfind(')');
      std::istringstream in(stat.substr(close + 2));
      std::string f;
      std::vector<std::string> fields;
      while (in >> f) fields.push_back(f);
      long hz = sysconf(_SC_CLK_TCK);
      if (fields.size() > 13 && hz > 0) {
        s.cpuUserMs = std::max(s.cpuUserMs, std::stod(fields[11]) * 1000.0 / hz);
        s.cpuKernelMs = std::max(s.cpuKernelMs, std::stod(fields[12]) * 1000.0 / hz);
      }
    }
  }
  s.total = std::max<uint32_t>(1, s.active);
  return s;
}

Monitor& Monitor::Get() {
  static Monitor* m = new Monitor();  // never destroyed: its thread runs until exit
  return *m;
}

Monitor::Monitor() {
  epfd_.reset(epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epfd_.valid() || !wake_.valid()) throw Errno("epoll_create1", errno);
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
  spare_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::thread([this] { Run(); }).detach();
}

void Monitor::Add(std::shared_ptr<Child> c) {
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = c->id;
  epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, c->pidfd.get(), &ev);
  if (c->notifier || c->listenerSock.valid()) {
    ev.data.u64 = c->id | kNotifyKey;
    epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, c->notifier ? c->notifier->fd() : c->listenerSock.get(), &ev);
  }
  // The loop's wait needs a shorter timeout only for a worker it samples; epoll_ctl reaches a
  // wait in progress, so any other worker costs the monitor no wake-up (a cross-CPU one is ~13
  // us of CPU on a 2-core VM).
  bool sampled = SamplePeriod(*c) >= 0;
  reg_.Add(std::move(c));
  if (sampled) Wake();
}

std::shared_ptr<Child> Monitor::Remove(uint64_t id) {
  std::shared_ptr<Child> c = reg_.Remove(id);
  if (!c) return nullptr;
  std::lock_guard<std::mutex> lock(mu());
  // Its tree may go on (killOnClose: false): its requests are answered until it is gone, and
  // it is reaped once it ends. Otherwise the caller ends and reaps it now (Release).
  if (!c->ended && c->killOnClose) epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c->pidfd.get(), nullptr);
  if ((c->notifier || c->listenerSock.valid()) && !c->ended) detached_[id] = c;
  return c;
}

void Monitor::Orphan(std::shared_ptr<Child> c) {
  std::lock_guard<std::mutex> lock(mu());
  if (!c->ended) orphans_[c->id] = std::move(c);
}

void Monitor::ReapOrphan(uint64_t id) {
  std::shared_ptr<Child> c;
  {
    std::lock_guard<std::mutex> lock(mu());
    auto it = orphans_.find(id);
    if (it == orphans_.end()) return;
    c = it->second;
  }
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (c->start) c->start->Await();  // as Reap does
  if (syscall(SYS_waitid, P_PIDFD, c->pidfd.get(), &info, WEXITED | WNOHANG | __WALL, nullptr) != 0 || info.si_pid == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu());
    c->ended = true;
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c->pidfd.get(), nullptr);
    orphans_.erase(id);
  }
  // Under its own PID namespace nothing of its tree is left: its transient uid and its cgroup,
  // kept for it while it ran, go (without one, what it left running keeps them).
  if (c->pidns) {
    if (c->transientId) c->transientId->Unkeep();
    RetireCgroup(*c);
  }
}

void Monitor::TakeListener(Child& c, uint32_t events) {
  // Its spawn returned before its exec: the listener sent before that exec (by the worker, or
  // by the namespace's first process). Its requests wait meanwhile (their callers block).
  if (!c.listenerSock.valid()) return;
  Fd listener;
  int err = EPIPE;
  if (events & EPOLLIN) {
    spare_.reset();
    listener = ReceiveListener(c.listenerSock.get());
    err = errno;
    spare_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!listener.valid() && err == EAGAIN) return;
  }
  epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.listenerSock.get(), nullptr);
  int fd = listener.get();
  {
    std::lock_guard<std::mutex> lock(mu());
    c.listenerSock.reset();
    if (listener.valid()) c.notifier = std::make_unique<Notifier>(std::move(listener));
    if (!c.notifier) detached_.erase(c.id);
  }
  if (fd < 0) {
    // None came (EPIPE): its senders ended before it was sent, which their own reports say.
    // One came that cannot be had: never run a worker whose questions no one answers.
    if (err != EPIPE) {
      c.lostListener = std::make_unique<SysError>(
          Errno("recvmsg", err,
                err == EMFILE ? "the launcher had no fd free for the worker's seccomp listener; the worker was ended"
                              : "the worker's seccomp listener did not arrive; the worker was ended"));
      KillTree(c);
    }
    return;
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = c.id | kNotifyKey;
  epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev);
  // Its first request, if any, is the next wake-up (level-triggered).
}

void Monitor::Notified(uint64_t id, uint32_t events) {
  std::shared_ptr<Child> c = Find(id);
  if (!c) {
    std::lock_guard<std::mutex> lock(mu());
    auto it = detached_.find(id);
    if (it != detached_.end()) c = it->second;
  }
  if (!c) return;
  if (!c->notifier) {
    TakeListener(*c, events);
    return;
  }
  if (events & EPOLLIN) c->notifier->Serve(*c);
  if (events & (EPOLLHUP | EPOLLERR)) {
    // Every process under its filter is gone.
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c->notifier->fd(), nullptr);
    std::lock_guard<std::mutex> lock(mu());
    detached_.erase(id);
  }
}

bool Monitor::Terminate(Child& c, const std::string& reason) {
  if (!c.ClaimEnd(mu(), reason)) return false;
  KillTree(c);
  return true;
}

void Monitor::KillTree(Child& c) {
  // The pidfd cannot name a recycled pid; the worker is PID 1 of its namespace when it has
  // one, and then the kernel ends everything in it.
  syscall(SYS_pidfd_send_signal, c.pidfd.get(), SIGKILL, nullptr, 0);
  if (!c.pidns) {
    kill(-c.pid, SIGKILL);
    c.cg.KillAll();
  }
}

void Monitor::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_.get(), &one, sizeof(one));
  (void)n;
}

int Monitor::NextTimeout() {
  int timeout = -1;
  std::vector<std::shared_ptr<Child>> all = reg_.Snapshot();
  std::lock_guard<std::mutex> lock(mu());
  for (auto& cp : all) {
    // Waiting for the rest of a tree to go, or sampling a live worker.
    int period = cp->pending ? kTreeGoneMs : cp->ended ? -1 : SamplePeriod(*cp);
    if (period >= 0) timeout = timeout < 0 ? period : std::min(timeout, period);
  }
  return timeout;
}

void Monitor::Run() {
  prctl(PR_SET_NAME, "si-monitor", 0, 0, 0);  // for a reader of /proc (and the tests)
  // Never waitpid(-1) and no SIGCHLD handler: each worker is reaped through its own pidfd.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  // Sampling runs on its period, not on every wake-up: with many short-lived workers, exits
  // come far more often than samples are due.
  auto lastTick = std::chrono::steady_clock::now();
  for (;;) {
    int period = NextTimeout();
    int timeout = -1;
    if (period >= 0) {
      auto since = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - lastTick).count();
      timeout = static_cast<int>(std::max<int64_t>(0, period - since));
    }
    struct epoll_event evs[kMaxEvents];
    int n = epoll_wait(epfd_.get(), evs, kMaxEvents, timeout);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == 0) {
        uint64_t v;
        while (read(wake_.get(), &v, sizeof(v)) > 0) {
        }
        continue;
      }
      if (evs[i].data.u64 & kNotifyKey) {
        Notified(evs[i].data.u64 & ~kNotifyKey, evs[i].events);
        continue;
      }
      std::shared_ptr<Child> c = Find(evs[i].data.u64);
      if (c)
        Reap(*c);
      else
        ReapOrphan(evs[i].data.u64);
    }
    auto now = std::chrono::steady_clock::now();
    if (period >= 0 && now - lastTick >= std::chrono::milliseconds(period)) {
      Tick();
      lastTick = now;
    } else if (period < 0) {
      lastTick = now;  // nothing to sample: the first sample of a new worker is a period away
    }
  }
}

void Monitor::Tick() {
  for (auto& c : reg_.Snapshot()) {
    if (c->pending) {
      c->cg.KillAll();
      if (c->cg.TreeGone()) Post(*c);
      continue;
    }
    if (c->ended) continue;
    if (c->limits.memoryProcess && c->cg.leaves.size() > 1) {
      // Leaves of processes that have ended go (their OOM kills are kept).
      std::lock_guard<std::mutex> lock(c->cgMu);
      if (!c->cgRetired) c->cg.PruneLeaves();
    }
    if (c->limits.memoryProcess && c->cg.leaves.empty()) {
      uint64_t data = 0, hwm = 0;
      pid_t worker = WorkerPid(*c);
      if (worker > 0) MemorySample(worker, &data, &hwm);
      c->peakData = std::max(c->peakData, data);
      c->peakRss = std::max(c->peakRss, hwm);
    }
    // cgroup v1 kills one process on OOM, not the group: end the rest ourselves. A process over
    // memory.process (its own leaf) ends the tree on v2 too, as on Windows.
    bool leaves = c->limits.memoryProcess && !c->cg.leaves.empty();
    if ((((c->limits.memoryTotal || c->group) && !c->cg.v2) || leaves) && c->cg.OomKills() > 0) {
      PostLimit(*c, "memory");
      Terminate(*c, "memory");
    }
    // The tree hit its task limit: said once, whether or not the worker survives it.
    if (c->cg.TaskLimitHits() > 0) PostThreadsLimit(*c);
  }
}

Fd OpenMountNamespace(pid_t pid, int pidfd) {
  int fd = pidfd >= 0 ? ioctl(pidfd, PIDFD_GET_MNT_NAMESPACE, 0) : -1;
  if (fd < 0 && (pidfd < 0 || errno != ESRCH)) {
    std::string path = "/proc/" + std::to_string(pid) + "/ns/mnt";
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  return Fd(fd);
}

void ReleaseVaultHolds(Child& c) {
  uint64_t started = 0;
  if (c.start) c.start->TakeVault(&started);
  for (uint64_t token : {c.vaultToken, started}) Vault::Get().Release(token);
  c.vaultToken = 0;
}

bool HoldWorld(pid_t pid, int pidfd, unsigned privateDirs, uint64_t* token, bool* complete) {
  *token = 0;
  *complete = false;
  std::vector<Fd> fds;
  fds.push_back(OpenMountNamespace(pid, pidfd));
  if (!fds.front().valid()) return false;
  // One tmpfs serves every private directory the child covered (MountPrivateTmp: the others are
  // bind mounts of it), so the first of them names it; which ones were decided when the spawn
  // was planned (ChildPlan::privateDirs), not looked at again here: a directory that appeared on
  // the host since (and what the host mounted there) is the host's in the worker's namespace,
  // and no hold on the worker's tmpfs. Where it is no tmpfs of its own, the namespace is held
  // alone (its release frees what it holds, on the freeing thread). None covered: nothing to
  // hold but the namespace.
  bool all = true;
  for (unsigned i = 0; i < sizeof(landlock::kPrivateDirs) / sizeof(landlock::kPrivateDirs[0]); i++) {
    if ((privateDirs & (1u << i)) == 0) continue;
    const char* dir = landlock::kPrivateDirs[i];
    struct stat mine;
    std::string path = "/proc/" + std::to_string(pid) + "/root" + dir;
    Fd h(open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct statfs fs;
    struct stat st;
    all = h.valid() && fstatfs(h.get(), &fs) == 0 && fs.f_type == TMPFS_MAGIC && fstat(h.get(), &st) == 0 &&
          (lstat(dir, &mine) != 0 || st.st_dev != mine.st_dev);
    if (all) fds.push_back(std::move(h));
    break;
  }
  // Still the process whose namespace and root these are (not a pid reused since).
  if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0) return false;
  if (!all) fds.resize(1);  // the namespace alone: its release frees what it holds, on the freeing thread
  *token = Vault::Get().Keep(fds, all);
  *complete = *token != 0 && all;
  return *token != 0;
}

bool StartVerdict::TakeVault(uint64_t* token) {
  std::lock_guard<std::mutex> lock(mu_);
  bool complete = complete_;
  *token = vaultToken_;
  vaultToken_ = 0;
  complete_ = false;
  return complete;
}

StartVerdict::~StartVerdict() {
  Vault::Get().Release(vaultToken_);  // 0: nothing
}

void StartVerdict::Settle(int step, int err, int pidfd) {
  // Its mounts are made once the worker has exec'd (before the lock: a few opens).
  uint64_t token = 0;
  bool complete = false;
  if (step == 0 && holdWorld && !Settled()) HoldWorld(init, pidfd, privateDirs, &token, &complete);
  std::lock_guard<std::mutex> lock(mu_);
  if (known_) {
    Vault::Get().Release(token);
    return;
  }
  complete_ = complete;
  vaultToken_ = token;
  step_ = step;
  err_ = err;
  if (step == 0) {
    auto ev = std::make_unique<Event>();
    ev->type = Event::Spawned;
    ev->id = id;
    sink->Post(std::move(ev));  // under the lock: the monitor's Exit event waits for it (Await)
  }
  // Under the lock too: whoever reaps the first process waits for this first (Await), so its
  // pid is still its own; and a SIGCONT sent after CancelStop comes after this stop.
  if (stopDeferred_ && step == 0) {
    try {
      StopInitsChild(init);
    } catch (const SysError&) {
    }
  }
  known_ = true;
  settled_.notify_all();
}

bool StartVerdict::DeferStop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (known_) return false;
  stopDeferred_ = true;
  return true;
}

void StartVerdict::CancelStop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopDeferred_ = false;
}

bool StopInitsChild(pid_t init) {
  pid_t worker = InitsFirstChild(init);
  if (worker <= 0) return false;
  Fd fd(static_cast<int>(syscall(SYS_pidfd_open, worker, 0)));
  if (!fd.valid() || InitsFirstChild(init) != worker) return false;
  if (syscall(SYS_pidfd_send_signal, fd.get(), SIGSTOP, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;
  throw Errno("pidfd_send_signal", errno);
}

bool StartVerdict::Settled() {
  std::lock_guard<std::mutex> lock(mu_);
  return known_;
}

int StartVerdict::Await(int* err, uint64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!known_ && std::chrono::steady_clock::now() < deadline) settled_.WaitForMs(lock, 100);
  if (err != nullptr) *err = err_;
  return known_ ? step_ : 0;
}

void Monitor::Reap(Child& c) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  struct rusage ru;
  memset(&ru, 0, sizeof(ru));
  WorkerEnd end;
  // Still a zombie: its CPU clock can be read (under an init, the init reads it).
  if (!c.init && c.limits.cpuTimeMs) end.profKnown = ProfClock(c.pid, &end.profNs);
  // A spawn that returned before its worker's exec: the first report on its error pipe came
  // before this exit (the worker's, then its first process's, before their ends), and the
  // thread that follows it settles the start once that process has exec'd or ended. Waited
  // for before the waitid, so that the pid stays the init's meanwhile (a deferred stop reads it).
  int startErr = 0;
  int startStep = c.start ? c.start->Await(&startErr) : 0;
  // waitid with an rusage (Linux's fifth argument), on this worker's pidfd only. WNOWAIT: its
  // status and rusage (the same a reaping waitid gives), left a zombie until its exit is posted.
  if (syscall(SYS_waitid, P_PIDFD, c.pidfd.get(), &info, WEXITED | WNOHANG | WNOWAIT | __WALL, &ru) != 0 || info.si_pid == 0) return;
  std::string reason;
  bool orphaned;
  {
    std::lock_guard<std::mutex> lock(mu());
    c.ended = true;
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.pidfd.get(), nullptr);
    if (c.listenerSock.valid()) {
      // Its listener never came (its tree is gone): nothing is left to ask.
      epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.listenerSock.get(), nullptr);
      c.listenerSock.reset();
      detached_.erase(c.id);
    }
    reason = c.reason;
    orphaned = orphans_.erase(c.id) > 0;  // released to run on as it ended: no one to tell
  }
  if (orphaned && c.pidns && c.transientId) c.transientId->Unkeep();
  end.code = info.si_code == CLD_EXITED ? info.si_status : 0;
  end.signal = info.si_code == CLD_EXITED ? 0 : info.si_status;
  // Under an init, the worker's own status, as the init reported it (none: the init itself was
  // ended, and with it the worker -- by us or a limit -- and its status stands).
  InitReport report;
  if (c.init && read(c.statusRead.get(), &report, sizeof(report)) == static_cast<ssize_t>(sizeof(report))) {
    end.code = WIFEXITED(report.status) ? WEXITSTATUS(report.status) : 0;
    end.signal = WIFSIGNALED(report.status) ? WTERMSIG(report.status) : 0;
    end.profNs = report.profNs;
    end.profKnown = report.profNs > 0;
  } else if (c.init && info.si_code == CLD_EXITED) {
    // Its init exited without a report: it never came up (its exec or its first steps failed,
    // after the spawn had returned: ChildPlan::announceWorker). The worker, already running,
    // was killed with its namespace; that first process's code is not the worker's.
    end.code = 0;
    end.signal = SIGKILL;
  }
  // A failed step is reported as the start failure the spawn would have thrown, not an exit.
  if (startStep != 0) reason.clear();
  if (reason.empty() && startStep == 0) reason = EvidenceReason(c, end, ru);
  if (reason == "threads") PostThreadsLimit(c);
  if (reason == "memory" || reason == "cpu-time" || reason == "disk") PostLimit(c, reason.c_str());
  c.finalStats = ReadStats(c.cg, 0, &ru);
  // Without a memory cgroup the only honest peak is what sampling saw of the worker's own
  // memory (its rusage counts the launcher's memory, which it shared until its exec).
  if (c.cg.Dir("memory").empty()) c.finalStats.peakMemory = c.peakRss;
  std::unique_ptr<Event> ev = ExitEvent(c.id, end.code, end.signal, reason, c.finalStats);
  if (startStep != 0)
    ev->error = std::make_unique<SysError>(c.start->error(startStep, startErr));
  else if (c.lostListener)
    ev->error = std::move(c.lostListener);
  // The worker is gone: the rest of its tree goes with it. The exit is reported once
  // nothing of the tree is left (its cgroups removed).
  KillTree(c);
  c.pending = std::move(ev);
  // Reaped right after its exit is posted: reaping an init detaches the mounts still on its
  // /proc entries (the covers of PID 1's command line: SetUpNamespaces), each waiting for an
  // expedited RCU grace period. Where its namespace is in the vault with its private tmpfs
  // (HoldWorld's `complete`), the vault closes the namespace and then reaps the init itself
  // (ReleaseAndReap): the namespace's one teardown takes the covers with it, and no thread waits
  // for the other (the vault's receiving thread does nothing unbounded: a tmpfs a worker filled
  // with a million files is held apart, and freed on the vault's freeing thread). Else the reap
  // is here, and pays for the covers. Both after the post: off the exit's path. Never on the
  // housekeeping thread, whose work a worker can make long while the zombie stays charged to its
  // cgroups' pids (a group's budget). That thread, which resets those cgroups for reuse, is
  // woken after the reap. (rcu_exp_gp_kthread_worker's CPU per default spawn, from its schedstat
  // over 500 spawns: 68 us with the covers detached at the reap, 18-20 us.)
  uint64_t token = 0;
  bool complete = c.start ? c.start->TakeVault(&token) : false;
  {
    std::lock_guard<std::mutex> lock(c.cgMu);
    if (!c.start) {
      token = c.vaultToken;
      complete = c.vaultComplete;
    }
    c.vaultToken = 0;
  }
  if (token != 0) tearingDown_.fetch_add(1);
  if (c.cg.TreeGone()) Post(c, false);
  bool reaped = false;  // handed to the vault
  if (token != 0 && complete)
    reaped = Vault::Get().ReleaseAndReap(token, c.pid, [] { CgroupPool::Get().Wake(); });
  else if (token != 0)
    Vault::Get().Release(token);
  // Its sized tempDir after its namespace (DiscardTempDir, in Post).
  Vault::Get().Release(c.tempDirVault);
  c.tempDirVault = 0;
  if (token != 0) tearingDown_.fetch_sub(1);
  if (reaped) return;
  memset(&info, 0, sizeof(info));
  syscall(SYS_waitid, P_PIDFD, c.pidfd.get(), &info, WEXITED | WNOHANG | __WALL, nullptr);
  CgroupPool::Get().Wake();
}

void Monitor::SettleTeardowns() {
  while (tearingDown_.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  Vault::Get().Sync();  // what Reap sent it: closed, reaped, or on its freeing thread's queue
}

void Monitor::Post(Child& c, bool wake) {
  std::unique_ptr<Event> ev;
  {
    std::lock_guard<std::mutex> lock(mu());
    if (c.posted || !c.pending) return;
    c.posted = true;
    ev = std::move(c.pending);
  }
  // Its tree is gone: its temp directory leaves its path before 'exit' is reported (so the
  // caller never finds it after awaiting the exit), and is removed in the background.
  DiscardTempDir(c);
  // Its cgroup goes back to the pool and its mount namespace is let go, in the background
  // (each can wait for an RCU grace period), before the exit is reported: once the caller has
  // it, none of the worker's fds is this process's to close any more (settleCgroups closes them).
  // The housekeeping thread is woken once the exit is posted (the caller's thread runs first),
  // or by Reap once it has reaped the init.
  RetireCgroup(c, false);
  c.sink->Post(std::move(ev));
  if (wake) CgroupPool::Get().Wake();
}

}  // namespace posix
}  // namespace si
