#include "trash.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "identity.h"

namespace si {
namespace posix {
namespace {

struct Dirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[1];
};

// A directory being emptied: its name in its parent, its identity (checked when we come back
// up through ".."), and the subdirectories found in it still to be removed.
struct Frame {
  std::string name;
  dev_t dev;
  ino_t ino;
  std::vector<std::string> pending;
};

void Note(RemoveResult& r, int err, const std::string& what) {
  if (r.err != 0) return;
  r.err = err;
  r.what = what;
}

bool IsDot(const char* n) { return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)); }

// Unlinks `name` in `fd`; a directory we own but may not write is made 0700 once and retried.
// True when it was a directory (left to the caller).
bool UnlinkOrDir(int fd, const char* name, bool* chmodded, RemoveResult& r) {
  for (;;) {
    if (unlinkat(fd, name, 0) == 0) {
      r.removed++;
      return false;
    }
    if (errno == EISDIR) return true;
    if (errno == ENOENT) return false;
    if ((errno == EACCES || errno == EPERM) && !*chmodded) {
      *chmodded = true;
      if (fchmod(fd, 0700) == 0) continue;
    }
    // Some file systems say EPERM for a directory (POSIX allows it).
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) return true;
    Note(r, errno, name);
    return false;
  }
}

// Removes the files of the directory `fd`, collecting its subdirectories into `f.pending`.
void Scan(int fd, Frame& f, RemoveResult& r) {
  if (lseek(fd, 0, SEEK_SET) < 0) return Note(r, errno, f.name);
  alignas(8) char buf[32768];
  bool chmodded = false;
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Note(r, errno, f.name);
    }
    for (long off = 0; off < n;) {
      const Dirent64* e = reinterpret_cast<const Dirent64*>(buf + off);
      off += e->reclen;
      if (IsDot(e->name)) continue;
      if (e->type == DT_DIR || UnlinkOrDir(fd, e->name, &chmodded, r)) f.pending.push_back(e->name);
    }
  }
}

// Opens the subdirectory `name` of `fd` without following a link; one we own but may not
// search is made 0700 first.
int OpenSubdir(int fd, const char* name) {
  int c = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (c >= 0 || errno != EACCES) return c;
  struct stat st;
  if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return -1;
  if (fchmodat(fd, name, 0700, 0) != 0) return -1;
  return openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

std::string DirName(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
}

std::string BaseName(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The owner part of a directory's name ("<pid>.<token>" after the prefix), or "" when the name
// is not one of ours (or is kept).
std::string OwnerOf(const char* name) {
  size_t n = strlen(kTempPrefix);
  if (strncmp(name, kTempPrefix, n) != 0 || strncmp(name, kKeptPrefix, strlen(kKeptPrefix)) == 0) return "";
  const char* p = name + n;
  const char* dot = p;
  while (*dot >= '0' && *dot <= '9') dot++;
  if (dot == p || *dot != '.') return "";
  const char* end = dot + 1;
  while ((*end >= '0' && *end <= '9') || (*end >= 'a' && *end <= 'f')) end++;
  if (end == dot + 1 || *end != '-') return "";
  return std::string(p, static_cast<size_t>(end - p));
}

bool IsTrashOf(const char* name, const std::string& owner) {
  std::string prefix = std::string(kTempPrefix) + owner + "-trash-";
  return strncmp(name, prefix.c_str(), prefix.size()) == 0;
}

}  // namespace

RemoveResult RemoveTreeAt(int parentFd, const char* name) {
  RemoveResult r;
  bool chmodded = false;
  if (!UnlinkOrDir(parentFd, name, &chmodded, r)) return r;
  int fd = OpenSubdir(parentFd, name);
  if (fd < 0) {
    if (errno != ENOENT) Note(r, errno, name);
    return r;
  }
  std::vector<Frame> frames;
  struct stat st;
  fstat(fd, &st);
  frames.push_back({name, st.st_dev, st.st_ino, {}});
  Scan(fd, frames.back(), r);
  while (!frames.empty()) {
    Frame& f = frames.back();
    if (!f.pending.empty()) {
      std::string sub = std::move(f.pending.back());
      f.pending.pop_back();
      int c = OpenSubdir(fd, sub.c_str());
      if (c < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
          if (unlinkat(fd, sub.c_str(), 0) == 0) r.removed++;
        } else if (errno != ENOENT) {
          Note(r, errno, sub);
        }
        continue;
      }
      fstat(c, &st);
      close(fd);
      fd = c;
      frames.push_back({std::move(sub), st.st_dev, st.st_ino, {}});
      Scan(fd, frames.back(), r);
      continue;
    }
    // Emptied (or as far as it goes): back up to its parent and remove it there.
    std::string done = std::move(f.name);
    frames.pop_back();
    if (frames.empty()) {
      close(fd);
      if (unlinkat(parentFd, done.c_str(), AT_REMOVEDIR) == 0)
        r.removed++;
      else
        Note(r, errno, done);
      return r;
    }
    int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    fd = up;
    // The parent must be the directory we came down from (nothing can move it in a private
    // trash directory; if something did, stop rather than remove elsewhere).
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != frames.back().dev || st.st_ino != frames.back().ino) {
      if (fd >= 0) close(fd);
      Note(r, ESTALE, done);
      return r;
    }
    if (unlinkat(fd, done.c_str(), AT_REMOVEDIR) == 0)
      r.removed++;
    else
      Note(r, errno, done);
  }
  return r;
}

