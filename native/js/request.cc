// Request parsing (see request.h).
#include "request.h"

#include <limits>

#include "convert.h"

namespace si {
namespace js {
namespace {

constexpr double kMaxCpu = 1023;  // a cpu_set_t holds CPUs 0..1023

void ParseCommand(Napi::Env env, Napi::Object o, SpawnRequest& r) {
  r.file = GetString(env, Prop(o, "file"), "file");
  Napi::Array a = GetArray(env, o, "args");
  for (uint32_t i = 0; i < a.Length(); i++) r.args.push_back(GetString(env, a.Get(i), "args[" + std::to_string(i) + "]"));
  if (r.args.empty()) ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "The \"args\" property must include argv[0]");
  Napi::Value cwd = Prop(o, "cwd");
  if (!cwd.IsUndefined()) {
    r.hasCwd = true;
    r.cwd = GetString(env, cwd, "cwd");
  }
  Napi::Array ea = GetArray(env, o, "env");
  for (uint32_t i = 0; i < ea.Length(); i++) {
    std::string kv = GetString(env, ea.Get(i), "env");
    if (kv.find('=', 1) == std::string::npos) ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "env entries must be NAME=value");
    r.env.push_back(std::move(kv));
  }
}

void ParseStdio(Napi::Env env, Napi::Object o, SpawnRequest& r) {
  Napi::Array stdio = GetArray(env, o, "stdio");
  if (stdio.Length() != 3) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"stdio\" property must be an array of 3 entries");
  for (uint32_t i = 0; i < 3; i++) {
    Napi::Value s = stdio.Get(i);
    if (s.IsNumber()) {
      r.stdio[i].kind = StdioSpec::Fd;
      r.stdio[i].fd = static_cast<int>(GetNumber(env, s, "stdio[" + std::to_string(i) + "]", 0, INT32_MAX));
      continue;
    }
    std::string k = GetString(env, s, "stdio");
    if (k == "pipe")
      r.stdio[i].kind = StdioSpec::Pipe;
    else if (k == "ignore")
      r.stdio[i].kind = StdioSpec::Ignore;
    else if (k == "inherit")
      r.stdio[i] = {StdioSpec::Inherit, static_cast<int>(i)};
    else
      ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "stdio[" + std::to_string(i) + "] is invalid");
  }
  Napi::Array ia = GetArray(env, o, "inherit");
  for (uint32_t i = 0; i < ia.Length(); i++) {
    Napi::Value e = ia.Get(i);
    if (!e.IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "inherit entries must be objects");
    InheritSpec spec;
    spec.rawHandle = GetBool(env, e.As<Napi::Object>(), "raw", false);
    Napi::Value v = Prop(e.As<Napi::Object>(), "value");
    if (v.IsBigInt()) {
      bool lossless = true;
      spec.value = v.As<Napi::BigInt>().Int64Value(&lossless);
      if (!lossless) ThrowTypeError(env, "ERR_OUT_OF_RANGE", "inheritHandles value is out of range");
    } else {
      spec.value = static_cast<int64_t>(GetNumber(env, v, "inheritHandles[" + std::to_string(i) + "]", 0, kMaxSafeInteger));
    }
    r.inherit.push_back(spec);
  }
}

// The limits of a worker or a group: types and fit only (TS validated the ranges).
Limits ParseLimits(Napi::Env env, Napi::Object o) {
  Napi::Value lv = Prop(o, "limits");
  if (!lv.IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"limits\" property must be an object");
  Napi::Object l = lv.As<Napi::Object>();
  Limits r;
  r.memoryProcess = GetU64(env, l, "memoryProcess", "limits.memoryProcess");
  r.memoryTotal = GetU64(env, l, "memoryTotal", "limits.memoryTotal");
  Napi::Value cores = Prop(l, "cpuCores");
  if (!cores.IsUndefined()) r.cpuCores = GetNumber(env, cores, "limits.cpuCores", std::numeric_limits<double>::min(), kMaxSafeInteger);
  r.cpuTimeMs = GetU64(env, l, "cpuTimeMs", "limits.cpuTimeMs");
  Napi::Value aff = Prop(l, "affinity");
  if (!aff.IsUndefined()) {
    Napi::Array aa = GetArray(env, l, "affinity");
    for (uint32_t i = 0; i < aa.Length(); i++)
      r.affinity.push_back(static_cast<uint32_t>(GetNumber(env, aa.Get(i), "limits.affinity", 0, kMaxCpu)));
  }
  r.processes = GetU32(env, l, "processes", "limits.processes");
  r.threads = GetU32(env, l, "threads", "limits.threads");
  r.handles = GetU32(env, l, "handles", "limits.handles");
  r.disk = GetU64(env, l, "disk", "limits.disk");
  return r;
}

