// seccomp deny-lists. Modelled on what Docker's default profile and nsjail keep from ordinary
// programs: a worker never needs to make namespaces, mount, load kernel code or set the clock.
#include "seccomp.h"

#include <errno.h>
#include <stdint.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif

#include <map>
#include <mutex>
#include <string.h>

namespace si {
namespace posix {
namespace {

// Every flag that makes a namespace (clone's and unshare's first argument).
constexpr uint32_t kNamespaceFlags =
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME;

sock_filter Stmt(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return BPF_JUMP(code, k, jt, jf); }
sock_filter RetErrno(uint32_t err) { return Stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)); }
sock_filter LoadNr() { return Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)); }
sock_filter LoadArg0() { return Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])); }
// The low 32 bits of the second argument (little-endian): an ioctl's request, which the kernel
// takes as an unsigned int whatever the upper half holds.
sock_filter LoadArg1Low() { return Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])); }
sock_filter RetNotify() { return Stmt(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF); }

void Notify(std::vector<sock_filter>& f, long nr) {
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
  f.push_back(RetNotify());
}

// execve asks the launcher unless it is the worker's own (its plan's three pointers, patched in
// by PatchExec: after that exec the address space is new, and a later caller that passed the
// same three values would only stay in its parent's memory cgroup, a stricter budget); execveat
// always asks. 17 instructions, the first one the execve test (PatchExec finds them by it).
constexpr size_t kExecBlock = 17;
void NotifyExec(std::vector<sock_filter>& f) {
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_execve, 0, 14));
  for (int arg = 0; arg < 3; arg++)
    for (int half = 0; half < 2; half++) {
      f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(offsetof(struct seccomp_data, args[0]) + 8 * arg + 4 * half)));
      // To RET_USER_NOTIF (instruction 14 of the block) when it differs.
      uint8_t toNotify = static_cast<uint8_t>(14 - (2 + 4 * arg + 2 * half) - 1);
      f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, toNotify));
    }
  f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  f.push_back(RetNotify());
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_execveat, 0, 1));
  f.push_back(RetNotify());
}

void Deny(std::vector<sock_filter>& f, long nr, uint32_t err) {
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
  f.push_back(RetErrno(err));
}

// System call `nr` fails with `err` when its first argument has any of `flags`. Leaves the
// syscall number loaded again for the checks after it.
void DenyFlags(std::vector<sock_filter>& f, long nr, uint32_t flags, uint32_t err) {
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 4));
  f.push_back(LoadArg0());
  f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, flags, 0, 1));
  f.push_back(RetErrno(err));
  f.push_back(LoadNr());
}

// ioctl(fd, request) fails with `err` for each of `requests`, whatever the fd: a terminal passed
// as stdio, or one the worker opens. Leaves the syscall number loaded again.
void DenyIoctls(std::vector<sock_filter>& f, const std::vector<uint32_t>& requests, uint32_t err) {
  uint8_t n = static_cast<uint8_t>(requests.size());
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, static_cast<uint8_t>(2 * n + 2)));
  f.push_back(LoadArg1Low());
  for (uint8_t i = 0; i < n; i++) {
    f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, requests[i], 0, 1));
    f.push_back(RetErrno(err));
  }
  f.push_back(LoadNr());
}

// Terminal requests that act as someone else: TIOCSTI pushes input that the terminal's next
// reader (the launcher's root shell) runs as typed; TIOCLINUX can do the same through the
// console selection (bubblewrap's CVE-2017-5226; Docker's default profile denies both).
const std::vector<uint32_t> kTerminalInjection = {0x5412 /* TIOCSTI */, 0x541C /* TIOCLINUX */};

// Namespaces, mounts, kernel code, clocks, keyrings, eBPF, perf, io_uring, handles to
// arbitrary inodes: what nsjail and Docker's default profile deny an ordinary program.
const long kRestrictedDenied[] = {
    __NR_mount,
    __NR_umount2,
    __NR_pivot_root,
    __NR_chroot,
    __NR_setns,
    __NR_kexec_load,
    __NR_init_module,
    __NR_finit_module,
    __NR_delete_module,
    __NR_bpf,
    __NR_perf_event_open,
    __NR_keyctl,
    __NR_add_key,
    __NR_request_key,
    __NR_userfaultfd,
    __NR_swapon,
    __NR_swapoff,
    __NR_reboot,
    __NR_acct,
    __NR_settimeofday,
    __NR_clock_settime,
    __NR_clock_adjtime,
    __NR_open_by_handle_at,
    __NR_name_to_handle_at,
    __NR_quotactl,
    __NR_syslog,
    __NR_lookup_dcookie,
    __NR_vhangup,
    __NR_fanotify_init,
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
#ifdef __NR_iopl
    __NR_iopl,
    __NR_ioperm,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
#ifdef __NR_fsopen
    __NR_fsopen,
    __NR_fsconfig,
    __NR_fsmount,
    __NR_fspick,
    __NR_move_mount,
    __NR_open_tree,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup,
    __NR_io_uring_enter,
    __NR_io_uring_register,
#endif
#ifdef __NR_quotactl_fd
    __NR_quotactl_fd,
#endif
};

