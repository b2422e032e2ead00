// Fds whose last close can take long, kept where no child of this process gets a copy of them.
//
// A child is cloned with a copy of this process's fd table and keeps it until its exec (every
// fd of ours is close-on-exec). An fd that this process closes meanwhile leaves the child's copy
// as the last reference, and the kernel then runs the file's release in that child's exec: a
// worker's mount namespace, and with it a private tmpfs the worker filled with 300,000 files,
// torn down in the next worker's exec, held that spawn 0.5-1.4 s. Here such fds live in an fd
// table of their own: that of two threads made with unshare(CLONE_FILES), which no clone from
// another thread copies. They arrive over a socket. One thread ("si-vault") only receives them
// and, on a release, closes a namespace (bounded: what it would free that can be large is held
// beside it), answers, and closes a tmpfs that holds next to nothing (at most ~1 ms); the other
// ("si-vault-free") closes the rest, however long that takes, so the first always drains the
// socket and a sender never waits behind a teardown.
#pragma once

#include <stdint.h>

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
  // Release, then waits (at most `ms`) until its namespace is closed: for the monitor thread
  // only (the one reader of the answers). False when no answer came in time; until that
  // answer has come, later calls do not wait.
  bool ReleaseAndWait(uint64_t token, int ms);

 private:
  Vault();
  static void Run(int sock, std::promise<bool>* ready);
  bool Send(uint64_t word, const std::vector<int>& fds);

  std::mutex mu_;
  Fd sock_;  // this side of the socket pair (SOCK_SEQPACKET); invalid if the vault could not start
  uint64_t next_ = 0;
  uint64_t behind_ = 0;  // a ReleaseAndWait's token whose answer did not come in time (monitor thread only)
};

}  // namespace posix
}  // namespace si
