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
#include <sys/random.h>
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

#include "sys.h"

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
sock_filter RetNotify() { return Stmt(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF); }

sock_filter RetAllow() { return Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW); }
sock_filter LoadArg(int arg, int half = 0) {
  return Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(offsetof(struct seccomp_data, args[0]) + 8 * arg + 4 * half));
}

// What a run of system calls gets: their numbers (nr to last, consecutive), and the instructions
// that decide them (entered with the number in A; every path ends in a RET).
struct Rule {
  uint32_t nr, last;
  std::vector<sock_filter> body;
};

bool SameInstruction(const sock_filter& a, const sock_filter& b) { return a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k; }
bool OneReturn(const std::vector<sock_filter>& body) { return body.size() == 1 && BPF_CLASS(body[0].code) == BPF_RET; }

// A body that only returns `ret`. Bodies are short (the leaf groups' jumps are 8-bit).
std::vector<sock_filter> Returns(sock_filter ret) { return {ret}; }

// Where a startsWorker program compares clone's TLS argument with the spawn's key (PatchCloneKey).
constexpr uint32_t kKeyLowMarker = 0x6b65796cU, kKeyHighMarker = 0x6b657968U;

// clone: namespace flags refused (restricted); a process (no CLONE_THREAD) refused (processes:
// 1) or asked about (processes: N), unless it is the first process's start of the worker (its
// TLS argument is the key: startsWorker); threads pass.
std::vector<sock_filter> CloneBody(bool namespaces, bool noChildren, bool notify, bool startsWorker) {
  std::vector<sock_filter> b = {LoadArg(0)};
  if (namespaces) {
    b.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1));
    b.push_back(RetErrno(EPERM));
  }
  if (noChildren || notify) {
    sock_filter refuse = noChildren ? RetErrno(EAGAIN) : RetNotify();
    if (startsWorker) {
      // A: flags. Thread: allow (+6). Else the key's halves (patched in per spawn), then allow;
      // any other: refuse.
      b.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 5, 0));
      b.push_back(LoadArg(kCloneTlsArg));
      b.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kKeyLowMarker, 0, 2));
      b.push_back(LoadArg(kCloneTlsArg, 1));
      b.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kKeyHighMarker, 1, 0));
      b.push_back(refuse);
    } else {
      b.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
      b.push_back(refuse);
    }
  }
  b.push_back(RetAllow());
  return b;
}

// unshare with a namespace flag: EPERM.
std::vector<sock_filter> UnshareBody() {
  return {LoadArg(0), Jump(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1), RetErrno(EPERM), RetAllow()};
}

// The terminal requests below (ioctl's second argument, its low 32 bits: the kernel takes the
// request as an unsigned int whatever the upper half holds), on any fd: EPERM.
std::vector<sock_filter> IoctlBody(const std::vector<uint32_t>& requests) {
  std::vector<sock_filter> b = {LoadArg(1)};
  for (uint32_t r : requests) {
    b.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, r, 0, 1));
    b.push_back(RetErrno(EPERM));
  }
  b.push_back(RetAllow());
  return b;
}

// execve asks the launcher unless it is the worker's own (its plan's three pointers, patched in
// by PatchExec: after that exec the address space is new, and a later caller that passed the
// same three values would only stay in its parent's memory cgroup, a stricter budget). 14
// instructions; the k of each JEQ is patched (PatchExec finds the body by kExecMarker).
constexpr uint32_t kExecMarker = 0x5e1fe8ecU;
std::vector<sock_filter> ExecveBody() {
  std::vector<sock_filter> b;
  for (int arg = 0; arg < 3; arg++)
    for (int half = 0; half < 2; half++) {
      b.push_back(LoadArg(arg, half));
      // To RET_USER_NOTIF (the body's last instruction) when it differs.
      uint8_t toNotify = static_cast<uint8_t>(12 - (1 + 4 * arg + 2 * half));
      b.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kExecMarker, 0, toNotify));
    }
  b.push_back(RetAllow());
  b.push_back(RetNotify());
  return b;
}

// exit / exit_group with a nonzero code (the kernel keeps its low byte), kill / tgkill with
// SIGABRT (abort()): ask (seccomp.h: notifyFailure).
std::vector<sock_filter> FailureBody(int arg, bool abort) {
  return {LoadArg(arg), abort ? Jump(BPF_JMP | BPF_JEQ | BPF_K, SIGABRT, 0, 1) : Jump(BPF_JMP | BPF_JSET | BPF_K, 0xff, 0, 1), RetNotify(),
          RetAllow()};
}

