#include "../internals.h"

#include "job.h"
#include "monitor.h"
#include "stdio_handles.h"
#include "temp_dir.h"
#include "token.h"
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

uint32_t CpuRate(double cores, double parentCores, std::string* why) { return win::CpuRateFor(cores, parentCores, why); }

std::vector<std::pair<uint32_t, uint64_t> > GroupAffinity(const std::vector<uint32_t>& cpus, const std::vector<uint32_t>& groupSizes) {
  std::vector<std::pair<uint32_t, uint64_t> > out;
  for (const GROUP_AFFINITY& a : win::GroupAffinities(cpus, groupSizes)) out.emplace_back(a.Group, static_cast<uint64_t>(a.Mask));
  return out;
}

std::vector<bool> LimitEchoes(const std::vector<std::vector<uint32_t> >& messages) {
  win::LimitEchoes echoes;
  std::vector<bool> out;
  for (const std::vector<uint32_t>& m : messages) out.push_back(m.size() == 3 && echoes.Admit(m[0], m[1], m[2] != 0));
  return out;
}

std::string TempBase() { return win::ToUtf8(win::TempBase()); }

std::string MakeTempDir(const std::string& base, const std::string& firstName) {
  std::vector<BYTE> system(SECURITY_MAX_SID_SIZE);
  DWORD size = static_cast<DWORD>(system.size());
  if (!CreateWellKnownSid(WinLocalSystemSid, nullptr, system.data(), &size)) win::ThrowLastError("CreateWellKnownSid");
  std::vector<PSID> sids{reinterpret_cast<PSID>(const_cast<BYTE*>(win::ProcessUserSid().data())), reinterpret_cast<PSID>(system.data())};
  return win::ToUtf8(win::MakePrivateDir(win::ToWide(base), sids, L"", win::ToWide(firstName)).path);
}

bool IsTempLeftover(const std::string& name) { return win::IsLeftover(win::ToWide(name)); }

bool WatchdogUnopenedIsGone(uint32_t err, bool stillListed) { return win::UnopenedIsGone(err, stillListed); }

uint64_t JobMemoryBytes(uint64_t bytes, int bits) {
  uint32_t small = 0;
  uint64_t large = 0;
  bool ok = bits == 32 ? win::JobBytes(bytes, 4096, &small) : win::JobBytes(bytes, 4096, &large);
  if (!ok) throw SysError("ERR_OUT_OF_RANGE", 0, "", std::to_string(bytes) + " bytes do not fit a " + std::to_string(bits) + "-bit SIZE_T");
  return bits == 32 ? small : large;
}

}  // namespace internals
}  // namespace si

namespace si {
namespace internals {
std::string HiddenConsole(bool wine, uint32_t processes) {
  return win::HiddenConsoleFlags(wine, processes) == DETACHED_PROCESS ? "detached" : "no-window";
}
}  // namespace internals
}  // namespace si
