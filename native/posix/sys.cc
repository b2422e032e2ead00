#include "sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/stat.h>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <unistd.h>
#include <string>
#include <mutex>
#include <map>
#include <vector>

namespace si {
namespace posix {

const char* ErrnoCode(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case E2BIG: return "E2BIG";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ETXTBSY: return "ETXTBSY";
    case ENOSYS: return "ENOSYS";
    case EBUSY: return "EBUSY";
    case ESRCH: return "ESRCH";
    case EPROTO: return "EPROTO";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EEXIST: return "EEXIST";
    case ECHILD: return "ECHILD";
    case ESTALE: return "ESTALE";
    case EROFS: return "EROFS";
    default: return "UNKNOWN";
  }
}

SysError Errno(const std::string& syscall, int e, const std::string& context) {
  std::string msg = syscall + " failed: " + strerror(e);
  if (!context.empty()) msg += ": " + context;
  return SysError(ErrnoCode(e), e, syscall, msg);
}

// Plain read(2)s: these are small kernel files (cgroup, /proc), read on every spawn and exit;
// no stream machinery.
bool ReadFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      bool ok = n == 0;
      close(fd);
      return ok;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

bool RandomBytes(void* buf, size_t n, unsigned flags) {
  long got;
  do got = syscall(SYS_getrandom, buf, n, flags);
  while (got < 0 && errno == EINTR);
  return got == static_cast<long>(n);
}

int KeepAtLeast(int fd, int min) {
  if (fd < 0 || fd >= min) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
  FdTraits::Close(fd);
  return moved;
}

int WriteFile(const std::string& path, const std::string& value) {
  int fd;
  do fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno;
  // Again when a signal to this process interrupted it: a cgroup's memory limit is refused with
  // EINTR whenever one is pending (the kernel checks before it reclaims anything), and the
  // launcher's signals (a Node service's SIGCHLD, SIGUSR2, ...) must not fail a spawn.
  ssize_t n;
  do n = write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  close(fd);
  return err;
}

namespace {

uint64_t ParseU64(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 10); }

// The first line of `s` whose first word is `key` and whose value is a number (a line like
// /proc/PID/status's "Name:" is skipped): that value, else 0.
uint64_t ParseKey(const std::string& s, const std::string& key) {
  size_t at = 0;
  while (at < s.size()) {
    size_t end = s.find('\n', at);
    if (end == std::string::npos) end = s.size();
    size_t k = s.find_first_not_of(" \t", at);
    if (k < end && s.compare(k, key.size(), key) == 0 && k + key.size() < end && (s[k + key.size()] == ' ' || s[k + key.size()] == '\t')) {
      const char* v = s.c_str() + k + key.size();
      char* stop = nullptr;
      uint64_t n = std::strtoull(v, &stop, 10);
      if (stop != v) return n;
    }
    at = end + 1;
  }
  return 0;
}

// A read of the whole of `fd` from its start: true, or false with errno.
bool PreadAll(int fd, std::string* out) {
  out->clear();
  char buf[4096];
  off_t at = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    at += n;
  }
}

// A kept fd's error that means it no longer names the file (its cgroup was removed).
bool Stale(int err) { return err == ENODEV || err == ENOENT || err == EBADF; }

// The kept fds (ReadKept, WriteKept), by path and open mode. A read or write holds its fd (a
// shared reference) while it uses it, not the lock: no other thread can close it (a stale fd
// dropped, a directory removed) meanwhile, nor its number be reused; and the spawning thread's
// limit writes never wait for the housekeeping thread's resets or the monitor's reads.
class KeptFiles {
 public:
  static KeptFiles& Get() {
    static KeptFiles* const k = new KeptFiles();  // never destroyed: used by background threads until exit
    return *k;
  }
  // `path` read through its kept fd (opened now when not kept yet): 1, or 0 with errno. -1: not
  // through a kept fd (too many kept, it cannot be opened, or its fd went stale): the caller
  // opens it itself.
  int Read(const std::string& path, std::string* out) {
    std::shared_ptr<Fd> fd = Find(path, O_RDONLY);
    if (!fd) return -1;
    if (PreadAll(fd->get(), out)) return 1;
    int err = errno;
    Drop(path, O_RDONLY, fd);
    errno = err;
    return Stale(err) ? -1 : 0;
  }
  // `value` written through `path`'s kept fd: 0, or an errno; -1 as for Read.
  int Write(const std::string& path, const std::string& value) {
    std::shared_ptr<Fd> fd = Find(path, O_WRONLY);
    if (!fd) return -1;
    // Again on EINTR, as WriteFile (a pending signal fails a memory limit's write).
    ssize_t n;
    do n = pwrite(fd->get(), value.data(), value.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n >= 0) return 0;
    int err = errno;
    Drop(path, O_WRONLY, fd);
    return Stale(err) ? -1 : err;
  }
  // Lets go of every kept fd beneath `dir` (each closes once no read or write holds it).
  void DropBeneath(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string prefix = dir + "/";
    for (auto it = fds_.lower_bound(prefix); it != fds_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) it = fds_.erase(it);
  }
  std::vector<std::string> Paths() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (auto& kv : fds_) out.push_back(kv.first.substr(0, kv.first.find('\0')));
    return out;
  }

 private:
  static std::string Key(const std::string& path, int mode) {
    std::string k = path;
    k += '\0';
    k += mode == O_RDONLY ? 'r' : 'w';
    return k;
  }
  // `path`'s kept fd (opened now when it is not kept yet); null when none is kept (too many).
  // The open is made outside the lock too; of two threads that open the same path at once, the
  // first kept wins.
  std::shared_ptr<Fd> Find(const std::string& path, int mode) {
    std::string key = Key(path, mode);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = fds_.find(key);
      if (it != fds_.end()) return it->second;
      if (fds_.size() >= kMaxKeptFiles) return nullptr;
    }
    int fd;
    do fd = open(path.c_str(), mode | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return nullptr;
    auto kept = std::make_shared<Fd>(fd);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fds_.find(key);
    if (it != fds_.end()) return it->second;
    if (fds_.size() >= kMaxKeptFiles) return kept;  // used once, then closed
    fds_.emplace(std::move(key), kept);
    return kept;
  }
  // Forgets `fd` as `path`'s kept fd, unless another has replaced it meanwhile.
  void Drop(const std::string& path, int mode, const std::shared_ptr<Fd>& fd) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fds_.find(Key(path, mode));
    if (it != fds_.end() && it->second == fd) fds_.erase(it);
  }
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Fd>> fds_;
};

}  // namespace

