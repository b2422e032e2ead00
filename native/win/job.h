// Job objects: one per worker (nested in its group's), limits set and read back, accounting.
#pragma once

#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

struct JobPlan {
  std::vector<Enforcement> enforcement;
  uint32_t handlesLimit = 0;                        // > 0: the monitor's watchdog keeps it
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION extended{};  // as set (a host may not read it back)
};

// `bytes` rounded down to whole pages (never below one page: never above what was asked), as
// the kernel keeps job memory limits; false when that does not fit `SizeT` (SIZE_T: 32 bits in
// an ia32 build).
template <typename SizeT>
bool JobBytes(uint64_t bytes, uint64_t page, SizeT* out) {
  uint64_t whole = bytes / page * page;
  if (whole == 0) whole = page;
  if (whole > static_cast<uint64_t>(static_cast<SizeT>(~static_cast<SizeT>(0)))) return false;
  *out = static_cast<SizeT>(whole);
  return true;
}

// A new job whose messages reach `port` under `key`.
UniqueHandle MakeJob(HANDLE port, ULONG_PTR key);
// Applies every requested limit to `job` and reads it back. Returns what is enforced.
// `parentCores`: what the job it nests in allows (its CPU rate is a share of that).
JobPlan ApplyLimits(HANDLE job, const Limits& l, bool killOnClose, double parentCores);
// The CPU rate (1..10000) that gives `cores` inside a parent allowing `parentCores`; 0 (with
// why) when it cannot be expressed.
DWORD CpuRateFor(double cores, double parentCores, std::string* why);
// Logical processors per processor group, in group order (CPU numbers count across them).
std::vector<uint32_t> ProcessorGroupSizes();
// CPU numbers to one GROUP_AFFINITY per group used; ERR_OUT_OF_RANGE for a CPU not there.
std::vector<GROUP_AFFINITY> GroupAffinities(const std::vector<uint32_t>& cpus, const std::vector<uint32_t>& groupSizes);
// The cores this process's own job lets its nested jobs use (the machine's, without a cap).
double OwnJobCores();
// The variable that tells a worker what the jobs around its own allow of the CPU, where they cap
// it: a process can query only its innermost job, whose CPU rate is a share of its parent's
// capacity, not of the machine (the Go module's Read() multiplies the two).
constexpr const char* kCpuBaseEnv = "SPAWN_ISOLATED_CPU_BASE";
// Its value for `base` cores on a machine of `logical` processors: "" when nothing caps them.
std::string CpuBaseValue(double base, double logical);
// What a job's own accounting says (a worker's job, or a group's, which includes its members').
Stats JobStats(HANDLE job);

}  // namespace win
}  // namespace si
