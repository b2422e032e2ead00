// An independent oracle: asks Windows directly (through koffi, not through the addon) about
// processes, jobs and handles.
/* eslint-disable @typescript-eslint/no-explicit-any */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require('koffi');

const k32 = koffi.load('kernel32.dll');
const ntdll = koffi.load('ntdll.dll');

const OpenProcess = k32.func('intptr_t __stdcall OpenProcess(uint32_t access, int inherit, uint32_t pid)');
const CloseHandle = k32.func('int __stdcall CloseHandle(intptr_t h)');
const GetExitCodeProcess = k32.func('int __stdcall GetExitCodeProcess(intptr_t h, _Out_ uint32_t *code)');
const WaitForSingleObject = k32.func('uint32_t __stdcall WaitForSingleObject(intptr_t h, uint32_t ms)');
const IsProcessInJob = k32.func('int __stdcall IsProcessInJob(intptr_t h, intptr_t job, _Out_ int *result)');
const CreateFileW = k32.func(
  'intptr_t __stdcall CreateFileW(str16 name, uint32_t access, uint32_t share, void *sa, uint32_t disposition, uint32_t flags, intptr_t tmpl)',
);
const SetHandleInformation = k32.func('int __stdcall SetHandleInformation(intptr_t h, uint32_t mask, uint32_t flags)');
const GetHandleInformation = k32.func('int __stdcall GetHandleInformation(intptr_t h, _Out_ uint32_t *flags)');

const GetConsoleCP = k32.func('uint32_t __stdcall GetConsoleCP()');

/** Whether this process is attached to a console (Wine's node.exe, started without one, is not). */
export function hasConsole(): boolean {
  return GetConsoleCP() !== 0;
}

const PROCESS_QUERY_INFORMATION = 0x0400; // IsProcessInJob on Wine needs the full right
const PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;
const SYNCHRONIZE = 0x00100000;
const STILL_ACTIVE = 259;

export function isWine(): boolean {
  try {
    ntdll.func('const char * __cdecl wine_get_version()');
    return true;
  } catch {
    return false;
  }
}

/** A process handle held by the test, so its pid cannot be recycled while we look at it. */
export class ProcessRef {
  readonly handle: number;
  constructor(readonly pid: number) {
    this.handle = Number(OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, 0, pid));
    if (this.handle === 0) throw new Error(`OpenProcess(${pid}) failed: the process is not there`);
  }
  alive(): boolean {
    const code = [0];
    return GetExitCodeProcess(this.handle, code) !== 0 && code[0] === STILL_ACTIVE;
  }
  /** Waits on the process handle itself (an event, not a poll). True when it ended in time. */
  waitExit(ms: number): boolean {
    return WaitForSingleObject(this.handle, ms) === 0;
  }
  inAnyJob(): boolean {
    const r = [0];
    if (!IsProcessInJob(this.handle, 0, r)) throw new Error('IsProcessInJob failed');
    return r[0] !== 0;
  }
  close(): void {
    CloseHandle(this.handle);
  }
}

/** Opens `file` with an inheritable handle (as careless native code in a Node process would). */
export function openInheritable(file: string): number {
  const GENERIC_READ = 0x80000000;
  const FILE_SHARE_ALL = 0x7;
  const OPEN_EXISTING = 3;
  const h = Number(CreateFileW(file, GENERIC_READ, FILE_SHARE_ALL, null, OPEN_EXISTING, 0, 0));
  if (h === -1 || h === 0) throw new Error(`CreateFileW(${file}) failed`);
  if (!SetHandleInformation(h, 1, 1)) throw new Error('SetHandleInformation failed');
  const flags = [0];
  GetHandleInformation(h, flags);
  if ((flags[0] & 1) !== 1) throw new Error('handle did not become inheritable');
  return h;
}

export function closeHandle(h: number): void {
  CloseHandle(h);
}