// 'low' also loses the calls that reach into other processes of its own tree.
const long kLowDenied[] = {__NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_personality};

}  // namespace

#if defined(__x86_64__)
const uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
const uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "spawn-isolated: seccomp filters are written for x86_64 and aarch64"
#endif

namespace {

// exit / exit_group with a nonzero code, kill / tgkill with SIGABRT: ask (seccomp.h).
void NotifyFailure(std::vector<sock_filter>& f) {
  struct {
    long nr;
    int arg;
    bool abort;
  } const calls[] = {{__NR_exit_group, 0, false}, {__NR_exit, 0, false}, {__NR_kill, 1, true}, {__NR_tgkill, 2, true}};
  for (const auto& c : calls) {
    f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(c.nr), 0, 4));
    f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(offsetof(struct seccomp_data, args[0]) + 8 * c.arg)));
    // exit: any nonzero code (the kernel keeps its low byte); kill: SIGABRT.
    if (c.abort)
      f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SIGABRT, 0, 1));
    else
      f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, 0xff, 0, 1));
    f.push_back(RetNotify());
    f.push_back(LoadNr());
  }
  // mmap(addr, length, prot, flags, ...): private (not MAP_SHARED), writable, length >= kLargeMap.
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 10));
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])));
  f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, 0x2 /* PROT_WRITE */, 0, 7));
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])));
  f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, 0x1 /* MAP_SHARED, MAP_SHARED_VALIDATE */, 5, 0));
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(offsetof(struct seccomp_data, args[1]) + 4)));
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2));  // 4 GiB or more: ask
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])));
  f.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, kLargeMap, 0, 1));
  f.push_back(RetNotify());
  f.push_back(LoadNr());
}

std::vector<sock_filter> Build(const FilterSpec& spec) {
  std::vector<sock_filter> f;
  if (!spec.noChildren && !spec.restricted && !spec.low && !Notifies(spec)) return f;
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(LoadNr());
#if defined(__x86_64__)
  // x32 system calls would bypass the numbers below.
  f.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  f.push_back(RetErrno(ENOSYS));
#endif
  if (spec.notifyExec) NotifyExec(f);
  if (spec.notifyFailure) NotifyFailure(f);
  // clone3 takes its flags in memory a filter cannot read: callers (glibc, Go) fall back to
  // clone on ENOSYS, whose flags can be checked.
  if (spec.noChildren || spec.restricted || spec.notifyChildren) Deny(f, __NR_clone3, ENOSYS);
  if (spec.restricted) {
    DenyFlags(f, __NR_clone, kNamespaceFlags, EPERM);
    DenyFlags(f, __NR_unshare, kNamespaceFlags, EPERM);
    for (long nr : kRestrictedDenied) Deny(f, nr, EPERM);
    DenyIoctls(f, kTerminalInjection, EPERM);
  }
  if (spec.low)
    for (long nr : kLowDenied) Deny(f, nr, EPERM);
  if (spec.noChildren) {
#ifdef __NR_fork
    Deny(f, __NR_fork, EAGAIN);
#endif
#ifdef __NR_vfork
    Deny(f, __NR_vfork, EAGAIN);
#endif
    // clone: allowed only with CLONE_THREAD (as Go's runtime makes its threads).
    f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
    f.push_back(LoadArg0());
    f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
    f.push_back(RetErrno(EAGAIN));
    f.push_back(LoadNr());
  } else if (spec.notifyChildren) {
    // The same shape, asking the launcher where processes: 1 refuses.
#ifdef __NR_fork
    Notify(f, __NR_fork);
#endif
#ifdef __NR_vfork
    Notify(f, __NR_vfork);
#endif
    f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
    f.push_back(LoadArg0());
    f.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
    f.push_back(RetNotify());
    f.push_back(LoadNr());
  }
  f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return f;
}

}  // namespace

std::vector<sock_filter> BuildFilter(const FilterSpec& spec) {
  // Every spawn with the same spec runs the same program: built once.
  static std::mutex mu;
  static std::map<unsigned, std::vector<sock_filter>>* cache = new std::map<unsigned, std::vector<sock_filter>>();
  unsigned key = (spec.noChildren ? 1u : 0u) | (spec.restricted ? 2u : 0u) | (spec.low ? 4u : 0u) | (spec.notifyChildren ? 8u : 0u) |
                 (spec.notifyExec ? 16u : 0u) | (spec.notifyFailure ? 32u : 0u);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, Build(spec)).first;
  return it->second;
}

void PatchExec(std::vector<sock_filter>& prog, const void* path, const void* argv, const void* envp) {
  for (size_t i = 0; i + kExecBlock <= prog.size(); i++) {
    if (prog[i].code != (BPF_JMP | BPF_JEQ | BPF_K) || prog[i].k != __NR_execve || prog[i].jf != 14) continue;
    uint64_t v[3] = {reinterpret_cast<uint64_t>(path), reinterpret_cast<uint64_t>(argv), reinterpret_cast<uint64_t>(envp)};
    for (int arg = 0; arg < 3; arg++)
      for (int half = 0; half < 2; half++) prog[i + 2 + 4 * arg + 2 * half].k = static_cast<uint32_t>(v[arg] >> (32 * half));
    return;
  }
}

}  // namespace posix
}  // namespace si
