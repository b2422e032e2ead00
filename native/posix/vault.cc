#include "vault.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
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

// The word each message carries: a token and what is asked.
constexpr uint64_t kRelease = 1ULL << 63;
constexpr uint64_t kAnswer = 1ULL << 62;   // release: answer once its namespace is closed
constexpr uint64_t kNsFirst = 1ULL << 61;  // keep: fds[0] is a namespace (Keep)
constexpr uint64_t kTokenMask = kNsFirst - 1;
constexpr size_t kMaxFds = 16;
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
  int fd = theirs.release();
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
    std::thread([fd, &ready] { Run(fd, &ready); }).detach();
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    close(fd);
    return;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (up.get()) sock_ = std::move(mine);
}

void Vault::Run(int sock, std::promise<bool>* ready) {
  prctl(PR_SET_NAME, "si-vault", 0, 0, 0);  // tests find its fd table by this name
  // An fd table of its own, a copy of the process's as it is now: every fd but its end of the
  // socket is closed there at once (copies: the process's own stay open). The numbers mean the
  // same in the copy.
  if (syscall(SYS_unshare, CLONE_FILES) != 0) {
    close(sock);  // in the shared table
    ready->set_value(false);
    return;
  }
  if (sock > 0) syscall(SYS_close_range, 0U, static_cast<unsigned>(sock - 1), 0U);
  syscall(SYS_close_range, static_cast<unsigned>(sock + 1), ~0U, 0U);
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
    uint64_t word = 0;
    char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    struct iovec iov = {&word, sizeof(word)};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the other end is gone (never, while the process lives)
    uint64_t token = word & kTokenMask;
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
      if (word & kAnswer) send(sock, &token, sizeof(token), MSG_DONTWAIT | MSG_NOSIGNAL);
      // A tmpfs that holds next to nothing (a worker that left no files) is torn down here, after
      // the answer: usually cheaper than a wake-up of the freeing thread, and bounded (Trivial).
      // Anything else goes there.
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
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
      for (size_t i = 0; i < count; i++) k.fds.push_back(fds[i]);
    }
  }
  close(sock);
}

bool Vault::Send(uint64_t word, const std::vector<int>& fds) {
  char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  memset(control, 0, sizeof(control));
  struct iovec iov = {&word, sizeof(word)};
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
  // Blocking, but never for long: the receiving thread does nothing slow.
  ssize_t n;
  do n = sendmsg(sock_.get(), &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(word));
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
  fds.clear();  // this process's copies closed: the vault's stay
  return token;
}

void Vault::Release(uint64_t token) {
  if (token == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (sock_.valid()) Send(token | kRelease, {});
}

bool Vault::ReleaseAndWait(uint64_t token, int ms) {
  if (token == 0) return true;
  // The answer to a wait that gave up (the receiving thread was held: a teardown that was not
  // bounded after all) may have come since; until it has, this release does not wait either,
  // so a held vault costs the monitor one wait, not one per exit.
  while (behind_ != 0) {
    uint64_t answered = 0;
    if (recv(sock_.get(), &answered, sizeof(answered), MSG_DONTWAIT) != static_cast<ssize_t>(sizeof(answered))) break;
    if (answered == behind_) behind_ = 0;
  }
  if (behind_ != 0) {
    Release(token);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sock_.valid() || !Send(token | kRelease | kAnswer, {})) return false;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left < 0) {
      behind_ = token;
      return false;
    }
    struct pollfd p = {sock_.get(), POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) continue;  // the deadline, checked above
    uint64_t answered = 0;
    ssize_t n = recv(sock_.get(), &answered, sizeof(answered), MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof(answered)) && answered == token) return true;
    // An answer to an earlier wait that gave up: skip it.
  }
}

}  // namespace posix
}  // namespace si
