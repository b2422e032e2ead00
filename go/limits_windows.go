package spawnisolated

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

var (
	kernel32                      = syscall.NewLazyDLL("kernel32.dll")
	advapi32                      = syscall.NewLazyDLL("advapi32.dll")
	procIsProcessInJob            = kernel32.NewProc("IsProcessInJob")
	procQueryInformationJobObject = kernel32.NewProc("QueryInformationJobObject")
	procGetActiveProcessorCount   = kernel32.NewProc("GetActiveProcessorCount")
	procGetTokenInformation       = advapi32.NewProc("GetTokenInformation")
	procProcessIdToSessionId      = kernel32.NewProc("ProcessIdToSessionId")
)

const (
	jobObjectExtendedLimitInformation  = 9
	jobObjectCPURateControlInformation = 15
	limitProcessTime                   = 0x2
	limitActiveProcess                 = 0x8
	limitProcessMemory                 = 0x100
	limitJobMemory                     = 0x200
	limitKillOnJobClose                = 0x2000
	cpuRateEnable                      = 0x1
	cpuRateHardCap                     = 0x4
	tokenPrivileges                    = 3
	tokenRestrictedSids                = 11
	tokenIntegrityLevel                = 25
	allProcessorGroups                 = 0xffff
)

// JOBOBJECT_EXTENDED_LIMIT_INFORMATION. Its LARGE_INTEGERs and ULONGLONGs are 8-byte aligned in
// C on every Windows; Go aligns int64 to 4 bytes on 386 and arm, so the 32-bit layout needs the
// padding C has (basicLimits, limits_windows_32.go / _64.go): without it the struct is 108 bytes
// where Windows x86 expects 112, and every field after the basic limits is read 4 bytes off.
type extendedLimits struct {
	Basic                 basicLimits
	IoInfo                [6]uint64
	ProcessMemoryLimit    uintptr
	JobMemoryLimit        uintptr
	PeakProcessMemoryUsed uintptr
	PeakJobMemoryUsed     uintptr
}

// The sizes Windows expects, checked at compile time (a negative uintptr constant does not
// compile): `GOOS=windows GOARCH=386 go vet` fails on a wrong layout.
const (
	_ = unsafe.Sizeof(extendedLimits{}) - extendedLimitsSize
	_ = extendedLimitsSize - unsafe.Sizeof(extendedLimits{})
	_ = unsafe.Sizeof(basicLimits{}) - basicLimitsSize
	_ = basicLimitsSize - unsafe.Sizeof(basicLimits{})
	_ = unsafe.Offsetof(extendedLimits{}.IoInfo) - basicLimitsSize
	_ = basicLimitsSize - unsafe.Offsetof(extendedLimits{}.IoInfo)
)

type cpuRate struct {
	ControlFlags uint32
	CPURate      uint32
}

// Read returns what this process runs under (see Limits): its innermost job's limits (the CPU
// cap through the chain of jobs around it: see CPUBaseEnv) and its token.
func Read() Limits {
	l := Limits{Mechanism: "none"}
	var in int32
	self, _ := syscall.GetCurrentProcess()
	if r, _, _ := procIsProcessInJob.Call(uintptr(self), 0, uintptr(unsafe.Pointer(&in))); r != 0 && in != 0 {
		l.Mechanism = "job-object"
		l.Nested = 1
		var ext extendedLimits
		if r, _, _ := procQueryInformationJobObject.Call(0, jobObjectExtendedLimitInformation, uintptr(unsafe.Pointer(&ext)), unsafe.Sizeof(ext), 0); r != 0 {
			f := ext.Basic.LimitFlags
			if f&limitJobMemory != 0 {
				l.MemoryTotal = uint64(ext.JobMemoryLimit)
			}
			if f&limitProcessMemory != 0 {
				l.MemoryProcess = uint64(ext.ProcessMemoryLimit)
			}
			if f&limitActiveProcess != 0 {
				l.Processes = ext.Basic.ActiveProcessLimit
			}
			if f&limitProcessTime != 0 {
				l.CPUTimeMs = uint64(ext.Basic.PerProcessUserTimeLimit / 10000)
			}
			l.KillOnClose = f&limitKillOnJobClose != 0
		}
		// The innermost job's rate is a share of what the jobs around it allow, not of the
		// machine: its launcher says how much that is (CPUBaseEnv) where they cap it.
		var rate cpuRate
		var hardCap uint32
		if r, _, _ := procQueryInformationJobObject.Call(0, jobObjectCPURateControlInformation, uintptr(unsafe.Pointer(&rate)), unsafe.Sizeof(rate), 0); r != 0 &&
			rate.ControlFlags&cpuRateEnable != 0 && rate.ControlFlags&cpuRateHardCap != 0 {
			hardCap = rate.CPURate
		}
		n, _, _ := procGetActiveProcessorCount.Call(allProcessorGroups)
		base, _ := strconv.ParseFloat(os.Getenv(CPUBaseEnv), 64)
		l.CPUCores = effectiveCores(hardCap, base, int(n))
	}
	readToken(&l)
	var session uint32
	if r, _, _ := procProcessIdToSessionId.Call(uintptr(syscall.Getpid()), uintptr(unsafe.Pointer(&session))); r != 0 {
		l.Session = int(session)
	}
	return l
}

func tokenInfo(token syscall.Token, class uint32) []byte {
	var size uint32
	procGetTokenInformation.Call(uintptr(token), uintptr(class), 0, 0, uintptr(unsafe.Pointer(&size)))
	if size == 0 {
		return nil
	}
	buf := make([]byte, size)
	if r, _, _ := procGetTokenInformation.Call(uintptr(token), uintptr(class), uintptr(unsafe.Pointer(&buf[0])), uintptr(size), uintptr(unsafe.Pointer(&size))); r == 0 {
		return nil
	}
	return buf
}

func readToken(l *Limits) {
	self, _ := syscall.GetCurrentProcess()
	var token syscall.Token
	if syscall.OpenProcessToken(self, syscall.TOKEN_QUERY, &token) != nil {
		return
	}
	defer token.Close()
	if u, err := token.GetTokenUser(); err == nil {
		if account, domain, _, err := u.User.Sid.LookupAccount(""); err == nil {
			l.User = domain + `\` + account
		}
	}
	if b := tokenInfo(token, tokenPrivileges); len(b) >= 4 {
		l.Privileges = int(*(*uint32)(unsafe.Pointer(&b[0])))
	}
	if b := tokenInfo(token, tokenRestrictedSids); len(b) >= 4 {
		l.RestrictedSIDs = int(*(*uint32)(unsafe.Pointer(&b[0])))
	}
	if b := tokenInfo(token, tokenIntegrityLevel); len(b) > 0 {
		sid := *(**syscall.SID)(unsafe.Pointer(&b[0]))
		if s, err := sid.String(); err == nil {
			l.Integrity = integrityName(s)
		}
	}
}

// integrityName: the last sub-authority of a mandatory label SID (S-1-16-RID).
func integrityName(sid string) string {
	switch sid {
	case "S-1-16-0":
		return "untrusted"
	case "S-1-16-4096":
		return "low"
	case "S-1-16-8192":
		return "medium"
	case "S-1-16-8448":
		return "medium-plus"
	case "S-1-16-12288":
		return "high"
	case "S-1-16-16384":
		return "system"
	}
	return sid
}
