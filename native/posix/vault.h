// Fds whose last close can take long, kept where no child of this process gets a copy of them.
//
// A child is cloned with a copy of this process's fd table and keeps it until its exec (every
// fd of ours is close-on-exec). An fd that this process closes meanwhile leaves the child's copy
// as the last reference, and the kernel then runs the file's release in that child's exec: a
// worker's mount namespace, and with it a private tmpfs the worker filled with 300,000 files,
// torn down in the next worker's exec, held that spawn 0.5-1.4 s. Here such fds live in an fd
// table of their own: that of two threads made with unshare(CLONE_FILES), which no clone from
// another thread copies. They arrive over a socket, and wait there (in flight: the kernel's
// reference, in no fd table) until the receiving thread ("si-vault") is rung: a keep does not
// ring it (a spawn then costs no wake-up of it), a release does, and so does every kKeepBatch-th
// keep in a row (the socket never fills). Rung, it receives everything queued, in order, and, on
// a release, closes a namespace (bounded: what it would free that can be large is held beside
// it), reaps the init it was asked to (ReleaseAndReap), and closes a tmpfs that holds next to
// nothing (at most ~1 ms); the other ("si-vault-free") closes the rest, however long that
// takes, so the first always drains the socket and a sender never waits behind a teardown.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

#include "sys.h"

namespace si {
namespace posix {

class Vault {
 public:
  static Vault& Get();
  // Moves `fds` into the vault (this process's copies are closed once sent). With `nsFirst`,
  // fds[0] is a mount namespace and the rest what its teardown would free: on release the
  // namespace is closed first, by the receiving thread. Returns a token for Release, or 0 when
  // they could not be sent (then they are still this caller's: `fds` is left as it was).
  uint64_t Keep(std::vector<Fd>& fds, bool nsFirst);
  // Lets what Keep(token) moved go. 0: nothing.
  void Release(uint64_t token);
  // Release, then, once its namespace is closed, reaps `pid` (a child of this process that has
  // exited, which no other thread reaps once it is handed here) and calls `after` on the
  // receiving thread: the
  // namespace's one teardown (one expedited RCU grace period) goes before the reap, which would
  // otherwise detach the mounts on the init's /proc entries one grace period apiece, and no
  // thread waits for it. False when the receiving thread has not yet done the last reap it was
  // given (a teardown that took long after all: then it is not given another, so that no dead
  // init waits behind it) or it could not be sent: the release is sent all the same (where it
  // can be), and the caller reaps.
  bool ReleaseAndReap(uint64_t token, pid_t pid, void (*after)());
  // Waits until everything sent to the vault before this call has been handled (what was let
  // go is closed or on the freeing thread's queue; what was kept is in the vault's table).
  void Sync();

 private:
  Vault();
  void Run(int sock, int bell, std::promise<bool>* ready);                 // the receiving thread
  bool Send(uint64_t word, const std::vector<int>& fds, int64_t pid = 0);  // under mu_
  void Ring();                                                             // under mu_

  std::mutex mu_;
  Fd sock_;  // this side of the socket pair (SOCK_SEQPACKET); invalid if the vault could not start
  Fd bell_;  // the eventfd the receiving thread waits on (Ring)
  uint64_t next_ = 0;
  int unrung_ = 0;  // keeps sent since the last ring (under mu_)
  // The receiving thread's progress, for Sync: the last sync word it handled.
  std::mutex syncMu_;
  CondVar synced_;
  uint64_t syncSent_ = 0, syncDone_ = 0;
  std::atomic<void (*)()> after_{nullptr};  // ReleaseAndReap's `after` (one function for all)
  std::atomic<uint64_t> reapsSent_{0}, reapsDone_{0};
};

}  // namespace posix
}  // namespace si
