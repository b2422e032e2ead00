// Pure parsers for /proc/self/mountinfo and /proc/<pid>/cgroup (no I/O: tested directly).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace si {
namespace posix {

struct MountEntry {
  std::string point;    // where it is mounted (octal escapes such as \040 decoded)
  std::string type;     // file system type: "cgroup", "cgroup2", "proc", ...
  std::string options;  // super-block options ("rw,cpu", ...)
};
std::vector<MountEntry> ParseMountInfo(const std::string& text);

// The mount point of the first mount of `type` whose options include `option` (any when
// empty), or "".
std::string MountPointOf(const std::vector<MountEntry>& mounts, const std::string& type, const std::string& option);

struct ProcCgroup {
  std::string unified;                              // the cgroup v2 path ("0::PATH"), "" when none
  std::map<std::string, std::string> byController;  // v1: controller -> path
};
ProcCgroup ParseProcCgroup(const std::string& text);

}  // namespace posix
}  // namespace si
