#include "../internals.h"

#include "cgroup_pool.h"
#include "monitor.h"
#include "mountinfo.h"
#include "seccomp.h"

namespace si {
namespace internals {

std::vector<Mount> MountInfo(const std::string& text) {
  std::vector<Mount> out;
  for (const posix::MountEntry& m : posix::ParseMountInfo(text)) out.push_back({m.point, m.type, m.options});
  return out;
}

std::vector<std::pair<std::string, std::string>> ProcCgroup(const std::string& text) {
  posix::ProcCgroup p = posix::ParseProcCgroup(text);
  std::vector<std::pair<std::string, std::string>> out;
  if (!p.unified.empty()) out.emplace_back("unified", p.unified);
  for (auto& kv : p.byController) out.emplace_back(kv.first, kv.second);
  return out;
}

std::vector<BpfInsn> SeccompFilter(bool noChildren, bool restricted, bool low, uint32_t more) {
  posix::FilterSpec spec;
  spec.noChildren = noChildren;
  spec.restricted = restricted;
  spec.low = low;
  spec.notifyChildren = (more & 1) != 0;
  spec.notifyExec = (more & 2) != 0;
  spec.notifyFailure = (more & 4) != 0;
  spec.noUnixSockets = (more & 8) != 0;
  spec.startsWorker = (more & 16) != 0;
  std::vector<BpfInsn> out;
  for (const sock_filter& f : posix::BuildFilter(spec)) out.push_back({f.code, f.jt, f.jf, f.k});
  return out;
}

uint32_t AuditArch() { return posix::kAuditArch; }

std::vector<std::string> SettleCgroups() {
  posix::Monitor::Get().SettleTeardowns();
  posix::CgroupPool::Get().Settle();
  return posix::CgroupPool::Get().ReadyDirs();
}

std::vector<std::string> KeptFiles() { return posix::KeptPaths(); }

}  // namespace internals
}  // namespace si
