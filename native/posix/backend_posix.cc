// POSIX backend placeholder until the Linux implementation lands: validation and
// isolationSupport() work, spawning reports ERR_FEATURE_UNAVAILABLE_ON_PLATFORM.
#include "../contract.h"

namespace si {
namespace backend {

namespace {
const char* kNotYet = "the POSIX backend is not implemented yet";
}

SpawnResult Spawn(const SpawnRequest&, std::shared_ptr<EventSink>) {
  throw SysError("ERR_FEATURE_UNAVAILABLE_ON_PLATFORM", 0, "", std::string("spawnIsolated: ") + kNotYet);
}
void Resume(uint64_t) {}
bool Kill(uint64_t, const std::string&, int) { return false; }
Stats GetStats(uint64_t) { return Stats(); }
void Release(uint64_t) {}
Support Probe() {
  Support s;
  s.backend = "none";
  s.spawn = false;
  s.spawnReason = kNotYet;
  for (const char* name : {"memory.process", "memory.total", "cpu.cores", "cpu.time", "cpu.affinity", "processes", "handles",
                           "privileges", "killOnClose", "inheritHandles"}) {
    SupportEntry e;
    e.limit = name;
    e.mechanism = "none";
    e.reason = kNotYet;
    s.limits.push_back(e);
  }
  return s;
}

}  // namespace backend
}  // namespace si
