// The N-API module: the functions it exports, each a thin step between JS and a backend
// (contract.h). Its pieces live in native/js: convert (values and errors), request (parsing a
// spawn request), events (delivering backend events to the JS environment that spawned the
// worker) and internals_js (the `internals` export for tests). Every piece of state lives in
// per-environment instance data, so the addon works in any number of worker_threads.
#include <napi.h>

#include <mutex>

#include "contract.h"
#include "js/convert.h"
#include "js/events.h"
#include "js/internals_js.h"
#include "js/request.h"

namespace si {
namespace js {
namespace {

// ---- exported functions

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "handler must be a function");
  OpenEvents(env, d, info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value SpawnJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  if (!d.hasTsfn) ThrowTypeError(env, "ERR_INVALID_STATE", "spawn-isolated: init() not called");
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "request must be an object");
  SpawnRequest req = ParseRequest(env, info[0].As<Napi::Object>());
  SpawnResult res;
  try {
    res = backend::Spawn(req, d.sink);
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
  d.live.insert(res.id);
  d.owned.insert(res.id);
  d.UpdateRef(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set(Key(env, "id"), static_cast<double>(res.id));
  o.Set(Key(env, "pid"), static_cast<double>(res.pid));
  Napi::Array pipes = Napi::Array::New(env, 3);
  for (uint32_t i = 0; i < 3; i++) pipes.Set(i, res.pipes[i].empty() ? env.Null() : Napi::String::New(env, res.pipes[i]));
  o.Set(Key(env, "pipes"), pipes);
  Napi::Array inh = Napi::Array::New(env, res.inherited.size());
  for (uint32_t i = 0; i < res.inherited.size(); i++) inh.Set(i, static_cast<double>(res.inherited[i]));
  o.Set(Key(env, "inherited"), inh);
  o.Set(Key(env, "enforcement"), EnforcementToJs(env, res.enforcement));
  o.Set(Key(env, "gracefulStop"), res.gracefulStop);
  o.Set(Key(env, "channel"), res.channel.empty() ? env.Null() : Napi::String::New(env, res.channel));
  o.Set(Key(env, "tempDir"), res.tempDir.empty() ? env.Null() : Napi::String::New(env, res.tempDir));
  o.Set(Key(env, "sessionId"), res.sessionId < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(res.sessionId)));
  o.Set(Key(env, "user"), res.user.empty() ? env.Null() : Napi::String::New(env, res.user));
  if (res.startPending) o.Set(Key(env, "startPending"), true);
  return o;
}

#ifdef _WIN32
Napi::Value SessionEnvironmentJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    std::vector<std::string> list =
        backend::SessionEnvironment(static_cast<int64_t>(GetNumber(env, info[0], "session", -2, UINT32_MAX - 1.0)));
    Napi::Array out = Napi::Array::New(env, list.size());
    for (uint32_t i = 0; i < list.size(); i++) out.Set(i, list[i]);
    return out;
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
}
#endif

Napi::Value LookupUserJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UserRecord u;
  try {
    u = backend::LookupUser(GetString(env, info[0], "name"));
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set(Key(env, "name"), u.name);
  o.Set(Key(env, "uid"), u.uid);
  o.Set(Key(env, "gid"), u.gid);
  o.Set(Key(env, "home"), u.home);
  o.Set(Key(env, "shell"), u.shell);
  Napi::Array groups = Napi::Array::New(env, u.groups.size());
  for (uint32_t i = 0; i < u.groups.size(); i++) groups.Set(i, u.groups[i]);
  o.Set(Key(env, "groups"), groups);
  return o;
}

Napi::Value CreateGroupJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "request must be an object");
  GroupRequest req = ParseGroupRequest(env, info[0].As<Napi::Object>());
  GroupResult res;
  try {
    res = backend::CreateGroup(req);
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
  d.groups.insert(res.id);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", static_cast<double>(res.id));
  out.Set("enforcement", EnforcementToJs(env, res.enforcement));
  return out;
}

Napi::Value GroupStatsJs(const Napi::CallbackInfo& info) {
  try {
    return StatsToJs(info.Env(), backend::GroupStats(GetId(info)));
  } catch (const SysError& e) {
    throw ToJsError(info.Env(), e);
  }
}

Napi::Value ReleaseGroupJs(const Napi::CallbackInfo& info) {
  AddonData& d = Data(info.Env());
  uint64_t id = GetId(info);
  if (d.groups.erase(id) > 0) backend::ReleaseGroup(id);
  return info.Env().Undefined();
}

