#include "job.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

// `bytes` in whole pages as the job takes it (a SIZE_T); ERR_OUT_OF_RANGE where it does not fit
// (a 32-bit build: SIZE_T is 32 bits, and a cast would make 5 GiB a 1 GiB limit).
SIZE_T WholePages(uint64_t bytes, const char* option) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  SIZE_T out = 0;
  if (!JobBytes(bytes, si.dwPageSize ? si.dwPageSize : 4096, &out))
    throw SysError("ERR_OUT_OF_RANGE", 0, "",
                   std::string(option) + " is " + std::to_string(bytes) +
                       " bytes: this 32-bit (ia32) build of the addon sets job memory limits up to 4 GiB (a job's limit is a "
                       "pointer-sized SIZE_T); run a 64-bit Node for more");
  return out;
}

// The extended limits of `l` (memory, processes, CPU time, affinity), as the job takes them.
JOBOBJECT_EXTENDED_LIMIT_INFORMATION ExtendedLimits(const Limits& l, const std::vector<GROUP_AFFINITY>& affinity, bool killOnClose) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
  DWORD& flags = info.BasicLimitInformation.LimitFlags;
  flags = JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  if (killOnClose) flags |= JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  // The kernel keeps job memory limits in pages: set whole pages (rounded down, never above
  // what was asked), so that reading the limit back compares equal.
  if (l.memoryProcess) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
    info.ProcessMemoryLimit = WholePages(l.memoryProcess, "options.memory.process");
  }
  if (l.memoryTotal) {
    flags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    info.JobMemoryLimit = WholePages(l.memoryTotal, "options.memory.total");
  }
  if (l.processes) {
    flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    info.BasicLimitInformation.ActiveProcessLimit = l.processes;
  }
  if (l.cpuTimeMs) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_TIME;
    info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart = static_cast<LONGLONG>(l.cpuTimeMs) * 10000;
  }
  // One processor group: the classic affinity limit. Several: JobObjectGroupInformationEx.
  if (!l.affinity.empty() && affinity.size() == 1 && ProcessorGroupSizes().size() == 1) {
    flags |= JOB_OBJECT_LIMIT_AFFINITY;
    info.BasicLimitInformation.Affinity = affinity[0].Mask;
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
  if (info.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_AFFINITY)
    check("cpu.affinity", JOB_OBJECT_LIMIT_AFFINITY, b.Affinity == info.BasicLimitInformation.Affinity);
}

// A hard CPU-rate cap: `cores` as a share of what the enclosing job allows (a nested job's rate
// is a share of its parent's, not of the machine), read back.
void ApplyCpuRate(HANDLE job, double cores, double parentCores, JobPlan& plan) {
  std::string why;
  DWORD rate = CpuRateFor(cores, parentCores, &why);
  if (rate == 0) {
    Record(plan, "cpu.cores", "job-object-cpu-rate", false, why);
    return;
  }
  JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cpu{};
  cpu.ControlFlags = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
  cpu.CpuRate = rate;
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

// Affinity across processor groups (Windows 10+), where the machine has more than one.
void ApplyGroupAffinity(HANDLE job, std::vector<GROUP_AFFINITY> affinity, JobPlan& plan) {
  if (!SetInformationJobObject(job, JobObjectGroupInformationEx, affinity.data(),
                               static_cast<DWORD>(affinity.size() * sizeof(GROUP_AFFINITY)))) {
    Record(plan, "cpu.affinity", "job-object-group-affinity", false,
           "SetInformationJobObject(JobObjectGroupInformationEx) failed: " + Win32Message(GetLastError()) +
               " (affinity across processor groups needs Windows 10 or later)");
    return;
  }
  std::vector<GROUP_AFFINITY> back(ProcessorGroupSizes().size());
  DWORD len = 0;
  bool ok = QueryInformationJobObject(job, JobObjectGroupInformationEx, back.data(),
                                      static_cast<DWORD>(back.size() * sizeof(GROUP_AFFINITY)), &len) &&
            len == affinity.size() * sizeof(GROUP_AFFINITY);
  for (size_t i = 0; ok && i < affinity.size(); i++) ok = back[i].Group == affinity[i].Group && back[i].Mask == affinity[i].Mask;
  Record(plan, "cpu.affinity", "job-object-group-affinity", ok, StoredButNotEnforced());
}

}  // namespace

