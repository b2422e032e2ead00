#include "init_image.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <init_blob.h>  // generated: kInitImage (scripts/build-init.js)

#include "sys.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

namespace si {
namespace posix {
namespace {

constexpr size_t kProbeStackBytes = 64 * 1024;

int MakeMemfd() {
  // MFD_EXEC where the kernel knows it (6.3+: vm.memfd_noexec may otherwise refuse exec).
  int fd = static_cast<int>(syscall(SYS_memfd_create, "spawn-isolated-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
  if (fd < 0 && errno == EINVAL) fd = static_cast<int>(syscall(SYS_memfd_create, "spawn-isolated-init", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0) return -1;
  Fd owned(fd);
  size_t off = 0;
  while (off < kInitImageSize) {
    ssize_t n = write(fd, kInitImage + off, kInitImageSize - off);
    if (n <= 0) return -1;
    off += static_cast<size_t>(n);
  }
  // Execute only: a process that execs a file it cannot read is not dumpable from its first
  // instruction (the kernel's would_dump), so the worker can never ptrace the init, not even
  // before the init's own PR_SET_DUMPABLE.
  if (fchmod(fd, 0111) != 0) return -1;
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) return -1;
  return owned.release();
}

struct ProbeArgs {
  int fd;
};

int ProbeChild(void* arg) {
  int fd = static_cast<ProbeArgs*>(arg)->fd;
  char name[] = "spawn-isolated-init";
  char* argv[] = {name, nullptr};
  char* envp[] = {nullptr};
  syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
  _exit(127);
}

// Runs the init without a worker pid: it must exec and exit with its usage code.
bool Probe(int fd) {
  ChildStack stack(kProbeStackBytes);
  if (!stack.ok()) return false;
  ProbeArgs args{fd};
  pid_t pid;
  {
    SignalsBlocked blocked;
    pid = clone(ProbeChild, stack.top(), CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  }
  if (pid < 0) return false;
  int status = 0;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == kInitUsageExit;
}

}  // namespace

int InitFd() {
  static const int fd = [] {
    // Above the fds the exec'ing process places for the init (0-3: child.cc ExecInit).
    int f = KeepAtLeast(MakeMemfd(), 4);
    if (f >= 0 && !Probe(f)) {
      close(f);
      f = -1;
    }
    return f;
  }();
  return fd;
}

}  // namespace posix
}  // namespace si
