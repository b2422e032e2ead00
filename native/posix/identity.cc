#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../contract.h"
#include "sys.h"

namespace si {
namespace posix {
namespace {

// Lock (F_WRLCK) or unlock (F_UNLCK) byte `i` of `fd` with an open-file-description lock.
int LockByte(int fd, uint32_t i, short type) {
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = i;
  fl.l_len = 1;
  return fcntl(fd, F_OFD_SETLK, &fl);
}

constexpr const char* kLockDir = "/run/spawn-isolated";
constexpr const char* kLockFile = "/run/spawn-isolated/transient-ids.lock";

// Byte i of the lock file, locked with an open-file-description lock, reserves id base + i.
// Each reservation is its own open of the file (OFD locks of one description never conflict
// with each other, and vanish when its last copy closes): a killed launcher leaves an id
// reserved only while the init it handed a copy to still runs. Ids this process holds are
// tracked too, so it never tries them (its own descriptions would only refuse each other).
class Pool {
 public:
  static Pool& Get() {
    static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction
    return *p;
  }
  // The id and the description that holds it.
  std::pair<uid_t, Fd> Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) Start();
    // Above fd 2: the worker's init keeps it as its fd 2 (ExecInit places 0 and 1 first).
    Fd fd(KeepAtLeast(open(kLockFile, O_RDWR | O_CLOEXEC | O_NOFOLLOW), 3));
    if (!fd.valid()) throw Errno("open", errno, std::string("cannot open ") + kLockFile);
    for (uint32_t tried = 0; tried < kTransientCount; tried++) {
      uint32_t i = next_;
      next_ = (next_ + 1) % kTransientCount;
      if (held_.count(i)) continue;
      if (LockByte(fd.get(), i, F_WRLCK) == 0) {
        held_.insert(i);
        return {kTransientBase + i, std::move(fd)};
      }
      if (errno != EAGAIN && errno != EACCES)
        throw SysError("EIO", errno, "fcntl", std::string("reserving a transient uid failed: ") + strerror(errno));
    }
    throw SysError("EAGAIN", EAGAIN, "fcntl", "every transient uid of the reserved range is in use");
  }
  // This process no longer holds `id` (its description may live on in an init).
  void Release(uid_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.erase(id - kTransientBase);
  }

 private:
  void Start() {
    if (mkdir(kLockDir, 0700) != 0 && errno != EEXIST)
      throw SysError("EACCES", errno, "mkdir", std::string("cannot make ") + kLockDir + " for transient uids: " + strerror(errno));
    struct stat st;
    if (StatPath(kLockDir, &st, false) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0)
      throw SysError("EACCES", 0, "lstat", std::string(kLockDir) + " must be a directory owned by root, not writable by others");
    int fd = open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw Errno("open", errno, std::string("cannot open ") + kLockFile);  // EMFILE is EMFILE
    close(fd);
    started_ = true;
    // Start at a random id (not one the pid would give: a later launcher with the same pid
    // would start where a dead one did), so concurrent launchers rarely try the same ids.
    uint32_t r = 0;
    if (!RandomBytes(&r, sizeof(r))) r = static_cast<uint32_t>(getpid()) * 2654435761u;
    next_ = r % kTransientCount;
  }

  std::mutex mu_;
  bool started_ = false;
  uint32_t next_ = 0;
  std::set<uint32_t> held_;
};

}  // namespace

std::unique_ptr<TransientId> TransientId::Acquire() {
  std::pair<uid_t, Fd> got = Pool::Get().Acquire();
  return std::unique_ptr<TransientId>(new TransientId(got.first, std::move(got.second)));
}

TransientId::~TransientId() {
  if (kept_) {
    lock_.release();  // held (open) for as long as this process lives
    return;
  }
  Pool::Get().Release(id_);
}

std::string UserName(uid_t uid) {
  // Cached: the user database may be remote (NSS), and names do not change under a launcher.
  static std::mutex mu;
  static std::map<uid_t, std::string>* names = new std::map<uid_t, std::string>();
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = names->find(uid);
    if (it != names->end()) return it->second;
  }
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw, *found = nullptr;
  while (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == ERANGE) buf.resize(buf.size() * 2);
  std::string name = found != nullptr ? found->pw_name : "";
  std::lock_guard<std::mutex> lock(mu);
  (*names)[uid] = name;
  return name;
}

UserRecord FindUser(const std::string& name) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw, *found = nullptr;
  int err;
  while ((err = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
  if (found == nullptr) throw SysError("ENOENT", err, "getpwnam_r", "options.user: no user '" + name + "' in the user database");
  UserRecord u;
  u.name = found->pw_name;
  u.home = found->pw_dir ? found->pw_dir : "/";
  u.shell = found->pw_shell && *found->pw_shell ? found->pw_shell : "/bin/sh";
  u.uid = found->pw_uid;
  u.gid = found->pw_gid;
  std::vector<gid_t> groups(64);
  int n = static_cast<int>(groups.size());
  while (getgrouplist(u.name.c_str(), u.gid, groups.data(), &n) < 0)
    groups.resize(static_cast<size_t>(n) + 64), n = static_cast<int>(groups.size());
  u.groups.assign(groups.begin(), groups.begin() + n);
  return u;
}

bool PrimaryGroup(uid_t uid, gid_t* gid) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw, *found = nullptr;
  while (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == ERANGE) buf.resize(buf.size() * 2);
  if (found == nullptr) return false;
  *gid = found->pw_gid;
  return true;
}

}  // namespace posix
}  // namespace si