// ---- AccessCheck: what a worker's token may do to an object, as the kernel would decide it.
const advapi = koffi.load('advapi32.dll');
const OpenProcessToken = advapi.func('int __stdcall OpenProcessToken(intptr_t process, uint32_t access, _Out_ intptr_t *token)');
const DuplicateToken = advapi.func('int __stdcall DuplicateToken(intptr_t token, int level, _Out_ intptr_t *dup)');
const GetSecurityInfo = advapi.func(
  'uint32_t __stdcall GetSecurityInfo(intptr_t handle, int type, uint32_t info, void *owner, void *group, void *dacl, void *sacl, _Out_ void **sd)',
);
koffi.struct('GENERIC_MAPPING', { read: 'uint32_t', write: 'uint32_t', execute: 'uint32_t', all: 'uint32_t' });
const AccessCheck = advapi.func(
  'int __stdcall AccessCheck(void *sd, intptr_t token, uint32_t desired, GENERIC_MAPPING *mapping, _Out_ uint8_t *privs, _Inout_ uint32_t *privsLen, _Out_ uint32_t *granted, _Out_ int *status)',
);
const LocalFree = k32.func('intptr_t __stdcall LocalFree(void *p)');
const GetCurrentProcess = k32.func('intptr_t __stdcall GetCurrentProcess()');
const GetLastError = k32.func('uint32_t __stdcall GetLastError()');

/** Process rights a worker could use against its launcher. */
export const PROCESS_DUP_HANDLE = 0x0040;
export const PROCESS_VM_WRITE = 0x0020;
export const PROCESS_TERMINATE = 0x0001;

/**
 * Whether the token of process `workerPid` is granted `desired` on this process (Node), by the
 * system's own AccessCheck against this process's security descriptor (owner, group, DACL).
 */
export function workerMayOpenNode(workerPid: number, desired: number): boolean {
  const TOKEN_QUERY = 0x0008;
  const TOKEN_DUPLICATE = 0x0002;
  const SE_KERNEL_OBJECT = 6;
  const OWNER_GROUP_DACL = 0x1 | 0x2 | 0x4;
  const proc = Number(OpenProcess(PROCESS_QUERY_INFORMATION, 0, workerPid));
  if (proc === 0) throw new Error(`OpenProcess(${workerPid}) failed: ${GetLastError()}`);
  const tok = [0];
  const imp = [0];
  const sd: unknown[] = [null];
  try {
    if (!OpenProcessToken(proc, TOKEN_QUERY | TOKEN_DUPLICATE, tok)) throw new Error(`OpenProcessToken failed: ${GetLastError()}`);
    if (!DuplicateToken(tok[0], 2 /* SecurityImpersonation */, imp)) throw new Error(`DuplicateToken failed: ${GetLastError()}`);
    const err = GetSecurityInfo(GetCurrentProcess(), SE_KERNEL_OBJECT, OWNER_GROUP_DACL, null, null, null, null, sd);
    if (err !== 0) throw new Error(`GetSecurityInfo failed: ${err}`);
    const mapping = { read: 0x20410, write: 0x20028, execute: 0x121000, all: 0x1fffff };
    const privs = Buffer.alloc(256);
    const privsLen = [privs.length];
    const granted = [0];
    const status = [0];
    if (!AccessCheck(sd[0], imp[0], desired, mapping, privs, privsLen, granted, status)) throw new Error(`AccessCheck failed: ${GetLastError()}`);
    return status[0] !== 0;
  } finally {
    if (sd[0]) LocalFree(sd[0]);
    if (imp[0]) CloseHandle(imp[0]);
    if (tok[0]) CloseHandle(tok[0]);
    CloseHandle(proc);
  }
}

const GetNamedSecurityInfoW = advapi.func(
  'uint32_t __stdcall GetNamedSecurityInfoW(str16 name, int type, uint32_t info, _Out_ void **owner, _Out_ void **group, _Out_ void **dacl, _Out_ void **sacl, _Out_ void **sd)',
);
const GetAclInformation = advapi.func('int __stdcall GetAclInformation(void *acl, _Out_ uint32_t *info, uint32_t len, int cls)');
const GetSecurityDescriptorControl = advapi.func('int __stdcall GetSecurityDescriptorControl(void *sd, _Out_ uint16_t *control, _Out_ uint32_t *rev)');

