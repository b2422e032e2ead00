#include "../internals.h"

#include "win_util.h"

namespace si {
namespace internals {

std::string CommandLine(const std::vector<std::string>& args) { return win::ToUtf8(win::BuildCommandLine(args)); }

std::vector<std::string> EnvironmentBlock(const std::vector<std::string>& env) {
  std::vector<wchar_t> block = win::BuildEnvironmentBlock(env);
  std::vector<std::string> out;
  std::wstring cur;
  for (wchar_t ch : block) {
    if (ch != 0) {
      cur.push_back(ch);
      continue;
    }
    if (cur.empty()) break;  // the second NUL of the block's end
    out.push_back(win::ToUtf8(cur));
    cur.clear();
  }
  return out;
}

std::string Win32Code(uint32_t err) { return win::CodeForWin32(err); }

}  // namespace internals
}  // namespace si