void ParseIdentity(Napi::Env env, Napi::Object o, SpawnRequest& r) {
  std::string priv = GetString(env, Prop(o, "privileges"), "privileges");
  if (priv == "restricted")
    r.privileges = Privileges::Restricted;
  else if (priv == "low")
    r.privileges = Privileges::Low;
  else if (priv == "inherit")
    r.privileges = Privileges::Inherit;
  else
    ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "privileges is invalid");
  r.privilegesExplicit = GetBool(env, o, "privilegesExplicit", false);
  Napi::Value uid = Prop(o, "uid");
  if (!uid.IsUndefined()) {
    r.hasUid = true;
    r.uid = static_cast<uint32_t>(GetNumber(env, uid, "uid", 0, UINT32_MAX - 1.0));
  }
  Napi::Value gid = Prop(o, "gid");
  if (!gid.IsUndefined()) {
    r.hasGid = true;
    r.gid = static_cast<uint32_t>(GetNumber(env, gid, "gid", 0, UINT32_MAX - 1.0));
  }
  Napi::Value groups = Prop(o, "groups");
  if (!groups.IsUndefined()) {
    if (!groups.IsArray()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "groups must be an array");
    Napi::Array a = groups.As<Napi::Array>();
    r.hasGroups = true;
    for (uint32_t i = 0; i < a.Length(); i++)
      r.groups.push_back(static_cast<uint32_t>(GetNumber(env, a.Get(i), "groups", 0, UINT32_MAX - 1.0)));
  }
  r.envExplicit = GetBool(env, o, "envExplicit", false);
  Napi::Value session = Prop(o, "session");
  if (!session.IsUndefined()) r.session = static_cast<int64_t>(GetNumber(env, session, "session", -2, UINT32_MAX - 1.0));
}

void ParseFilesystem(Napi::Env env, Napi::Object o, SpawnRequest& r) {
  Napi::Value fs = Prop(o, "filesystem");
  if (fs.IsUndefined()) return;
  if (!fs.IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "filesystem must be an object");
  r.hasFilesystem = true;
  Napi::Object fo = fs.As<Napi::Object>();
  for (const char* key : {"read", "write"}) {
    Napi::Array a = GetArray(env, fo, key);
    std::vector<std::string>& out = key[0] == 'r' ? r.fsRead : r.fsWrite;
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::string path = GetString(env, a.Get(i), std::string("filesystem.") + key);
      if (path.empty() || path.find('\0') != std::string::npos)
        ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", std::string("filesystem.") + key + " entries must be paths without null bytes");
      out.push_back(path);
    }
  }
}

}  // namespace

SpawnRequest ParseRequest(Napi::Env env, Napi::Object o) {
  SpawnRequest r;
  ParseCommand(env, o, r);
  ParseStdio(env, o, r);
  r.limits = ParseLimits(env, o);
  ParseIdentity(env, o, r);
  r.threadsImplied = GetBool(env, o, "threadsImplied", false);
  r.killOnClose = GetBool(env, o, "killOnClose", true);
  r.windowsHide = GetBool(env, o, "windowsHide", true);
  r.channel = GetBool(env, o, "channel", false);
  r.tempDir = GetBool(env, o, "tempDir", false);
  r.keepTempDir = GetBool(env, o, "keepTempDir", false);
  r.privateProfile = GetBool(env, o, "privateProfile", false);
  r.networkNone = GetBool(env, o, "networkNone", false);
  ParseFilesystem(env, o, r);
  r.strict = GetBool(env, o, "strict", true);
  Napi::Value group = Prop(o, "group");
  if (!group.IsUndefined()) r.group = static_cast<uint64_t>(GetNumber(env, group, "group", 1, kMaxSafeInteger));
  return r;
}

GroupRequest ParseGroupRequest(Napi::Env env, Napi::Object o) {
  GroupRequest req;
  req.limits = ParseLimits(env, o);
  req.strict = GetBool(env, o, "strict", true);
  req.killOnClose = GetBool(env, o, "killOnClose", true);
  return req;
}

}  // namespace js
}  // namespace si
