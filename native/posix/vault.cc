#include "vault.h"

#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <thread>

namespace si {
namespace posix {

namespace {

constexpr uint64_t kReleaseBit = 1ULL << 63;
constexpr size_t kMaxPerMessage = 64;  // well under SCM_MAX_FD (253)

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

}  // namespace

Vault& Vault::Get() {
  static Vault* v = new Vault();  // never destroyed: its thread runs for the process's life
  return *v;
}

Vault::Vault() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
  Fd mine(sv[0]), theirs(sv[1]);
  // The thread gets its own fd table first thing, a copy of this one as it is then: every fd but
  // its end of the socket is closed there at once (those are copies; this process's stay open).
  int fd = theirs.release();
  try {
    std::thread([fd] { Run(fd); }).detach();
  } catch (...) {
    close(fd);
    return;
  }
  sock_ = std::move(mine);
}

void Vault::Run(int sock) {
  prctl(PR_SET_NAME, "si-vault", 0, 0, 0);  // this thread's name (tests find its fd table by it)
  // The fd numbers mean the same in the new table: sock stays, everything else goes.
  if (syscall(SYS_unshare, CLONE_FILES) != 0) {
    close(sock);  // in the shared table: Keep then fails and closes its fds itself
    return;
  }
  if (sock > 0) syscall(SYS_close_range, 0U, static_cast<unsigned>(sock - 1), 0U);
  syscall(SYS_close_range, static_cast<unsigned>(sock + 1), ~0U, 0U);
  std::map<uint64_t, std::vector<int>> kept;
  for (;;) {
    uint64_t word = 0;
    char control[CMSG_SPACE(sizeof(int) * kMaxPerMessage)];
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
    if (word & kReleaseBit) {
      auto it = kept.find(word & ~kReleaseBit);
      if (it == kept.end()) continue;
      for (int f : it->second) close(f);  // the teardown, if last, runs here
      kept.erase(it);
      continue;
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
      for (size_t i = 0; i < count; i++) kept[word].push_back(fds[i]);
    }
  }
  for (auto& kv : kept)
    for (int f : kv.second) close(f);
  close(sock);
}

uint64_t Vault::Keep(std::vector<Fd> fds) {
  std::vector<int> raw;
  for (const Fd& f : fds)
    if (f.valid()) raw.push_back(f.get());
  if (raw.empty()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (!sock_.valid()) return 0;
  uint64_t token = ++next_;
  for (size_t at = 0; at < raw.size(); at += kMaxPerMessage) {
    size_t count = std::min(kMaxPerMessage, raw.size() - at);
    char control[CMSG_SPACE(sizeof(int) * kMaxPerMessage)];
    memset(control, 0, sizeof(control));
    struct iovec iov = {&token, sizeof(token)};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(c), raw.data() + at, sizeof(int) * count);
    ssize_t n;
    do n = sendmsg(sock_.get(), &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    // What was not sent is closed here, as it would have been without a vault (any part sent
    // is released with the token).
    if (n < 0) return at == 0 ? 0 : token;
  }
  return token;  // `fds` go out of scope: this process's copies closed, the vault's stay
}

void Vault::Release(uint64_t token) {
  if (token == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!sock_.valid()) return;
  uint64_t word = token | kReleaseBit;
  ssize_t n;
  do n = send(sock_.get(), &word, sizeof(word), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
}

}  // namespace posix
}  // namespace si
