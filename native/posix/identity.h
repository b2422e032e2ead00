// Who a restricted worker runs as. A root launcher gives each restricted worker a uid and gid
// of its own from a reserved range (the idea of systemd's DynamicUser), so that no worker is
// root, owns what root or the launcher owns, or shares an identity with another worker.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "../contract.h"
#include "sys.h"

namespace si {
namespace posix {

// The reserved range: 65536 ids from 0x7FF00000 (2146435072), in the range systemd leaves
// unused (between container ranges, which end at 0x6FFFFFFF, and its foreign range at
// 0x7FFE0000). Shared by every launcher on the host through a lock file in /run.
constexpr uid_t kTransientBase = 0x7FF00000;
constexpr uint32_t kTransientCount = 0x10000;

// One transient uid (and the gid of the same number), held while the worker's tree lives.
// The reservation is an open-file-description lock on its own open of the lock file: it holds
// for as long as any copy of that description is open. The worker's init keeps a copy (as
// its fd 2, out of the worker's reach), so the id stays reserved while the init (and so the
// namespace, and anything in it) lives, even after this launcher is gone.
class TransientId {
 public:
  ~TransientId();
  TransientId(const TransientId&) = delete;
  TransientId& operator=(const TransientId&) = delete;
  uid_t id() const { return id_; }
  // The open file description that holds the reservation (close-on-exec).
  int lockFd() const { return lock_.get(); }
  // The tree outlives this launcher (killOnClose: false): keep the id reserved for as long as
  // this process lives, so no later worker of it gets the same one.
  void Keep() { kept_ = true; }
  void Unkeep() { kept_ = false; }  // its tree is gone after all: released with this object
  // A free id, reserved across every launcher on this host. Throws SysError.
  static std::unique_ptr<TransientId> Acquire();

 private:
  TransientId(uid_t id, Fd lock) : id_(id), lock_(std::move(lock)) {}
  uid_t id_;
  Fd lock_;
  bool kept_ = false;
};

// The primary group of `uid` from the user database; false when it has no entry.
bool PrimaryGroup(uid_t uid, gid_t* gid);
// The name of `uid` in the user database ("" when it has none: a transient uid).
std::string UserName(uid_t uid);
// A user by name, with every group it is in (ENOENT when unknown).
UserRecord FindUser(const std::string& name);

}  // namespace posix
}  // namespace si