// mmap(addr, length, prot, flags, ...): private (not MAP_SHARED), writable, length >= kLargeMap.
// One instruction a line.
// clang-format off
std::vector<sock_filter> MmapBody() {
  return {
      LoadArg(2),
      Jump(BPF_JMP | BPF_JSET | BPF_K, 0x2 /* PROT_WRITE */, 0, 7),
      LoadArg(3),
      Jump(BPF_JMP | BPF_JSET | BPF_K, 0x1 /* MAP_SHARED, MAP_SHARED_VALIDATE */, 5, 0),
      LoadArg(1, 1),
      Jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),  // 4 GiB or more: ask
      LoadArg(1),
      Jump(BPF_JMP | BPF_JGE | BPF_K, kLargeMap, 0, 1),
      RetNotify(),
      RetAllow(),
  };
}
// clang-format on

// The leaf for rules[lo, hi): the tests, RET ALLOW, then the distinct bodies. A single number:
// JEQ to its body. A run: below its first number, no later rule of the group matches either
// (they are sorted): to RET ALLOW; above its last, on to the next test; else its body. False
// when a jump would not fit its 8 bits (long bodies): the caller splits the group then.
bool Leaf(const std::vector<Rule>& rules, size_t lo, size_t hi, std::vector<sock_filter>& out) {
  std::vector<size_t> bodyOf(hi - lo);
  std::vector<const std::vector<sock_filter>*> bodies;
  for (size_t i = lo; i < hi; i++) {
    size_t b = bodies.size();
    if (OneReturn(rules[i].body))
      for (size_t j = 0; j < bodies.size(); j++)
        if (OneReturn(*bodies[j]) && SameInstruction((*bodies[j])[0], rules[i].body[0])) b = j;
    if (b == bodies.size()) bodies.push_back(&rules[i].body);
    bodyOf[i - lo] = b;
  }
  size_t tests = 0;
  for (size_t i = lo; i < hi; i++) tests += rules[i].nr == rules[i].last ? 1 : 2;
  std::vector<size_t> bodyAt(bodies.size());
  size_t at = tests + 1;
  for (size_t b = 0; b < bodies.size(); b++) {
    bodyAt[b] = at;
    at += bodies[b]->size();
  }
  // The farthest jump: from the first test to the last body's start (a group of one always fits).
  if (bodyAt.back() - 1 > 255) return false;
  auto off = [](size_t from, size_t to) { return static_cast<uint8_t>(to - from - 1); };
  for (size_t i = lo; i < hi; i++) {
    size_t pc = out.size(), body = bodyAt[bodyOf[i - lo]];
    if (rules[i].nr == rules[i].last) {
      out.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, rules[i].nr, off(pc, body), 0));
    } else {
      out.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, rules[i].nr, 0, off(pc, tests)));
      out.push_back(Jump(BPF_JMP | BPF_JGT | BPF_K, rules[i].last, 0, off(pc + 1, body)));
    }
  }
  out.push_back(RetAllow());
  for (const auto* b : bodies) out.insert(out.end(), b->begin(), b->end());
  return true;
}

// A binary search over the rules' numbers (sorted, disjoint runs), each leaf group a few tests
// with their bodies after them; numbers without a rule are allowed. Self-contained: every jump
// stays inside. The kernel JITs the program and emulates it for every number when it is
// installed (its per-syscall action cache, 5.11+), per instruction: a tree keeps that, and each
// filtered call, short, and so do runs of numbers that get the same return (one range test for
// mount, umount2, swapon, swapoff, reboot, acct and settimeofday) and a return shared by the
// group's rules that end in it.
std::vector<sock_filter> Tree(const std::vector<Rule>& rules, size_t lo, size_t hi) {
  std::vector<sock_filter> out;
  if (hi - lo <= 4 && Leaf(rules, lo, hi, out)) return out;
  size_t mid = (lo + hi) / 2;
  std::vector<sock_filter> left = Tree(rules, lo, mid), right = Tree(rules, mid, hi);
  if (left.size() <= 255) {
    out.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, rules[mid].nr, static_cast<uint8_t>(left.size()), 0));
  } else {
    out.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, rules[mid].nr, 0, 1));
    out.push_back(Stmt(BPF_JMP | BPF_JA, static_cast<uint32_t>(left.size())));
  }
  out.insert(out.end(), left.begin(), left.end());
  out.insert(out.end(), right.begin(), right.end());
  return out;
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

