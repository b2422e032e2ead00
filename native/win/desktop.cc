#include "desktop.h"

#include <mutex>

#include "janitor.h"

namespace si {
namespace win {
namespace {

// One DACL edit at a time in this process (read, modify, write back).
std::mutex& DaclMutex() {
  static std::mutex* m = new std::mutex();  // never destroyed: used from the monitor's thread
  return *m;
}

struct LocalMem {
  PSECURITY_DESCRIPTOR p = nullptr;
  ~LocalMem() {
    if (p != nullptr) LocalFree(p);
  }
};

bool SameSid(PSID a, const std::vector<BYTE>& b) {
  return IsValidSid(a) && GetLengthSid(a) == b.size() && EqualSid(a, reinterpret_cast<PSID>(const_cast<BYTE*>(b.data())));
}

// `dacl` with every ACE for `sid` left out, and (when `mask` is not 0) one allowing `mask` to it
// appended. Error code or 0.
DWORD Rebuild(PACL dacl, const std::vector<BYTE>& sid, DWORD mask, std::vector<BYTE>* out) {
  ACL_SIZE_INFORMATION info{};
  if (!GetAclInformation(dacl, &info, sizeof(info), AclSizeInformation)) return GetLastError();
  DWORD size = info.AclBytesInUse + sizeof(ACCESS_ALLOWED_ACE) + static_cast<DWORD>(sid.size());
  out->assign(size, 0);
  PACL acl = reinterpret_cast<PACL>(out->data());
  if (!InitializeAcl(acl, size, ACL_REVISION)) return GetLastError();
  for (DWORD i = 0; i < info.AceCount; i++) {
    void* ace = nullptr;
    if (!GetAce(dacl, i, &ace)) return GetLastError();
    auto* header = static_cast<ACE_HEADER*>(ace);
    if ((header->AceType == ACCESS_ALLOWED_ACE_TYPE || header->AceType == ACCESS_DENIED_ACE_TYPE) &&
        SameSid(&static_cast<ACCESS_ALLOWED_ACE*>(ace)->SidStart, sid))
      continue;
    if (!AddAce(acl, ACL_REVISION, MAXDWORD, ace, header->AceSize)) return GetLastError();
  }
  if (mask != 0 && !AddAccessAllowedAce(acl, ACL_REVISION, mask, reinterpret_cast<PSID>(const_cast<BYTE*>(sid.data()))))
    return GetLastError();
  return 0;
}

// Adds (mask != 0) or removes (mask == 0) the ACE. `noDacl`: the object has none.
DWORD Edit(HANDLE h, SE_OBJECT_TYPE type, const std::vector<BYTE>& sid, DWORD mask, bool* noDacl) {
  std::lock_guard<std::mutex> lock(DaclMutex());
  PACL dacl = nullptr;
  LocalMem sd;
  DWORD err = GetSecurityInfo(h, type, DACL_SECURITY_INFORMATION, nullptr, nullptr, &dacl, nullptr, &sd.p);
  if (err != ERROR_SUCCESS) return err;
  if (dacl == nullptr) {
    *noDacl = true;  // no DACL: everyone has every access
    return 0;
  }
  std::vector<BYTE> acl;
  err = Rebuild(dacl, sid, mask, &acl);
  if (err != 0) return err;
  return SetSecurityInfo(h, type, DACL_SECURITY_INFORMATION, nullptr, nullptr, reinterpret_cast<PACL>(acl.data()), nullptr);
}

using NtOpenDirectoryObjectFn = LONG(NTAPI*)(HANDLE*, ACCESS_MASK, void*);

struct UnicodeString {
  USHORT Length, MaximumLength;
  PWSTR Buffer;
};
struct ObjectAttributes {
  ULONG Length;
  HANDLE RootDirectory;
  UnicodeString* ObjectName;
  ULONG Attributes;
  PVOID SecurityDescriptor, SecurityQualityOfService;
};

// This session's named-object directory (\Sessions\<id>\BaseNamedObjects; session 0:
// \BaseNamedObjects), opened to edit its DACL.
UniqueHandle OpenSessionNamespace(DWORD* err) {
  static const NtOpenDirectoryObjectFn open = [] {
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    return ntdll == nullptr
               ? nullptr
               : reinterpret_cast<NtOpenDirectoryObjectFn>(reinterpret_cast<void*>(GetProcAddress(ntdll, "NtOpenDirectoryObject")));
  }();
  DWORD session = 0;
  ProcessIdToSessionId(GetCurrentProcessId(), &session);
  std::wstring name = session == 0 ? L"\\BaseNamedObjects" : L"\\Sessions\\" + std::to_wstring(session) + L"\\BaseNamedObjects";
  UnicodeString us{static_cast<USHORT>(name.size() * sizeof(wchar_t)), static_cast<USHORT>(name.size() * sizeof(wchar_t)), &name[0]};
  ObjectAttributes oa{sizeof(ObjectAttributes), nullptr, &us, 0x40 /* OBJ_CASE_INSENSITIVE */, nullptr, nullptr};
  HANDLE h = nullptr;
  LONG status = open == nullptr ? -1 : open(&h, READ_CONTROL | WRITE_DAC, &oa);
  if (status != 0) {
    *err = status == -1 ? ERROR_PROC_NOT_FOUND : ERROR_ACCESS_DENIED;
    return UniqueHandle();
  }
  return UniqueHandle(h);
}

}  // namespace

std::unique_ptr<ObjectGrant> ObjectGrant::Add(const std::wstring& what, std::shared_ptr<void> object, HANDLE h, SE_OBJECT_TYPE type,
                                              const std::vector<BYTE>& sid, DWORD mask, std::string* why) {
  bool noDacl = false;
  DWORD err = Edit(h, type, sid, mask, &noDacl);
  if (err != 0 || noDacl) {
    *why = ToUtf8(what) + (noDacl ? ": it has no DACL (everyone has access)" : ": " + Win32Message(err));
    return nullptr;
  }
  std::unique_ptr<ObjectGrant> g(new ObjectGrant());
  g->what_ = what;
  g->object_ = std::move(object);
  g->h_ = h;
  g->type_ = type;
  g->sid_ = sid;
  return g;
}

ObjectGrant::~ObjectGrant() {
  if (left_) return;
  bool noDacl = false;
  DWORD err = Edit(h_, type_, sid_, 0, &noDacl);
  if (err != 0) DebugLine("could not remove a worker's access to " + ToUtf8(what_) + ": " + Win32Message(err));
}

Revocables GrantSessionObjects(const std::vector<BYTE>& workerSid) {
  Revocables grants;
  std::string why;
  auto keep = [&](std::unique_ptr<ObjectGrant> g) {
    if (g)
      grants.push_back(std::move(g));
    else
      DebugLine("a restricted worker gets no access to " + why);
  };
  constexpr DWORD kEdit = READ_CONTROL | WRITE_DAC;
  wchar_t name[256];
  DWORD len = 0;
  // The window station and desktop this process uses, opened again by name with the rights to
  // edit their DACLs (the handles this process has may lack them; these are closed at the end).
  HWINSTA own = GetProcessWindowStation();
  if (own != nullptr && GetUserObjectInformationW(own, UOI_NAME, name, sizeof(name), &len)) {
    HWINSTA ws = OpenWindowStationW(name, FALSE, kEdit);
    if (ws != nullptr) {
      std::shared_ptr<void> h(ws, [](void* p) { CloseWindowStation(static_cast<HWINSTA>(p)); });
      keep(ObjectGrant::Add(L"the window station " + std::wstring(name), h, ws, SE_WINDOW_OBJECT, workerSid, kWorkerWinstaAccess, &why));
    } else {
      why = "the window station " + ToUtf8(name) + ": OpenWindowStationW: " + Win32Message(GetLastError());
      keep(nullptr);
    }
  }
  HDESK desk = GetThreadDesktop(GetCurrentThreadId());
  if (desk != nullptr && GetUserObjectInformationW(desk, UOI_NAME, name, sizeof(name), &len)) {
    HDESK d = OpenDesktopW(name, 0, FALSE, kEdit);
    if (d != nullptr) {
      std::shared_ptr<void> h(d, [](void* p) { CloseDesktop(static_cast<HDESK>(p)); });
      keep(ObjectGrant::Add(L"the desktop " + std::wstring(name), h, d, SE_WINDOW_OBJECT, workerSid, kWorkerDesktopAccess, &why));
    } else {
      why = "the desktop " + ToUtf8(name) + ": OpenDesktopW: " + Win32Message(GetLastError());
      keep(nullptr);
    }
  }
  DWORD err = 0;
  UniqueHandle ns = OpenSessionNamespace(&err);
  if (ns.valid()) {
    HANDLE raw = ns.release();
    std::shared_ptr<void> h(raw, [](void* p) { CloseHandle(p); });
    keep(ObjectGrant::Add(L"BaseNamedObjects", h, raw, SE_KERNEL_OBJECT, workerSid, kWorkerDirectoryAccess, &why));
  } else {
    why = "BaseNamedObjects: NtOpenDirectoryObject: " + Win32Message(err);
    keep(nullptr);
  }
  return grants;
}

}  // namespace win
}  // namespace si
