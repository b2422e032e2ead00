#include "mountinfo.h"

#include <sstream>

namespace si {
namespace posix {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<MountEntry> ParseMountInfo(const std::string& text) {
  std::vector<MountEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream left(line.substr(0, sep)), right(line.substr(sep + 3));
    std::string id, parent, dev, root, point, type, source, opts;
    if (!(left >> id >> parent >> dev >> root >> point) || !(right >> type >> source)) continue;
    right >> opts;
    out.push_back({Unescape(point), type, opts});
  }
  return out;
}

std::string MountPointOf(const std::vector<MountEntry>& mounts, const std::string& type, const std::string& option) {
  for (const MountEntry& m : mounts) {
    if (m.type != type) continue;
    if (!option.empty() && ("," + m.options + ",").find("," + option + ",") == std::string::npos) continue;
    return m.point;
  }
  return "";
}

ProcCgroup ParseProcCgroup(const std::string& text) {
  ProcCgroup out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // ID:CONTROLLERS:PATH (PATH may itself contain ':')
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (ctrls.empty()) {
      out.unified = path;
      continue;
    }
    std::istringstream cs(ctrls);
    std::string c;
    while (std::getline(cs, c, ',')) out.byController[c] = path;
  }
  return out;
}

}  // namespace posix
}  // namespace si
