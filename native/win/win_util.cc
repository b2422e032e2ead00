#include "win_util.h"

#include <algorithm>

namespace si {
namespace win {

AttributeList::AttributeList(DWORD count) {
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(nullptr, count, 0, &size);
  if (size == 0) ThrowLastError("InitializeProcThreadAttributeList");
  storage_.resize(size);
  auto* list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage_.data());
  if (!InitializeProcThreadAttributeList(list, count, 0, &size)) ThrowLastError("InitializeProcThreadAttributeList");
  list_ = list;
}

AttributeList::~AttributeList() {
  if (list_ != nullptr) DeleteProcThreadAttributeList(list_);
}

std::wstring ToWide(const std::string& s) {
  if (s.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  if (n <= 0) ThrowLastError("MultiByteToWideChar");
  std::wstring w(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0], n);
  return w;
}

std::string ToUtf8(const std::wstring& w) {
  if (w.empty()) return std::string();
  int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
  if (n <= 0) return std::string();
  std::string s(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), &s[0], n, nullptr, nullptr);
  return s;
}

const char* CodeForWin32(DWORD err) {
  switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_DIRECTORY:  // CreateProcess: cwd does not exist
    case ERROR_INVALID_DRIVE:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_NETPATH:
    case ERROR_MOD_NOT_FOUND: return "ENOENT";
    case ERROR_ACCESS_DENIED:
    case ERROR_INVALID_ACCESS:
    case 740:   // ERROR_ELEVATION_REQUIRED
    case 1260:  // ERROR_ACCESS_DISABLED_BY_POLICY: blocked by software restriction / AppLocker
    case 225:   // ERROR_VIRUS_INFECTED
    case 577:   // ERROR_INVALID_IMAGE_HASH: code integrity refused the image
      return "EACCES";
    case ERROR_PRIVILEGE_NOT_HELD: return "EPERM";
    case ERROR_INVALID_HANDLE: return "EBADF";
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_NO_SYSTEM_RESOURCES: return "ENOMEM";
    case ERROR_INVALID_PARAMETER:
    case ERROR_BAD_LENGTH: return "EINVAL";
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH: return "EFTYPE";
    case ERROR_FILENAME_EXCED_RANGE: return "ENAMETOOLONG";
    case ERROR_PIPE_BUSY:
    case ERROR_SHARING_VIOLATION:
    case ERROR_BUSY: return "EBUSY";
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED: return "ENOTSUP";
    case ERROR_TOO_MANY_OPEN_FILES: return "EMFILE";
    case ERROR_NOT_ENOUGH_QUOTA:  // e.g. a job's ActiveProcessLimit refusing a new process
      return "EAGAIN";
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA: return "EPIPE";
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS: return "EEXIST";
    default: return "UNKNOWN";
  }
}

std::string Win32Message(DWORD err) {
  wchar_t* buf = nullptr;
  DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, err, 0,
                           reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::string msg;
  if (n > 0 && buf != nullptr) {
    msg = ToUtf8(std::wstring(buf, n));
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r' || msg.back() == ' ' || msg.back() == '.')) msg.pop_back();
  }
  if (buf != nullptr) LocalFree(buf);
  if (msg.empty()) msg = "Win32 error " + std::to_string(err);
  return msg;
}

SysError Win32Error(const char* syscall, DWORD err, const std::string& context) {
  std::string code = CodeForWin32(err);
  std::string msg = std::string(syscall) + " failed: " + Win32Message(err) + " (Win32 error " + std::to_string(err) + ")";
  if (!context.empty()) msg += ": " + context;
  return SysError(code, static_cast<int64_t>(err), syscall, msg);
}

void ThrowLastError(const char* syscall, const std::string& context) { throw Win32Error(syscall, GetLastError(), context); }

std::wstring QuoteArg(const std::wstring& arg) {
  // An argument needs quotes when it is empty or holds white space or a quote. Inside quotes,
  // backslashes are literal unless they precede a quote: then 2n backslashes + quote stand for
  // n backslashes + a literal quote (escaped), and the closing quote needs its backslashes doubled.
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) return arg;
  std::wstring out = L"\"";
  size_t backslashes = 0;
  for (wchar_t c : arg) {
    if (c == L'\\') {
      backslashes++;
    } else if (c == L'"') {
      out.append(backslashes * 2 + 1, L'\\');
      out.push_back(L'"');
      backslashes = 0;
    } else {
      out.append(backslashes, L'\\');
      out.push_back(c);
      backslashes = 0;
    }
  }
  out.append(backslashes * 2, L'\\');
  out.push_back(L'"');
  return out;
}

std::wstring BuildCommandLine(const std::vector<std::string>& args) {
  std::wstring line;
  for (size_t i = 0; i < args.size(); i++) {
    if (i > 0) line.push_back(L' ');
    line += QuoteArg(ToWide(args[i]));
  }
  return line;
}

namespace {
std::wstring NameOf(const std::wstring& kv) {
  // A leading '=' belongs to the name (cmd.exe's "=C:" entries).
  size_t eq = kv.find(L'=', 1);
  return eq == std::wstring::npos ? kv : kv.substr(0, eq);
}
int CompareNames(const std::wstring& a, const std::wstring& b) {
  int r = CompareStringOrdinal(a.c_str(), static_cast<int>(a.size()), b.c_str(), static_cast<int>(b.size()), TRUE);
  return r - CSTR_EQUAL;
}
}  // namespace

std::vector<wchar_t> BuildEnvironmentBlock(const std::vector<std::string>& env) {
  std::vector<std::wstring> entries;
  entries.reserve(env.size() + 3);
  for (const std::string& e : env) entries.push_back(ToWide(e));
  // Windows programs fail in odd ways without these (libuv adds them the same way).
  static const wchar_t* required[] = {L"SYSTEMROOT", L"SYSTEMDRIVE", L"TEMP"};
  for (const wchar_t* name : required) {
    bool present = std::any_of(entries.begin(), entries.end(), [&](const std::wstring& kv) { return CompareNames(NameOf(kv), name) == 0; });
    if (present) continue;
    wchar_t buf[MAX_PATH];
    DWORD n = GetEnvironmentVariableW(name, buf, MAX_PATH);
    if (n > 0 && n < MAX_PATH) entries.push_back(std::wstring(name) + L"=" + std::wstring(buf, n));
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const std::wstring& a, const std::wstring& b) { return CompareNames(NameOf(a), NameOf(b)) < 0; });
  std::vector<wchar_t> block;
  for (const std::wstring& kv : entries) {
    block.insert(block.end(), kv.begin(), kv.end());
    block.push_back(L'\0');
  }
  if (entries.empty()) block.push_back(L'\0');
  block.push_back(L'\0');
  return block;
}

bool IsWine() {
  static const bool wine = [] {
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    return ntdll != nullptr && GetProcAddress(ntdll, "wine_get_version") != nullptr;
  }();
  return wine;
}

}  // namespace win
}  // namespace si