/** A file's DACL as the OS reads it back: how many ACEs, and whether it is protected. */
export function fileDacl(file: string): { aces: number; protected: boolean } | null {
  const dacl = [null];
  const sd = [null];
  const SE_FILE_OBJECT = 1;
  const DACL_SECURITY_INFORMATION = 4;
  if (GetNamedSecurityInfoW(file, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, null, null, dacl, null, sd) !== 0 || dacl[0] === null) return null;
  try {
    const info = [0, 0, 0]; // ACL_SIZE_INFORMATION: AceCount, AclBytesInUse, AclBytesFree
    const control = [0];
    const rev = [0];
    if (!GetAclInformation(dacl[0], info, 12, 2) || !GetSecurityDescriptorControl(sd[0], control, rev)) return null;
    const SE_DACL_PROTECTED = 0x1000;
    return { aces: info[0], protected: (control[0] & SE_DACL_PROTECTED) !== 0 };
  } finally {
    LocalFree(sd[0]);
  }
}

const ConvertSdToString = advapi.func(
  'int __stdcall ConvertSecurityDescriptorToStringSecurityDescriptorW(void *sd, uint32_t rev, uint32_t info, _Out_ void **str, _Out_ uint32_t *len)',
);

/** A file's DACL as the OS reads it back, in SDDL (null when it cannot be read). */
export function fileSddl(file: string): string | null {
  const dacl = [null];
  const sd = [null];
  const SE_FILE_OBJECT = 1;
  const DACL_SECURITY_INFORMATION = 4;
  if (GetNamedSecurityInfoW(file, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, null, null, dacl, null, sd) !== 0) return null;
  try {
    const str: unknown[] = [null];
    const len = [0];
    if (!ConvertSdToString(sd[0], 1, DACL_SECURITY_INFORMATION, str, len)) return null;
    try {
      return koffi.decode(str[0], 'char16_t', -1) as string; // the NUL-terminated UTF-16 at that address
    } finally {
      LocalFree(str[0]);
    }
  } finally {
    LocalFree(sd[0]);
  }
}

/** Opens (creating it if needed) `file` with no sharing at all: nobody else may open, rename or delete it. */
export function openExclusive(file: string): number {
  const GENERIC_READ_WRITE = 0xc0000000;
  const OPEN_ALWAYS = 4;
  const h = Number(CreateFileW(file, GENERIC_READ_WRITE, 0, null, OPEN_ALWAYS, 0, 0));
  if (h === -1 || h === 0) throw new Error(`CreateFileW(${file}) failed: ${GetLastError()}`);
  return h;
}

/** What GetTempPath2W answers (GetTempPathW where kernel32 has no GetTempPath2W), without the trailing separator. */
export function tempPath2(): { path: string; api: 'GetTempPath2W' | 'GetTempPathW' } {
  let fn: (len: number, buf: Buffer) => number;
  let api: 'GetTempPath2W' | 'GetTempPathW' = 'GetTempPath2W';
  try {
    fn = k32.func('uint32_t __stdcall GetTempPath2W(uint32_t len, _Out_ uint8_t *buf)');
  } catch {
    api = 'GetTempPathW';
    fn = k32.func('uint32_t __stdcall GetTempPathW(uint32_t len, _Out_ uint8_t *buf)');
  }
  const buf = Buffer.alloc(2 * 1024);
  const n = fn(1024, buf);
  if (n === 0) throw new Error(`${api} failed: ${GetLastError()}`);
  return { path: buf.subarray(0, n * 2).toString('utf16le').replace(/[\\/]+$/, ''), api };
}

