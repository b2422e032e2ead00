#include "cgroup_pool.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace si {
namespace posix {
namespace {

constexpr size_t kReady = 4;        // fresh cgroups kept ready
constexpr size_t kMaxReady = 16;    // reset ones kept beyond that (the rest are removed)
constexpr int kRetryRemoveMs = 50;  // a retired cgroup still busy is tried again after this

// "spawn-isolated-PID-..." of a process that no longer exists (never ours, never a live one's).
bool Stale(const std::string& name) {
  if (name.rfind(kCgroupPrefix, 0) != 0) return false;
  char* end = nullptr;
  long pid = strtol(name.c_str() + strlen(kCgroupPrefix), &end, 10);
  if (pid <= 0 || end == nullptr || *end != '-' || pid == getpid()) return false;
  return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// Removes an empty cgroup tree, children first (a dead launcher's group held its members).
void RemoveTree(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> subdirs;
    while (struct dirent* e = readdir(d))
      if (e->d_type == DT_DIR && e->d_name[0] != '.') subdirs.push_back(dir + "/" + e->d_name);
    closedir(d);
    for (const std::string& s : subdirs) RemoveTree(s);
  }
  RemoveDir(dir);
}

// True when every directory is gone (removed, or never there); leaves first.
bool RemoveDirs(std::map<std::string, std::string>& dirs, std::vector<std::string>& leaves) {
  Cgroup cg;
  cg.dirs = std::move(dirs);
  cg.leaves = std::move(leaves);
  bool gone = cg.Remove();
  dirs = std::move(cg.dirs);
  leaves = std::move(cg.leaves);
  return gone;
}

}  // namespace

CgroupPool& CgroupPool::Get() {
  static CgroupPool* p = new CgroupPool();  // never destroyed: its thread runs until exit
  return *p;
}

CgroupPool::CgroupPool() {
  std::atexit([] { Get().Drain(); });
}

Cgroup CgroupPool::MakeFresh() {
  uint64_t n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    n = ++next_;
  }
  Limits none;
  Cgroup cg = MakeCgroup(OwnCgroupName("p" + std::to_string(n)), none, Layout(), nullptr, false, true);
  auto undo = OnScopeExit([&] { cg.Remove(); });
  cg.pooled = true;
  // Configure leaves the period of a pooled cgroup alone: it is set here, once.
  std::string cpu = cg.Dir("cpu");
  if (!cg.v2 && !cpu.empty()) {
    int err = WriteFile(cpu + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
    if (err != 0) throw Errno("write", err, cpu + "/cpu.cfs_period_us");
  }
  cg.OpenTasks();
  undo.Dismiss();
  return cg;
}

Cgroup CgroupPool::Take(const Limits& l) {
  Cgroup cg;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!taken_) {
      taken_ = true;
      RemoveStale();  // once, before this process's first worker cgroup
    }
    StartLocked();
    fillFailed_ = false;
    if (!ready_.empty()) {
      cg = std::move(ready_.front());
      ready_.pop_front();
    }
    if (ready_.size() < kReady) cv_.notify_one();  // refill (no wake-up on the spawn's path when enough are ready)
  }
  if (cg.Empty()) cg = MakeFresh();
  auto undo = OnScopeExit([&] { Retire(cg); });
  Configure(cg, l);
  undo.Dismiss();
  return cg;
}

void CgroupPool::Retire(Cgroup& cg, bool wake) {
  if (cg.Empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  // One that had per-process leaves is removed, not reset (its leaves go first).
  retired_.push_back(
      Retired{cg.dirs, cg.leaves, cg.pooled && !cg.v2 && cg.leaves.empty() && cg.nextLeaf == 0, cg.configured, std::move(cg.tasks)});
  if (wake) cv_.notify_one();
}

void CgroupPool::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_one();
}

void CgroupPool::StartLocked() {
  if (started_) return;
  started_ = true;
  std::thread([this] { Run(); }).detach();
}

