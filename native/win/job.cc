#include "job.h"

#include <algorithm>
#include <cmath>

namespace si {
namespace win {
namespace {

constexpr double kCpuRateScale = 10000.0;  // CpuRate: 1..10000 is 0.01%..100% of the machine

std::string StoredButNotEnforced() {
  return "the host accepted the job limit but reading it back returned nothing: it stores no limits and "
         "enforces none (Wine behaves like this)";
}

DWORD LogicalCpus() {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n == 0 ? 1 : n;
}

bool HandleCountWorks(std::string* why) {
  DWORD n = 0;
  if (!GetProcessHandleCount(GetCurrentProcess(), &n)) {
    *why = "GetProcessHandleCount failed: " + Win32Message(GetLastError());
    return false;
  }
  if (n == 0) {
    *why = "GetProcessHandleCount reports 0 handles for this process: the host does not count handles (Wine)";
    return false;
  }
  return true;
}

void Record(JobPlan& plan, const char* limit, const char* mechanism, bool ok, const std::string& why) {
  plan.enforcement.push_back(MakeEnforcement(limit, ok, mechanism, why));
}

SIZE_T WholePages(uint64_t bytes) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  uint64_t page = si.dwPageSize ? si.dwPageSize : 4096;
  uint64_t whole = bytes / page * page;
  return static_cast<SIZE_T>(whole ? whole : page);
}

// The extended limits of `l` (memory, processes, CPU time, affinity), as the job takes them.
JOBOBJECT_EXTENDED_LIMIT_INFORMATION ExtendedLimits(const Limits& l, bool killOnClose) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
  DWORD& flags = info.BasicLimitInformation.LimitFlags;
  flags = JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  if (killOnClose) flags |= JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  // The kernel keeps job memory limits in pages: set whole pages (rounded down, never above
  // what was asked), so that reading the limit back compares equal.
  if (l.memoryProcess) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
    info.ProcessMemoryLimit = WholePages(l.memoryProcess);
  }
  if (l.memoryTotal) {
    flags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    info.JobMemoryLimit = WholePages(l.memoryTotal);
  }
  if (l.processes) {
    flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    info.BasicLimitInformation.ActiveProcessLimit = l.processes;
  }
  if (l.cpuTimeMs) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_TIME;
    info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart = static_cast<LONGLONG>(l.cpuTimeMs) * 10000;
  }
  if (!l.affinity.empty()) {
    ULONG_PTR mask = 0;
    for (uint32_t cpu : l.affinity) {
      if (cpu >= sizeof(ULONG_PTR) * 8)
        throw SysError("ERR_OUT_OF_RANGE", 0, "",
                       "options.cpu.affinity: CPU " + std::to_string(cpu) + " is beyond the first processor group");
      mask |= static_cast<ULONG_PTR>(1) << cpu;
    }
    DWORD_PTR processMask = 0, systemMask = 0;
    if (GetProcessAffinityMask(GetCurrentProcess(), &processMask, &systemMask) && (mask & ~systemMask) != 0)
      throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.cpu.affinity names a CPU this machine does not have");
    flags |= JOB_OBJECT_LIMIT_AFFINITY;
    info.BasicLimitInformation.Affinity = mask;
  }
  return info;
}

// Reads the extended limits back: a host that stores none (Wine) enforces none.
void ReadBack(HANDLE job, const Limits& l, const JOBOBJECT_EXTENDED_LIMIT_INFORMATION& info, JobPlan& plan) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION back{};
  bool readOk = QueryInformationJobObject(job, JobObjectExtendedLimitInformation, &back, sizeof(back), nullptr) != 0;
  std::string readWhy = readOk ? StoredButNotEnforced() : "QueryInformationJobObject failed: " + Win32Message(GetLastError());
  DWORD got = readOk ? back.BasicLimitInformation.LimitFlags : 0;
  auto check = [&](const char* name, DWORD flag, bool valueOk) {
    bool ok = (got & flag) == flag && valueOk;
    Record(plan, name, "job-object", ok, readWhy);
  };
  const JOBOBJECT_BASIC_LIMIT_INFORMATION& b = back.BasicLimitInformation;
  if (l.memoryProcess) check("memory.process", JOB_OBJECT_LIMIT_PROCESS_MEMORY, back.ProcessMemoryLimit == info.ProcessMemoryLimit);
  if (l.memoryTotal) check("memory.total", JOB_OBJECT_LIMIT_JOB_MEMORY, back.JobMemoryLimit == info.JobMemoryLimit);
  if (l.processes) check("processes", JOB_OBJECT_LIMIT_ACTIVE_PROCESS, b.ActiveProcessLimit == l.processes);
  if (l.cpuTimeMs)
    check("cpu.time", JOB_OBJECT_LIMIT_PROCESS_TIME,
          b.PerProcessUserTimeLimit.QuadPart == info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart);
  if (!l.affinity.empty()) check("cpu.affinity", JOB_OBJECT_LIMIT_AFFINITY, b.Affinity == info.BasicLimitInformation.Affinity);
}