// ---- Tokens and window objects: what a worker's token restricts to, and who the launcher's
// window station and desktop grant.
const GetTokenInformation = advapi.func('int __stdcall GetTokenInformation(intptr_t token, int cls, _Out_ uint8_t *buf, uint32_t len, _Out_ uint32_t *ret)');
const ConvertSidToStringSidW = advapi.func('int __stdcall ConvertSidToStringSidW(void *sid, _Out_ void **str)');

/** The restricting SIDs of process `pid`'s token, as strings (the first is a worker's own SID). */
export function restrictingSids(pid: number): string[] {
  const proc = Number(OpenProcess(PROCESS_QUERY_INFORMATION, 0, pid));
  if (proc === 0) throw new Error(`OpenProcess(${pid}) failed: ${GetLastError()}`);
  const tok = [0];
  try {
    if (!OpenProcessToken(proc, 0x0008 /* TOKEN_QUERY */, tok)) throw new Error(`OpenProcessToken failed: ${GetLastError()}`);
    const buf = Buffer.alloc(4096);
    const len = [0];
    if (!GetTokenInformation(tok[0], 11 /* TokenRestrictedSids */, buf, buf.length, len)) throw new Error(`GetTokenInformation failed: ${GetLastError()}`);
    const n = buf.readUInt32LE(0);
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const sidPtr = koffi.decode(buf, 8 + i * 16, 'void *'); // SID_AND_ATTRIBUTES: {PSID, DWORD}, 16 bytes on x64
      const str: unknown[] = [null];
      if (ConvertSidToStringSidW(sidPtr, str)) {
        out.push(koffi.decode(str[0], 'char16_t', -1) as string);
        LocalFree(str[0]);
      }
    }
    return out;
  } finally {
    if (tok[0]) CloseHandle(tok[0]);
    CloseHandle(proc);
  }
}

const user32 = koffi.load('user32.dll');
const OpenWindowStationW = user32.func('intptr_t __stdcall OpenWindowStationW(str16 name, int inherit, uint32_t access)');
const OpenDesktopW = user32.func('intptr_t __stdcall OpenDesktopW(str16 name, uint32_t flags, int inherit, uint32_t access)');
const CloseWindowStation = user32.func('int __stdcall CloseWindowStation(intptr_t h)');
const CloseDesktop = user32.func('int __stdcall CloseDesktop(intptr_t h)');
const GetProcessWindowStation = user32.func('intptr_t __stdcall GetProcessWindowStation()');
const GetThreadDesktop = user32.func('intptr_t __stdcall GetThreadDesktop(uint32_t tid)');
const GetCurrentThreadId = k32.func('uint32_t __stdcall GetCurrentThreadId()');
const GetUserObjectInformationW = user32.func('int __stdcall GetUserObjectInformationW(intptr_t h, int index, _Out_ uint8_t *buf, uint32_t len, _Out_ uint32_t *needed)');

function userObjectName(h: number): string {
  const buf = Buffer.alloc(512);
  const n = [0];
  if (!GetUserObjectInformationW(h, 2 /* UOI_NAME */, buf, buf.length, n)) throw new Error(`GetUserObjectInformationW failed: ${GetLastError()}`);
  return buf.toString('utf16le').split('\0')[0];
}

/** The DACL (SDDL) of this process's window station or desktop; '' when it has none. */
export function windowObjectSddl(kind: 'winsta' | 'desktop'): string {
  const READ_CONTROL = 0x20000;
  const h =
    kind === 'winsta'
      ? Number(OpenWindowStationW(userObjectName(Number(GetProcessWindowStation())), 0, READ_CONTROL))
      : Number(OpenDesktopW(userObjectName(Number(GetThreadDesktop(GetCurrentThreadId()))), 0, 0, READ_CONTROL));
  if (h === 0) throw new Error(`opening the ${kind} failed: ${GetLastError()}`);
  const sd: unknown[] = [null];
  try {
    const err = GetSecurityInfo(h, 7 /* SE_WINDOW_OBJECT */, 4, null, null, null, null, sd);
    if (err !== 0) throw new Error(`GetSecurityInfo(${kind}) failed: ${err}`);
    const str: unknown[] = [null];
    const len = [0];
    if (!ConvertSdToString(sd[0], 1, 4, str, len)) throw new Error('ConvertSecurityDescriptorToStringSecurityDescriptorW failed');
    try {
      return koffi.decode(str[0], 'char16_t', -1) as string;
    } finally {
      LocalFree(str[0]);
    }
  } finally {
    if (sd[0]) LocalFree(sd[0]);
    if (kind === 'winsta') CloseWindowStation(h);
    else CloseDesktop(h);
  }
}