Trash& Trash::Get() {
  static Trash* t = new Trash();  // never destroyed: its thread runs until exit
  return *t;
}

Trash::Trash() : debug_(DebugEnabled()) {
  // Empty trash directories go with this process (a full one is the next launcher's sweep).
  std::atexit([] {
    Trash& t = Get();
    t.Settle(200);  // a removal under way, briefly (the rest is the next launcher's sweep)
    std::lock_guard<std::mutex> lock(t.mu_);
    for (auto& kv : t.trashDirs_) rmdir(kv.second.c_str());
  });
}

std::string Trash::TrashDir(const std::string& base) {
  auto it = trashDirs_.find(base);
  if (it != trashDirs_.end()) return it->second;
  if (token_.empty()) {
    uint32_t r = 0;
    if (!RandomBytes(&r, sizeof(r))) r = static_cast<uint32_t>(time(nullptr) ^ getpid());
    char hex[16];
    snprintf(hex, sizeof(hex), "%08x", r);
    token_ = std::to_string(getpid()) + "." + hex;
  }
  // Made, then locked (flock, held by an fd kept for this process's life), then checked to be
  // still there: a sweep that took the lock in between (thinking it dead) removed it: again.
  for (int tries = 0; tries < 8; tries++) {
    std::string tmpl = base + "/" + kTempPrefix + token_ + "-trash-XXXXXX";
    if (mkdtemp(&tmpl[0]) == nullptr) return "";
    int fd = open(tmpl.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat held, now;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && stat(tmpl.c_str(), &now) == 0 && held.st_ino == now.st_ino) {
      trashDirs_[base] = tmpl;  // fd stays open (and locked) until this process ends
      return tmpl;
    }
    close(fd);
  }
  return "";
}

std::string Trash::Owner(const std::string& base) {
  std::lock_guard<std::mutex> lock(mu_);
  TrashDir(base);
  auto now = std::chrono::steady_clock::now();
  auto it = swept_.find(base);
  if (it == swept_.end() || now - it->second >= std::chrono::minutes(1)) {
    swept_[base] = now;
    sweeps_.push_back(base);
    if (!started_) {
      started_ = true;
      std::thread([this] { Run(); }).detach();
    }
    cv_.notify_one();
  }
  return token_;
}