// A hard CPU-rate cap of cores / logical CPUs (Windows 8+), read back.
void ApplyCpuRate(HANDLE job, double cores, JobPlan& plan) {
  double rate = std::ceil(cores / static_cast<double>(LogicalCpus()) * kCpuRateScale);
  JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cpu{};
  cpu.ControlFlags = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
  cpu.CpuRate = static_cast<DWORD>(std::min(kCpuRateScale, std::max(1.0, rate)));
  if (!SetInformationJobObject(job, JobObjectCpuRateControlInformation, &cpu, sizeof(cpu))) {
    Record(plan, "cpu.cores", "job-object-cpu-rate", false,
           "SetInformationJobObject(JobObjectCpuRateControlInformation) failed: " + Win32Message(GetLastError()) +
               " (CPU rate control needs Windows 8 or later)");
    return;
  }
  JOBOBJECT_CPU_RATE_CONTROL_INFORMATION back{};
  bool ok = QueryInformationJobObject(job, JobObjectCpuRateControlInformation, &back, sizeof(back), nullptr) &&
            (back.ControlFlags & JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP) && back.CpuRate == cpu.CpuRate;
  Record(plan, "cpu.cores", "job-object-cpu-rate", ok, StoredButNotEnforced());
}

}  // namespace

JobPlan ApplyLimits(HANDLE job, const Limits& l, bool killOnClose) {
  JobPlan plan;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info = ExtendedLimits(l, killOnClose);
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof(info)))
    ThrowLastError("SetInformationJobObject", "JobObjectExtendedLimitInformation");
  ReadBack(job, l, info, plan);
  if (l.cpuCores > 0) ApplyCpuRate(job, l.cpuCores, plan);
  if (l.handles) {
    std::string why;
    bool ok = HandleCountWorks(&why);
    Record(plan, "handles", "watchdog", ok, why);
    if (ok) plan.handlesLimit = l.handles;
  }
  return plan;
}

Stats JobStats(HANDLE job) {
  Stats s;
  JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct{};
  if (QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, sizeof(acct), nullptr)) {
    s.cpuUserMs = static_cast<double>(acct.TotalUserTime.QuadPart) / 10000.0;
    s.cpuKernelMs = static_cast<double>(acct.TotalKernelTime.QuadPart) / 10000.0;
    s.active = acct.ActiveProcesses;
    s.total = acct.TotalProcesses;
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION ext{};
  if (QueryInformationJobObject(job, JobObjectExtendedLimitInformation, &ext, sizeof(ext), nullptr)) s.peakMemory = ext.PeakJobMemoryUsed;
  return s;
}

UniqueHandle MakeJob(HANDLE port, ULONG_PTR key) {
  UniqueHandle job(CreateJobObjectW(nullptr, nullptr));
  if (!job.valid()) ThrowLastError("CreateJobObjectW");
  JOBOBJECT_ASSOCIATE_COMPLETION_PORT assoc{};
  assoc.CompletionKey = reinterpret_cast<PVOID>(key);
  assoc.CompletionPort = port;
  if (!SetInformationJobObject(job.get(), JobObjectAssociateCompletionPortInformation, &assoc, sizeof(assoc)))
    ThrowLastError("SetInformationJobObject", "JobObjectAssociateCompletionPortInformation");
  return job;
}

}  // namespace win
}  // namespace si