std::vector<sock_filter> Build(const FilterSpec& spec) {
  if (!spec.noChildren && !spec.restricted && !spec.low && !spec.noUnixSockets && !Notifies(spec)) return {};
  std::map<uint32_t, std::vector<sock_filter>> rules;
  auto add = [&](long nr, std::vector<sock_filter> body) { rules[static_cast<uint32_t>(nr)] = std::move(body); };
  // clone3 takes its flags in memory a filter cannot read: callers (glibc, Go) fall back to
  // clone on ENOSYS, whose flags can be checked.
  if (spec.noChildren || spec.restricted || spec.notifyChildren) add(__NR_clone3, Returns(RetErrno(ENOSYS)));
  if (spec.restricted || spec.noChildren || spec.notifyChildren)
    add(__NR_clone, CloneBody(spec.restricted, spec.noChildren, spec.notifyChildren, spec.startsWorker));
  if (spec.restricted) {
    add(__NR_unshare, UnshareBody());
    for (long nr : kRestrictedDenied) add(nr, Returns(RetErrno(EPERM)));
    add(__NR_ioctl, IoctlBody(kTerminalInjection));
  }
  if (spec.low)
    for (long nr : kLowDenied) add(nr, Returns(RetErrno(EPERM)));
  // network: 'none': a Unix socket reaches by path what its network namespace keeps out (a
  // host service's socket file); socketpair still works.
  if (spec.noUnixSockets)
    add(__NR_socket, {LoadArg(0), Jump(BPF_JMP | BPF_JEQ | BPF_K, 1 /* AF_UNIX */, 0, 1), RetErrno(EACCES), RetAllow()});
  if (spec.noChildren || spec.notifyChildren) {
    sock_filter ret = spec.noChildren ? RetErrno(EAGAIN) : RetNotify();
#ifdef __NR_fork
    add(__NR_fork, Returns(ret));
#endif
#ifdef __NR_vfork
    add(__NR_vfork, Returns(ret));
#endif
  }
  if (spec.notifyExec) {
    add(__NR_execve, ExecveBody());
    add(__NR_execveat, Returns(RetNotify()));
  }
  if (spec.notifyFailure) {
    add(__NR_exit_group, FailureBody(0, false));
    add(__NR_exit, FailureBody(0, false));
    add(__NR_kill, FailureBody(1, true));
    add(__NR_tgkill, FailureBody(2, true));
    add(__NR_mmap, MmapBody());
  }

  std::vector<sock_filter> f;
  f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(LoadNr());
#if defined(__x86_64__)
  // x32 system calls would bypass the numbers below.
  f.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  f.push_back(RetErrno(ENOSYS));
#endif
  // Consecutive numbers that only return the same are one rule.
  std::vector<Rule> sorted;
  for (auto& kv : rules) {
    if (!sorted.empty() && sorted.back().last + 1 == kv.first && OneReturn(sorted.back().body) && OneReturn(kv.second) &&
        SameInstruction(sorted.back().body[0], kv.second[0])) {
      sorted.back().last = kv.first;
      continue;
    }
    sorted.push_back({kv.first, kv.first, std::move(kv.second)});
  }
  std::vector<sock_filter> tree = Tree(sorted, 0, sorted.size());
  f.insert(f.end(), tree.begin(), tree.end());
  return f;
}

}  // namespace

std::vector<sock_filter> BuildFilter(const FilterSpec& spec) {
  // Every spawn with the same spec runs the same program: built once. The key has a bit for
  // every field (a field left out would hand one spec's program to another).
  static_assert(sizeof(FilterSpec) == 8, "FilterSpec changed: give each field a bit of the key below");
  static std::mutex mu;
  static std::map<unsigned, std::vector<sock_filter>>* cache = new std::map<unsigned, std::vector<sock_filter>>();
  unsigned key = (spec.noChildren ? 1u : 0u) | (spec.restricted ? 2u : 0u) | (spec.low ? 4u : 0u) | (spec.notifyChildren ? 8u : 0u) |
                 (spec.notifyExec ? 16u : 0u) | (spec.notifyFailure ? 32u : 0u) | (spec.noUnixSockets ? 64u : 0u) |
                 (spec.startsWorker ? 128u : 0u);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, Build(spec)).first;
  return it->second;
}

uint64_t NewCloneKey() {
  uint64_t k = 0;
  return RandomBytes(&k, sizeof(k), GRND_NONBLOCK) ? k : 0;
}

void PatchCloneKey(std::vector<sock_filter>& prog, uint64_t key) {
  for (sock_filter& ins : prog) {
    if (ins.code != (BPF_JMP | BPF_JEQ | BPF_K)) continue;
    if (ins.k == kKeyLowMarker)
      ins.k = static_cast<uint32_t>(key);
    else if (ins.k == kKeyHighMarker)
      ins.k = static_cast<uint32_t>(key >> 32);
  }
}

void PatchExec(std::vector<sock_filter>& prog, const void* path, const void* argv, const void* envp) {
  uint64_t v[3] = {reinterpret_cast<uint64_t>(path), reinterpret_cast<uint64_t>(argv), reinterpret_cast<uint64_t>(envp)};
  int n = 0;
  for (sock_filter& ins : prog) {
    if (ins.code != (BPF_JMP | BPF_JEQ | BPF_K) || ins.k != kExecMarker || n >= 6) continue;
    ins.k = static_cast<uint32_t>(v[n / 2] >> (32 * (n % 2)));
    n++;
  }
}

}  // namespace posix
}  // namespace si