// ---- A session user's folders (WTSQueryUserToken: LocalSystem on real Windows; Wine serves any process).
const wtsapi32 = koffi.load('wtsapi32.dll');
const WTSQueryUserToken = wtsapi32.func('int __stdcall WTSQueryUserToken(uint32_t session, _Out_ intptr_t *token)');
const WTSGetActiveConsoleSessionId = k32.func('uint32_t __stdcall WTSGetActiveConsoleSessionId()');
const shell32 = koffi.load('shell32.dll');
const ole32 = koffi.load('ole32.dll');
const SHGetKnownFolderPath = shell32.func('int32_t __stdcall SHGetKnownFolderPath(_In_ uint8_t *id, uint32_t flags, intptr_t token, _Out_ void **path)');
const CoTaskMemFree = ole32.func('void __stdcall CoTaskMemFree(void *p)');

function guidBytes(g: string): Buffer {
  const [a, b, c, d, e] = g.split('-');
  const buf = Buffer.alloc(16);
  buf.writeUInt32LE(parseInt(a, 16), 0);
  buf.writeUInt16LE(parseInt(b, 16), 4);
  buf.writeUInt16LE(parseInt(c, 16), 6);
  Buffer.from(d + e, 'hex').copy(buf, 8);
  return buf;
}

/** The console session user's LocalAppData or LocalLow folder (SHGetKnownFolderPath with its token). */
export function sessionKnownFolder(which: 'LocalAppData' | 'LocalAppDataLow'): string {
  const ids = { LocalAppData: 'F1B32785-6FBA-4FCF-9D55-7B8E7F157091', LocalAppDataLow: 'A520A1A4-1780-4FF6-BD18-167343C5AF16' };
  const tok = [0];
  if (!WTSQueryUserToken(WTSGetActiveConsoleSessionId(), tok)) throw new Error(`WTSQueryUserToken failed: ${GetLastError()}`);
  try {
    const out: unknown[] = [null];
    const hr = SHGetKnownFolderPath(guidBytes(ids[which]), 0, tok[0], out);
    if (hr !== 0) throw new Error(`SHGetKnownFolderPath failed: 0x${(hr >>> 0).toString(16)}`);
    try {
      return koffi.decode(out[0], 'char16_t', -1) as string;
    } finally {
      CoTaskMemFree(out[0]);
    }
  } finally {
    CloseHandle(tok[0]);
  }
}

/** Whether process `pid` runs with an AppContainer token, and how many capabilities it holds. */
export function appContainerOf(pid: number): { appContainer: boolean; capabilities: number } {
  const proc = Number(OpenProcess(PROCESS_QUERY_INFORMATION, 0, pid));
  if (proc === 0) throw new Error(`OpenProcess(${pid}) failed: ${GetLastError()}`);
  const tok = [0];
  try {
    if (!OpenProcessToken(proc, 0x0008, tok)) throw new Error(`OpenProcessToken failed: ${GetLastError()}`);
    const buf = Buffer.alloc(4096);
    const len = [0];
    const is = GetTokenInformation(tok[0], 29 /* TokenIsAppContainer */, buf, 4, len) ? buf.readUInt32LE(0) !== 0 : false;
    const caps = GetTokenInformation(tok[0], 30 /* TokenCapabilities */, buf, buf.length, len) ? buf.readUInt32LE(0) : 0;
    return { appContainer: is, capabilities: caps };
  } finally {
    if (tok[0]) CloseHandle(tok[0]);
    CloseHandle(proc);
  }
}
