#include "vault.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <thread>

namespace si {
namespace posix {

namespace {

// The word each message carries: a token (or a sync's number) and what is asked.
constexpr uint64_t kRelease = 1ULL << 63;
constexpr uint64_t kReap = 1ULL << 62;     // release: then reap the init whose pid it carries
constexpr uint64_t kNsFirst = 1ULL << 61;  // keep: fds[0] is a namespace (Keep)
constexpr uint64_t kSync = 1ULL << 60;     // Sync: the receiving thread has handled all before it
constexpr uint64_t kTokenMask = kSync - 1;
constexpr size_t kMaxFds = 16;
// What each message carries: the word, and with kReap the init's pid.
struct Message {
  uint64_t word = 0;
  int64_t pid = 0;
};
// Keeps sent without a ring at most (each waits in the socket, a few hundred bytes of its
// buffer, until the next ring).
constexpr int kKeepBatch = 16;
// A tmpfs this small is closed on the receiving thread (Trivial).
constexpr uint64_t kTrivialInodes = 64, kTrivialPages = 256;

// The fds to close on the freeing thread, in order.
struct FreeQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> fds;
};

void FreeRun(FreeQueue* q) {
  prctl(PR_SET_NAME, "si-vault-free", 0, 0, 0);
  for (;;) {
    int fd;
    {
      std::unique_lock<std::mutex> lock(q->mu);
      q->cv.wait(lock, [q] { return !q->fds.empty(); });
      fd = q->fds.front();
      q->fds.pop_front();
    }
    close(fd);  // a teardown, when last, runs here
  }
}

// A tmpfs with at most a few inodes and pages in use (the worker's private one, where it left
// nothing): its teardown takes microseconds, and at most about a millisecond whatever the worker
// did within those bounds (50 sparse files of 2^62 bytes with 200 pages written: 0.4-0.9 ms),
// which cannot hold the receiving thread long enough to fill its socket. A file system that is
// no tmpfs is not.
bool Trivial(int fd) {
  struct statfs st;
  // Without an inode or size limit (nr_inodes=0, size=0) it reports no use at all: not trivial.
  if (fstatfs(fd, &st) != 0 || st.f_type != TMPFS_MAGIC || st.f_files == 0 || st.f_blocks == 0) return false;
  // Hard links and user xattrs use inodes there too, and a negative dentry is never kept.
  return st.f_files - st.f_ffree <= kTrivialInodes && st.f_blocks - st.f_bfree <= kTrivialPages;
}

}  // namespace

Vault& Vault::Get() {
  static Vault* v = new Vault();  // never destroyed: its threads run for the process's life
  return *v;
}

Vault::Vault() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
  Fd mine(sv[0]), theirs(sv[1]);
  Fd bell(eventfd(0, EFD_CLOEXEC));
  if (!bell.valid()) return;
  int fd = theirs.release(), bellFd = bell.get();
  // Used once both threads are up in their own fd table (the vault is usable from then on).
  std::promise<bool> ready;
  std::future<bool> up = ready.get_future();
  // Both threads run with every signal blocked, from their first instruction: a signal handler
  // of this process (libuv's SIGCHLD, which child_process and spawnSync wait on) writes to fds
  // of the process's table, which are not in theirs; run there, the signal would be lost.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    std::thread([this, fd, bellFd, &ready] { Run(fd, bellFd, &ready); }).detach();
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    close(fd);
    return;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (up.get()) {
    sock_ = std::move(mine);
    bell_ = std::move(bell);  // the thread's table has its own copy of it, by the same number
  }
}

