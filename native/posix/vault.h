// Fds whose last close can take long, kept where no child of this process gets a copy of them.
//
// A child is cloned with a copy of this process's fd table and keeps it until its exec (every
// fd of ours is close-on-exec). An fd that this process closes meanwhile leaves the child's copy
// as the last reference, and the kernel then runs the file's release in that child's exec: a
// private tmpfs that a worker filled with 300,000 files, torn down in the next worker's exec,
// held that spawn ~0.5 s. Here such fds live in the table of a thread of their own (made with
// unshare(CLONE_FILES), which no clone from another thread copies), sent over a socket, and are
// closed there when released: their teardown runs on that thread.
#pragma once

#include <stdint.h>

#include <mutex>
#include <vector>

#include "sys.h"

namespace si {
namespace posix {

class Vault {
 public:
  static Vault& Get();
  // Moves `fds` into the vault (this process's copies are closed once sent). Returns a token for
  // Release, or 0 when they could not be sent (then they were closed here, as before).
  uint64_t Keep(std::vector<Fd> fds);
  // Closes what Keep(token) moved, on the vault's thread. 0: nothing.
  void Release(uint64_t token);

 private:
  Vault();
  static void Run(int sock);

  std::mutex mu_;
  Fd sock_;  // this side of the socket pair (SOCK_SEQPACKET); invalid if the thread could not start
  uint64_t next_ = 0;
};

}  // namespace posix
}  // namespace si