Napi::Value ResumeJs(const Napi::CallbackInfo& info) {
  try {
    backend::Resume(GetId(info));
  } catch (const SysError& e) {
    throw ToJsError(info.Env(), e);
  }
  return info.Env().Undefined();
}

Napi::Value KillJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = GetId(info);
  std::string reason = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "killed";
  try {
    return Napi::Boolean::New(env, backend::Kill(id, reason));
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
}

// signal(id, signum): to the worker only (range checked in TS: 1..64).
Napi::Value SignalJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = GetId(info);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, "signal: a signal number is required");
  int sig = info[1].As<Napi::Number>().Int32Value();
  if (sig < 1 || sig > 64) throw Napi::RangeError::New(env, "signal: not a signal number");
  try {
    return Napi::Boolean::New(env, backend::Signal(id, sig));
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
}

// ref(id, true|false): whether a live worker keeps this environment's event loop alive.
Napi::Value RefJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  uint64_t id = GetId(info);
  bool ref = info.Length() < 2 || info[1].ToBoolean();
  if (d.live.count(id) == 0) return env.Undefined();
  if (ref)
    d.unrefd.erase(id);
  else
    d.unrefd.insert(id);
  d.UpdateRef(env);
  return env.Undefined();
}

Napi::Value StatsJs(const Napi::CallbackInfo& info) {
  try {
    return StatsToJs(info.Env(), backend::GetStats(GetId(info)));
  } catch (const SysError& e) {
    throw ToJsError(info.Env(), e);
  }
}

Napi::Value ReleaseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  uint64_t id = GetId(info);
  if (d.owned.erase(id) == 0) return env.Undefined();
  d.live.erase(id);
  d.unrefd.erase(id);
  d.UpdateRef(env);
  backend::Release(id);
  return env.Undefined();
}

Napi::Value ProbeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Support s = backend::Probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set(Key(env, "backend"), s.backend);
  o.Set(Key(env, "spawn"), s.spawn);
  if (!s.spawnReason.empty()) o.Set(Key(env, "spawnReason"), s.spawnReason);
  o.Set(Key(env, "limits"), EnforcementToJs(env, s.limits));
  return o;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  static std::once_flag pinned;
  std::call_once(pinned, [] {
    backend::PinModule();
    // What every spawn needs and the backend makes once (the cgroup layout; on Linux the init's
    // memfd), made now, as the module loads: a first spawn made when the fd table is full then
    // fails with EMFILE instead of caching a weaker plan (a worker without its init) for good.
    try {
      backend::Probe();
    } catch (...) {
      // isolationSupport() and the spawns report it.
    }
  });
  AddonData* d = new AddonData();
  env.SetInstanceData<AddonData>(d);  // deleted by node-addon-api at env teardown
  napi_add_env_cleanup_hook(
      env, [](void* p) { Cleanup(static_cast<AddonData*>(p)); }, d);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("spawn", Napi::Function::New(env, SpawnJs, "spawn"));
  exports.Set("resume", Napi::Function::New(env, ResumeJs, "resume"));
  exports.Set("kill", Napi::Function::New(env, KillJs, "kill"));
  exports.Set("signal", Napi::Function::New(env, SignalJs, "signal"));
  exports.Set("stats", Napi::Function::New(env, StatsJs, "stats"));
  exports.Set("ref", Napi::Function::New(env, RefJs, "ref"));
  exports.Set("release", Napi::Function::New(env, ReleaseJs, "release"));
  exports.Set("probe", Napi::Function::New(env, ProbeJs, "probe"));
  exports.Set("lookupUser", Napi::Function::New(env, LookupUserJs, "lookupUser"));
#ifdef _WIN32
  exports.Set("sessionEnvironment", Napi::Function::New(env, SessionEnvironmentJs, "sessionEnvironment"));
#endif
  exports.Set("createGroup", Napi::Function::New(env, CreateGroupJs, "createGroup"));
  exports.Set("groupStats", Napi::Function::New(env, GroupStatsJs, "groupStats"));
  exports.Set("releaseGroup", Napi::Function::New(env, ReleaseGroupJs, "releaseGroup"));
  exports.Set("internals", Internals(env));
  return exports;
}

}  // namespace
}  // namespace js
}  // namespace si

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return si::js::InitModule(env, exports); }
NODE_API_MODULE(spawn_isolated, InitAll)