void Vault::Run(int sock, int bell, std::promise<bool>* ready) {
  prctl(PR_SET_NAME, "si-vault", 0, 0, 0);  // tests find its fd table by this name
  // An fd table of its own, a copy of the process's as it is now: every fd but its end of the
  // socket and the bell is closed there at once (copies: the process's own stay open). The
  // numbers mean the same in the copy.
  if (syscall(SYS_unshare, CLONE_FILES) != 0) {
    close(sock);  // in the shared table
    ready->set_value(false);
    return;
  }
  unsigned lo = static_cast<unsigned>(std::min(sock, bell)), hi = static_cast<unsigned>(std::max(sock, bell));
  if (lo > 0) syscall(SYS_close_range, 0U, lo - 1, 0U);
  if (hi > lo + 1) syscall(SYS_close_range, lo + 1, hi - 1, 0U);
  syscall(SYS_close_range, hi + 1, ~0U, 0U);
  // Made from this thread, the freeing thread shares this table.
  auto* q = new FreeQueue();  // lives as long as the threads, the process's life
  try {
    std::thread(FreeRun, q).detach();
  } catch (...) {
    close(sock);
    ready->set_value(false);
    return;
  }
  ready->set_value(true);  // `ready` is gone after this
  struct Kept {
    std::vector<int> fds;
    bool nsFirst = false;
  };
  std::map<uint64_t, Kept> kept;
  for (;;) {
    // Rung: everything queued is received. A ring that comes while the queue is being drained
    // costs one more turn, which finds it empty.
    uint64_t rings = 0;
    ssize_t r = read(bell, &rings, sizeof(rings));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // never, while the process lives
    for (;;) {
      Message m;
      char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
      struct iovec iov = {&m, sizeof(m)};
      struct msghdr msg;
      memset(&msg, 0, sizeof(msg));
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {  // the other end is gone (never, while the process lives)
        close(sock);
        return;
      }
      // Fds that this table had no room for (MSG_CTRUNC) were closed by the kernel, here: the
      // release of what they held runs on this thread, as it would have later.
      uint64_t word = m.word;
      std::vector<int> got;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
        for (size_t i = 0; i < count; i++) got.push_back(fds[i]);
      }
      uint64_t token = word & kTokenMask;
      if (word & kSync) {
        for (int f : got) close(f);
        std::lock_guard<std::mutex> lock(syncMu_);
        syncDone_ = token;
        synced_.notify_all();
        continue;
      }
      if (word & kRelease) {
        auto it = kept.find(token);
        std::vector<int> rest;
        if (it != kept.end()) {
          rest = std::move(it->second.fds);
          if (it->second.nsFirst && !rest.empty()) {
            close(rest.front());  // the namespace: what it would free that can be large is held
            rest.erase(rest.begin());
          }
          kept.erase(it);
        }
        if ((word & kReap) && m.pid > 0) {
          // By its pid, not a pidfd: an fd could find this table full. The init is this
          // process's child, exited and not reaped: its pid is its own until this waitid, and
          // nothing else reaps it once it is handed here (ReleaseAndReap).
          siginfo_t info;
          memset(&info, 0, sizeof(info));
          syscall(SYS_waitid, P_PID, static_cast<id_t>(m.pid), &info, WEXITED | WNOHANG | __WALL, nullptr);
          void (*after)() = after_.load();
          if (after != nullptr) after();
        }
        if (word & kReap) reapsDone_.fetch_add(1);
        for (int f : got) close(f);
        // A tmpfs that holds next to nothing (a worker that left no files) is torn down here,
        // after the reap: usually cheaper than a wake-up of the freeing thread, and bounded
        // (Trivial). Anything else goes there.
        std::vector<int> slow;
        for (int f : rest) {
          if (Trivial(f))
            close(f);
          else
            slow.push_back(f);
        }
        if (!slow.empty()) {
          std::lock_guard<std::mutex> lock(q->mu);
          for (int f : slow) q->fds.push_back(f);
          q->cv.notify_one();
        }
        continue;
      }
      Kept& k = kept[token];
      k.nsFirst = (word & kNsFirst) != 0;
      k.fds.insert(k.fds.end(), got.begin(), got.end());
    }
  }
  close(sock);
}

bool Vault::Send(uint64_t word, const std::vector<int>& fds, int64_t pid) {
  char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  memset(control, 0, sizeof(control));
  Message m;
  m.word = word;
  m.pid = pid;
  struct iovec iov = {&m, sizeof(m)};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  // A socket that is full (a small net.core.wmem_default, and keeps that have not rung) has its
  // receiver rung first; then blocking, but never for long: the receiving thread does nothing
  // slow.
  ssize_t n;
  do n = sendmsg(sock_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) {
    Ring();
    do n = sendmsg(sock_.get(), &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
  }
  return n == static_cast<ssize_t>(sizeof(m));
}

void Vault::Ring() {
  unrung_ = 0;
  uint64_t one = 1;
  ssize_t n = write(bell_.get(), &one, sizeof(one));
  (void)n;
}

uint64_t Vault::Keep(std::vector<Fd>& fds, bool nsFirst) {
  std::vector<int> raw;
  for (const Fd& f : fds)
    if (f.valid()) raw.push_back(f.get());
  if (raw.empty() || raw.size() > kMaxFds) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (!sock_.valid()) return 0;
  uint64_t token = ++next_ & kTokenMask;
  if (!Send(token | (nsFirst ? kNsFirst : 0), raw)) return 0;
  fds.clear();  // this process's copies closed: the vault's stay (in flight until received)
  if (++unrung_ >= kKeepBatch) Ring();
  return token;
}

void Vault::Release(uint64_t token) {
  if (token == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (sock_.valid() && Send(token | kRelease, {})) Ring();
}

bool Vault::ReleaseAndReap(uint64_t token, pid_t pid, void (*after)()) {
  if (token == 0) return false;
  if (pid <= 0 || reapsDone_.load() < reapsSent_.load()) {
    Release(token);
    return false;
  }
  after_.store(after);
  std::lock_guard<std::mutex> lock(mu_);
  if (!sock_.valid()) return false;
  reapsSent_.fetch_add(1);
  if (!Send(token | kRelease | kReap, {}, pid)) {
    reapsSent_.fetch_sub(1);
    if (Send(token | kRelease, {})) Ring();
    return false;
  }
  Ring();
  return true;
}

void Vault::Sync() {
  uint64_t mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sock_.valid()) return;
    {
      std::lock_guard<std::mutex> s(syncMu_);
      mine = ++syncSent_ & kTokenMask;
    }
    if (!Send(mine | kSync, {})) return;
    Ring();
  }
  std::unique_lock<std::mutex> lock(syncMu_);
  while (syncDone_ < mine) synced_.wait(lock);
}

}  // namespace posix
}  // namespace si
