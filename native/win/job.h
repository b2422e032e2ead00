// Job objects: one per worker (nested in its group's), limits set and read back, accounting.
#pragma once

#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

struct JobPlan {
  std::vector<Enforcement> enforcement;
  uint32_t handlesLimit = 0;  // > 0: the monitor's watchdog keeps it
};

// A new job whose messages reach `port` under `key`.
UniqueHandle MakeJob(HANDLE port, ULONG_PTR key);
// Applies every requested limit to `job` and reads it back. Returns what is enforced.
JobPlan ApplyLimits(HANDLE job, const Limits& l, bool killOnClose);
// What a job's own accounting says (a worker's job, or a group's, which includes its members').
Stats JobStats(HANDLE job);

}  // namespace win
}  // namespace si