bool Trash::Discard(const std::string& path) {
  std::string base = DirName(path);
  std::lock_guard<std::mutex> lock(mu_);
  std::string trash = TrashDir(base);
  bool moved = false;
  if (!trash.empty()) {
    std::string to = trash + "/" + std::to_string(++next_);
    if (rename(path.c_str(), to.c_str()) == 0) {
      removals_.push_back(to);
      moved = true;
    } else if (errno == ENOENT) {
      return true;  // nothing there (an 'inherit' worker removed it itself)
    }
  }
  if (!moved) {
    if (debug_)
      fprintf(stderr, "SPAWN-ISOLATED %d: could not move %s out of the way (%s): removing it in place\n", getpid(), path.c_str(),
              strerror(errno));
    removals_.push_back(path);
  }
  if (!started_) {
    started_ = true;
    std::thread([this] { Run(); }).detach();
  }
  cv_.notify_one();
  return moved;
}

void Trash::Settle(uint64_t ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  std::unique_lock<std::mutex> lock(mu_);
  while ((busy_ || !removals_.empty() || !sweeps_.empty()) && std::chrono::steady_clock::now() < deadline) idle_.WaitForMs(lock, 10);
}

void Trash::Run() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return !removals_.empty() || !sweeps_.empty(); });
    bool sweep = removals_.empty();
    std::string item = sweep ? sweeps_.front() : removals_.front();
    (sweep ? sweeps_ : removals_).pop_front();
    busy_ = true;
    lock.unlock();
    if (sweep)
      SweepNow(item);
    else
      RemoveNow(item);
    lock.lock();
    busy_ = false;
    idle_.notify_all();
  }
}

void Trash::RemoveNow(const std::string& path) {
  int parent = open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent < 0) return;
  RemoveResult r = RemoveTreeAt(parent, BaseName(path).c_str());
  close(parent);
  if (r.err != 0 && debug_)
    fprintf(stderr, "SPAWN-ISOLATED %d: could not remove all of %s (%s: %s); %zu entries removed\n", getpid(), path.c_str(), r.what.c_str(),
            strerror(r.err), r.removed);
}

void Trash::SweepNow(const std::string& base) {
  int fd = open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  // Every entry of ours by owner; an owner is gone when its trash directory can be locked (or
  // it has none left).
  std::map<std::string, std::vector<std::string>> byOwner;
  std::string self;
  {
    std::lock_guard<std::mutex> lock(mu_);
    self = token_;
  }
  if (DIR* d = fdopendir(dup(fd))) {
    while (struct dirent* e = readdir(d)) {
      std::string owner = OwnerOf(e->d_name);
      if (owner.empty() || owner == self) continue;
      // Only what this identity made (or, for root, a transient uid's): never someone else's.
      struct stat st;
      if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
      bool transient = geteuid() == 0 && st.st_uid >= kTransientBase && st.st_uid < kTransientBase + kTransientCount;
      if (st.st_uid == geteuid() || transient) byOwner[owner].push_back(e->d_name);
    }
    closedir(d);
  }
  for (auto& kv : byOwner) {
    std::vector<int> locks;
    bool alive = false;
    for (const std::string& name : kv.second) {
      if (!IsTrashOf(name.c_str(), kv.first)) continue;
      int t = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (t >= 0 && flock(t, LOCK_EX | LOCK_NB) == 0) {
        locks.push_back(t);  // held while its directories go
      } else {
        alive = alive || t >= 0;
        if (t >= 0) close(t);
      }
    }
    if (!alive) {
      // Its temp directories first, its trash directories (still locked by us) last.
      std::stable_sort(kv.second.begin(), kv.second.end(), [&](const std::string& a, const std::string& b) {
        return !IsTrashOf(a.c_str(), kv.first) && IsTrashOf(b.c_str(), kv.first);
      });
      for (const std::string& name : kv.second) {
        RemoveResult r = RemoveTreeAt(fd, name.c_str());
        if (r.err != 0 && debug_)
          fprintf(stderr, "SPAWN-ISOLATED %d: could not remove a dead launcher's %s/%s (%s)\n", getpid(), base.c_str(), name.c_str(),
                  strerror(r.err));
      }
    }
    for (int t : locks) close(t);
  }
  close(fd);
}

}  // namespace posix
}  // namespace si