void CgroupPool::LetGo(Fd ns, bool wake) {
  if (!ns.valid()) return;
  std::lock_guard<std::mutex> lock(mu_);
  StartLocked();  // a launcher that has taken no cgroup has no other use for the thread
  letGo_.push_back(std::move(ns));
  if (wake) cv_.notify_one();
}

void CgroupPool::Settle() {
  std::vector<Retired> retired;
  std::vector<Fd> letGo;
  {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return !busy_; });  // its batch is back, reset or still busy
    retired.swap(retired_);
    letGo.swap(letGo_);
  }
  letGo.clear();
  for (Retired& r : retired) {
    Cgroup cg;
    cg.dirs = std::move(r.dirs);
    cg.leaves = std::move(r.leaves);
    cg.RemoveNow();
  }
}

std::vector<std::string> CgroupPool::ReadyDirs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const Cgroup& cg : ready_)
    for (auto& kv : cg.dirs) out.push_back(kv.second);
  return out;
}

void CgroupPool::Drain() {
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // the housekeeping thread is busy: a later launcher cleans up
  for (Cgroup& cg : ready_) cg.Remove();
  ready_.clear();
  for (Retired& r : retired_) RemoveDirs(r.dirs, r.leaves);  // one try: what is still busy, a later launcher removes
  retired_.clear();
}

void CgroupPool::RemoveStale() {
  const CgroupLayout& l = Layout();
  std::vector<std::string> bases;
  if (l.v2) bases.push_back(l.v2Base);
  for (auto& kv : l.v1) bases.push_back(kv.second);
  for (const std::string& base : bases) {
    DIR* d = opendir(base.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> stale;
    while (struct dirent* e = readdir(d))
      if (e->d_type == DT_DIR && Stale(e->d_name)) stale.push_back(base + "/" + e->d_name);
    closedir(d);
    for (const std::string& s : stale) RemoveTree(s);
  }
}

void CgroupPool::Recycle(std::vector<Retired>& retired, std::vector<Cgroup>& reset) {
  size_t ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready = ready_.size();
  }
  for (Retired& r : retired) {
    if (r.reusable && ready + reset.size() < kMaxReady) {
      Cgroup cg;
      cg.dirs = r.dirs;
      // One hierarchy tells (nothing of the tree can move itself: its cgroup file systems are
      // read-only to it, and we move only whole trees).
      if (!cg.TreePids().empty()) continue;  // still going: again later
      cg.pooled = true;
      cg.configured = r.configured;
      cg.tasks = std::move(r.tasks);
      if (cg.Reset()) {
        reset.push_back(std::move(cg));
        r.dirs.clear();
        continue;
      }
    }
    RemoveDirs(r.dirs, r.leaves);
  }
}

void CgroupPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Cgroups kept ready only for a launcher that has used one (not one that only lets
    // namespaces go).
    bool fill = taken_ && ready_.size() < kReady && !fillFailed_;
    if (!fill && retired_.empty() && letGo_.empty()) {
      cv_.wait(lock);
      continue;
    }
    std::vector<Retired> retired;
    retired.swap(retired_);
    std::vector<Fd> letGo;
    letGo.swap(letGo_);
    busy_ = true;
    lock.unlock();
    letGo.clear();  // first: the cgroups they were charged to are reset or removed below
    std::vector<Cgroup> reset;
    Recycle(retired, reset);
    Cgroup fresh;
    if (fill && reset.empty()) {
      try {
        fresh = MakeFresh();
      } catch (const SysError&) {
        // No cgroup can be made now: Take() makes one itself and reports why; refilling
        // starts again with the next Take().
      }
    }
    lock.lock();
    for (Retired& r : retired)
      if (!r.dirs.empty()) retired_.push_back(std::move(r));  // still busy: again later
    for (Cgroup& cg : reset) ready_.push_back(std::move(cg));
    busy_ = false;
    idle_.notify_all();
    if (!fresh.Empty())
      ready_.push_back(std::move(fresh));
    else if (fill && reset.empty())
      fillFailed_ = true;
    if (fresh.Empty() && reset.empty() && !retired_.empty()) cv_.WaitForMs(lock, kRetryRemoveMs);
  }
}

}  // namespace posix
}  // namespace si
