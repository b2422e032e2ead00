// The pure pieces of each backend, exported (as `internals`) so that tests can check them
// directly, without spawning: the way libuv's test-spawn.c tests its argument quoting.
// Plain C++: addon.cc wraps them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace si {
namespace internals {

#ifdef _WIN32
// The command line for `args` (UTF-8 in, UTF-8 out), as CreateProcessW gets it.
std::string CommandLine(const std::vector<std::string>& args);
// The environment block for "NAME=value" entries: entries in block order, without the NULs.
std::vector<std::string> EnvironmentBlock(const std::vector<std::string>& env);
// Node's code for a Win32 error, and the errno it reports.
std::string Win32Code(uint32_t err);
// The job CPU rate for `cores` inside a parent allowing `parentCores` (0 and why: not expressible).
uint32_t CpuRate(double cores, double parentCores, std::string* why);
// CPU numbers to (group, mask) pairs for processor groups of `groupSizes` (throws SysError).
std::vector<std::pair<uint32_t, uint64_t> > GroupAffinity(const std::vector<uint32_t>& cpus, const std::vector<uint32_t>& groupSizes);
// For a sequence of job limit messages {msg, pid, fromGroup}: which ones are new hits (not the
// group's echo of a member's message).
std::vector<bool> LimitEchoes(const std::vector<std::vector<uint32_t> >& messages);
// Where private temp directories go (GetTempPath2W, else GetTempPathW).
std::string TempBase();
// Makes a private temp directory (this user and SYSTEM) in `base` as a spawn does, trying
// `firstName` first; returns its path (throws SysError).
std::string MakeTempDir(const std::string& base, const std::string& firstName);
// Whether a temp base's entry `name` is a leftover of a launcher that no longer runs.
bool IsTempLeftover(const std::string& name);
// The handle watchdog's verdict on a listed process it could not open (Win32 error `err`):
// true when it is gone (not a violation).
bool WatchdogUnopenedIsGone(uint32_t err, bool stillListed);
// A job memory limit for `bytes` as a `bits`-bit (32 or 64) build sets it, in 4 KiB pages
// (throws ERR_OUT_OF_RANGE where a 32-bit SIZE_T cannot hold it).
uint64_t JobMemoryBytes(uint64_t bytes, int bits);
// The console a hidden worker gets: "no-window" (CREATE_NO_WINDOW) or "detached" (DETACHED_PROCESS).
std::string HiddenConsole(bool wine, uint32_t processesBudget);
#else
struct Mount {
  std::string point, type, options;
};
std::vector<Mount> MountInfo(const std::string& text);
// "unified" for the v2 path, else controller names, each with its path.
std::vector<std::pair<std::string, std::string> > ProcCgroup(const std::string& text);
struct BpfInsn {
  uint16_t code;
  uint8_t jt, jf;
  uint32_t k;
};
// The program for a FilterSpec: noChildren, restricted, low, and `more`'s bits: 1 notifyChildren,
// 2 notifyExec, 4 notifyFailure, 8 noUnixSockets, 16 startsWorker.
std::vector<BpfInsn> SeccompFilter(bool noChildren, bool restricted, bool low, uint32_t more);
uint32_t AuditArch();
// Removes every used cgroup now (they go in the background otherwise); the names of the fresh
// ones kept ready.
std::vector<std::string> SettleCgroups();
// The paths whose fds the launcher keeps open (ReadKept / WriteKept).
std::vector<std::string> KeptFiles();
#endif

}  // namespace internals
}  // namespace si
