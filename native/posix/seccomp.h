// The seccomp filters a worker runs under (built in the parent, installed by the child just
// before exec).
#pragma once

#include <linux/filter.h>
#include <stdint.h>

#include <vector>

namespace si {
namespace posix {

// The architecture the filters are for (seccomp_data.arch).
extern const uint32_t kAuditArch;

struct FilterSpec {
  bool noChildren = false;  // processes: 1: no fork / vfork / clone of a process
  bool restricted = false;  // 'restricted' and 'low': no namespaces, no kernel attack surface
  bool low = false;         // 'low': also no ptrace / process_vm_* / personality
  bool noUnixSockets = false;  // network: 'none': no socket(AF_UNIX) (a host service by path)
};

// The classic-BPF program for `spec`; empty when nothing is to be filtered.
std::vector<sock_filter> BuildFilter(const FilterSpec& spec);

}  // namespace posix
}  // namespace si