JobPlan ApplyLimits(HANDLE job, const Limits& l, bool killOnClose, double parentCores) {
  JobPlan plan;
  std::vector<GROUP_AFFINITY> affinity;
  if (!l.affinity.empty()) affinity = GroupAffinities(l.affinity, ProcessorGroupSizes());
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info = ExtendedLimits(l, affinity, killOnClose);
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof(info)))
    ThrowLastError("SetInformationJobObject", "JobObjectExtendedLimitInformation");
  ReadBack(job, l, info, plan);
  plan.extended = info;
  if (!l.affinity.empty() && !(info.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_AFFINITY))
    ApplyGroupAffinity(job, std::move(affinity), plan);
  if (l.cpuCores > 0) ApplyCpuRate(job, l.cpuCores, parentCores, plan);
  if (l.handles) {
    std::string why;
    bool ok = HandleCountWorks(&why);
    Record(plan, "handles", "watchdog", ok, why);
    if (ok) plan.handlesLimit = l.handles;
  }
  return plan;
}

DWORD CpuRateFor(double cores, double parentCores, std::string* why) {
  char parent[32];
  snprintf(parent, sizeof(parent), "%g", parentCores);
  if (cores > parentCores) {
    *why = std::string("more cores than the ") + parent + " that this machine and the enclosing job allow: a cap there limits nothing";
    return 0;
  }
  double exact = cores / parentCores * kCpuRateScale;
  double rate = std::ceil(exact - 1e-9);
  if (exact < 1) {
    *why = std::string("too small to express: the finest CPU rate is 1/10000 of the ") + parent + " cores available";
    return 0;
  }
  return static_cast<DWORD>(std::min(kCpuRateScale, rate));
}

std::vector<uint32_t> ProcessorGroupSizes() {
  std::vector<uint32_t> sizes;
  WORD groups = GetActiveProcessorGroupCount();
  for (WORD g = 0; g < groups; g++) sizes.push_back(GetActiveProcessorCount(g));
  if (sizes.empty()) sizes.push_back(LogicalCpus());
  return sizes;
}

std::vector<GROUP_AFFINITY> GroupAffinities(const std::vector<uint32_t>& cpus, const std::vector<uint32_t>& groupSizes) {
  std::vector<GROUP_AFFINITY> out;
  for (uint32_t cpu : cpus) {
    uint32_t first = 0;
    WORD group = 0;
    while (group < groupSizes.size() && cpu >= first + groupSizes[group]) first += groupSizes[group++];
    if (group == groupSizes.size() || cpu - first >= sizeof(KAFFINITY) * 8)
      throw SysError("ERR_OUT_OF_RANGE", 0, "",
                     "options.cpu.affinity names CPU " + std::to_string(cpu) + ", which this machine does not have");
    auto it = std::find_if(out.begin(), out.end(), [&](const GROUP_AFFINITY& a) { return a.Group == group; });
    if (it == out.end()) {
      out.push_back(GROUP_AFFINITY{});
      out.back().Group = group;
      it = out.end() - 1;
    }
    it->Mask |= static_cast<KAFFINITY>(1) << (cpu - first);
  }
  std::sort(out.begin(), out.end(), [](const GROUP_AFFINITY& a, const GROUP_AFFINITY& b) { return a.Group < b.Group; });
  return out;
}

double OwnJobCores() {
  double logical = static_cast<double>(LogicalCpus());
  BOOL inJob = FALSE;
  if (!IsProcessInJob(GetCurrentProcess(), nullptr, &inJob) || !inJob) return logical;
  // A job that lets children break away silently (libuv's) does not hold our workers' jobs.
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION ext{};
  if (QueryInformationJobObject(nullptr, JobObjectExtendedLimitInformation, &ext, sizeof(ext), nullptr) &&
      (ext.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK))
    return logical;
  JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cpu{};
  if (QueryInformationJobObject(nullptr, JobObjectCpuRateControlInformation, &cpu, sizeof(cpu), nullptr) &&
      (cpu.ControlFlags & JOB_OBJECT_CPU_RATE_CONTROL_ENABLE) && (cpu.ControlFlags & JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP) &&
      cpu.CpuRate > 0)
    return logical * cpu.CpuRate / kCpuRateScale;
  return logical;
}

std::string CpuBaseValue(double base, double logical) {
  if (!(base > 0) || base >= logical) return "";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.4f", base);
  return buf;
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