bool ReadKept(const std::string& path, std::string* out) {
  int r = KeptFiles::Get().Read(path, out);
  return r < 0 ? ReadFile(path, out) : r == 1;
}

int WriteKept(const std::string& path, const std::string& value) {
  int r = KeptFiles::Get().Write(path, value);
  return r < 0 ? WriteFile(path, value) : r;
}

uint64_t ReadU64Kept(const std::string& path, uint64_t dflt) {
  std::string s;
  if (!ReadKept(path, &s)) return dflt;
  return ParseU64(s);
}

uint64_t ReadKeyKept(const std::string& path, const std::string& key) {
  std::string s;
  if (!ReadKept(path, &s)) return 0;
  return ParseKey(s, key);
}

std::vector<std::string> KeptPaths() { return KeptFiles::Get().Paths(); }

int RemoveDir(const std::string& dir) {
  KeptFiles::Get().DropBeneath(dir);
  if (rmdir(dir.c_str()) != 0) return -1;
  // Again: a file another thread read between the first and the rmdir (its fd would only go
  // stale, and hold a slot).
  KeptFiles::Get().DropBeneath(dir);
  return 0;
}

// fstatat through the system call: glibc 2.33 turned stat() into a new symbol, and the shipped
// binary must load on glibc 2.28 (see glibc_compat.h). The kernel's struct stat is glibc's on
// x86_64 and aarch64.
int StatPath(const std::string& p, struct stat* st, bool follow) {
  return static_cast<int>(syscall(SYS_newfstatat, AT_FDCWD, p.c_str(), st, follow ? 0 : AT_SYMLINK_NOFOLLOW));
}

CondVar::CondVar() {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&c_, &attr);
  pthread_condattr_destroy(&attr);
}

void CondVar::WaitForMs(std::unique_lock<std::mutex>& lock, uint64_t ms) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  uint64_t ns = static_cast<uint64_t>(t.tv_nsec) + (ms % 1000) * 1000000;
  t.tv_sec += static_cast<time_t>(ms / 1000 + ns / 1000000000);
  t.tv_nsec = static_cast<long>(ns % 1000000000);
  pthread_cond_timedwait(&c_, lock.mutex()->native_handle(), &t);
}

bool Exists(const std::string& p) {
  struct stat st;
  return StatPath(p, &st, true) == 0;
}

bool Privileged() { return geteuid() == 0; }

namespace {

// Stacks given back, for the next spawns: a munmap of a stack a child used on another CPU costs
// a TLB shootdown there (an IPI, which a VM pays for with an exit), and a fresh one its page
// faults: ~45 us of the machine's CPU per spawn here (perf, a spawn makes two). Shared by every
// JS thread (a stack is only ever in one child's use: its owner gives it back once that child
// has exec'd or ended); leaked at exit, as the process's memory goes with it.
constexpr size_t kKeptStacks = 8;
struct StackPool {
  std::mutex mu;
  std::vector<std::pair<void*, size_t>> free;
};
StackPool& Stacks() {
  static StackPool* pool = new StackPool();
  return *pool;
}

}  // namespace

ChildStack::ChildStack(size_t bytes, bool make) : base_(MAP_FAILED), bytes_(bytes) {
  if (!make) return;
  {
    StackPool& pool = Stacks();
    std::lock_guard<std::mutex> lock(pool.mu);
    for (size_t i = 0; i < pool.free.size(); i++) {
      if (pool.free[i].second != bytes) continue;
      base_ = pool.free[i].first;
      pool.free.erase(pool.free.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
  base_ = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
}

ChildStack::~ChildStack() {
  if (base_ == MAP_FAILED) return;
  if (done_) {
    StackPool& pool = Stacks();
    std::lock_guard<std::mutex> lock(pool.mu);
    if (pool.free.size() < kKeptStacks) {
      pool.free.emplace_back(base_, bytes_);
      return;
    }
  }
  munmap(base_, bytes_);
}

bool ChildStack::ok() const { return base_ != MAP_FAILED; }

void* ChildStack::top() const { return static_cast<char*>(base_) + bytes_; }

SignalsBlocked::SignalsBlocked() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_);
}

SignalsBlocked::~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

bool DebugEnabled() {
  const char* v = getenv("NODE_DEBUG");
  if (v == nullptr) return false;
  std::string s(v);
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s.find("spawn-isolated") != std::string::npos || s == "*";
}

}  // namespace posix
}  // namespace si
