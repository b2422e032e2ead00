// N-API layer: converts between JS and the internal contract (contract.h), and delivers
// backend events to the JS environment that spawned the worker. Every piece of state lives
// in per-environment instance data, so the addon works in any number of worker_threads.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <set>

#include "contract.h"
#include "internals.h"

namespace si {
namespace {

void ThrowTypeError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::TypeError err = Napi::TypeError::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

Napi::Error ToJsError(Napi::Env env, const SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  if (e.errnum != 0) err.Set("errno", Napi::Number::New(env, static_cast<double>(e.errnum)));
  if (!e.syscall.empty()) err.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.limit.empty()) err.Set("limit", Napi::String::New(env, e.limit));
  return err;
}

Napi::Object StatsToJs(Napi::Env env, const Stats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpuUserMs", s.cpuUserMs);
  o.Set("cpuKernelMs", s.cpuKernelMs);
  o.Set("peakMemory", static_cast<double>(s.peakMemory));
  Napi::Object p = Napi::Object::New(env);
  p.Set("active", s.active);
  p.Set("total", s.total);
  o.Set("processes", p);
  return o;
}

Napi::Array EnforcementToJs(Napi::Env env, const std::vector<Enforcement>& list) {
  Napi::Array enf = Napi::Array::New(env, list.size());
  for (uint32_t i = 0; i < list.size(); i++) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("limit", list[i].limit);
    e.Set("mechanism", list[i].mechanism);
    e.Set("enforced", list[i].enforced);
    if (!list[i].reason.empty()) e.Set("reason", list[i].reason);
    enf.Set(i, e);
  }
  return enf;
}

Napi::Object EventToJs(Napi::Env env, const Event& ev) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", static_cast<double>(ev.id));
  if (ev.type == Event::Exit) {
    o.Set("type", "exit");
    o.Set("exitCode", static_cast<double>(ev.exitCode));
    o.Set("signal", ev.signal);
    o.Set("terminated", ev.terminated);
    o.Set("reason", ev.reason);
    o.Set("stats", StatsToJs(env, ev.stats));
  } else {
    o.Set("type", "limit");
    o.Set("limit", ev.limit);
    o.Set("pid", static_cast<double>(ev.pid));
    o.Set("value", static_cast<double>(ev.value));
  }
  return o;
}

struct AddonData;

void CallJs(Napi::Env env, Napi::Function fn, AddonData* data, Event* ev);
using EventTsfn = Napi::TypedThreadSafeFunction<AddonData, Event, CallJs>;

// One per JS environment.
class EnvSink : public EventSink {
 public:
  void Post(std::unique_ptr<Event> ev) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return;
    Event* raw = ev.release();
    if (tsfn_.NonBlockingCall(raw) != napi_ok) delete raw;
  }
  void Open(EventTsfn tsfn) {
    std::lock_guard<std::mutex> lock(mu_);
    tsfn_ = tsfn;
    open_ = true;
  }
  // After Close nothing more is queued. Called from the TSFN finalizer (the TSFN is still
  // valid then, and Post holds the same lock), and from the environment cleanup hook.
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }

 private:
  std::mutex mu_;
  bool open_ = false;
  EventTsfn tsfn_;
};

struct AddonData {
  std::shared_ptr<EnvSink> sink = std::make_shared<EnvSink>();
  EventTsfn tsfn;
  bool hasTsfn = false;
  std::set<uint64_t> live;    // spawned and not yet exited
  std::set<uint64_t> unrefd;  // live, but unref()'d: they do not keep the loop alive
  std::set<uint64_t> owned;   // not yet released
  std::set<uint64_t> groups;  // groups not yet released
  bool refd = false;

  void UpdateRef(Napi::Env env) {
    if (!hasTsfn) return;
    bool want = live.size() > unrefd.size();
    if (want == refd) return;
    if (want)
      tsfn.Ref(env);
    else
      tsfn.Unref(env);
    refd = want;
  }
};

void CallJs(Napi::Env env, Napi::Function fn, AddonData* data, Event* ev) {
  std::unique_ptr<Event> own(ev);
  if (env == nullptr || fn.IsEmpty() || data == nullptr) return;  // torn down: just free
  if (ev->type == Event::Exit) {
    data->live.erase(ev->id);
    data->unrefd.erase(ev->id);
  }
  try {
    if (ev->type == Event::Exit) data->UpdateRef(env);
    fn.Call({EventToJs(env, *ev)});
  } catch (const Napi::Error&) {
    // The environment is being torn down (a worker_thread that called process.exit(), say) and
    // can run no more JS: there is no one left to tell. (A listener's own exception never gets
    // here: the JS side re-throws it on the next tick.)
  }
}

AddonData& Data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) ThrowTypeError(env, "ERR_INTERNAL_ASSERTION", "spawn-isolated: addon not initialised");
  return *d;
}

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER
constexpr double kMaxCpu = 1023;                        // a cpu_set_t holds CPUs 0..1023

// ---- request parsing: the TS layer validated already; this is the second, independent check.

// Own properties only: a polluted Object.prototype must not reach a request.
Napi::Value Prop(Napi::Object o, const char* name) { return o.HasOwnProperty(name) ? o.Get(name) : o.Env().Undefined(); }

std::string GetString(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"" + what + "\" property must be of type string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "The \"" + what + "\" property must be a string without null bytes");
  return s;
}

double GetNumber(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi) {
  if (!v.IsNumber()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"" + what + "\" property must be of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < lo || d > hi) {
    Napi::RangeError err = Napi::RangeError::New(env, "The value of \"" + what + "\" is out of range");
    err.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw err;
  }
  return d;
}

uint64_t GetU64(Napi::Env env, Napi::Object o, const char* name, const std::string& what) {
  Napi::Value v = Prop(o, name);
  if (v.IsUndefined()) return 0;
  double d = GetNumber(env, v, what, 1, kMaxSafeInteger);
  if (std::floor(d) != d) ThrowTypeError(env, "ERR_OUT_OF_RANGE", "The value of \"" + what + "\" must be an integer");
  return static_cast<uint64_t>(d);
}

bool GetBool(Napi::Env env, Napi::Object o, const char* name, bool dflt) {
  Napi::Value v = Prop(o, name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" property must be of type boolean");
  return v.As<Napi::Boolean>().Value();
}

// An integer that fits in uint32_t (the range itself is TS's to check).
uint32_t GetU32(Napi::Env env, Napi::Object o, const char* name, const std::string& what) {
  uint64_t v = GetU64(env, o, name, what);
  if (v > UINT32_MAX) ThrowTypeError(env, "ERR_OUT_OF_RANGE", "The value of \"" + what + "\" does not fit in 32 bits");
  return static_cast<uint32_t>(v);
}

Napi::Array GetArray(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = Prop(o, name);
  if (!v.IsArray()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" property must be an array");
  return v.As<Napi::Array>();
}

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
  Napi::Value fs = Prop(o, "filesystem");
  if (!fs.IsUndefined()) {
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
  r.strict = GetBool(env, o, "strict", true);
  Napi::Value group = Prop(o, "group");
  if (!group.IsUndefined()) r.group = static_cast<uint64_t>(GetNumber(env, group, "group", 1, kMaxSafeInteger));
  return r;
}

uint64_t GetId(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", "id must be a number");
  return static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
}

// ---- exported functions

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "handler must be a function");
  if (d.hasTsfn) ThrowTypeError(env, "ERR_INVALID_STATE", "spawn-isolated: init() called twice");
  auto* keep = new std::shared_ptr<EnvSink>(d.sink);
  d.tsfn = EventTsfn::New(
      env, info[0].As<Napi::Function>(), "spawn-isolated:events", 0, 1, &d,
      [](Napi::Env, std::shared_ptr<EnvSink>* sink, AddonData*) {
        (*sink)->Close();
        delete sink;
      },
      keep);
  d.tsfn.Unref(env);
  d.hasTsfn = true;
  d.sink->Open(d.tsfn);
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
  o.Set("id", static_cast<double>(res.id));
  o.Set("pid", static_cast<double>(res.pid));
  Napi::Array pipes = Napi::Array::New(env, 3);
  for (uint32_t i = 0; i < 3; i++) pipes.Set(i, res.pipes[i].empty() ? env.Null() : Napi::String::New(env, res.pipes[i]));
  o.Set("pipes", pipes);
  Napi::Array inh = Napi::Array::New(env, res.inherited.size());
  for (uint32_t i = 0; i < res.inherited.size(); i++) inh.Set(i, static_cast<double>(res.inherited[i]));
  o.Set("inherited", inh);
  o.Set("enforcement", EnforcementToJs(env, res.enforcement));
  o.Set("gracefulStop", res.gracefulStop);
  o.Set("channel", res.channel.empty() ? env.Null() : Napi::String::New(env, res.channel));
  o.Set("tempDir", res.tempDir.empty() ? env.Null() : Napi::String::New(env, res.tempDir));
  o.Set("sessionId", res.sessionId < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(res.sessionId)));
  o.Set("user", res.user.empty() ? env.Null() : Napi::String::New(env, res.user));
  return o;
}

Napi::Value LookupUserJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UserRecord u;
  try {
    u = backend::LookupUser(GetString(env, info[0], "name"));
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", u.name);
  o.Set("uid", u.uid);
  o.Set("gid", u.gid);
  o.Set("home", u.home);
  o.Set("shell", u.shell);
  Napi::Array groups = Napi::Array::New(env, u.groups.size());
  for (uint32_t i = 0; i < u.groups.size(); i++) groups.Set(i, u.groups[i]);
  o.Set("groups", groups);
  return o;
}

#ifdef _WIN32
Napi::Value SessionEnvironmentJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    std::vector<std::string> list = backend::SessionEnvironment(static_cast<int64_t>(GetNumber(env, info[0], "session", -2, UINT32_MAX - 1.0)));
    Napi::Array out = Napi::Array::New(env, list.size());
    for (uint32_t i = 0; i < list.size(); i++) out.Set(i, list[i]);
    return out;
  } catch (const SysError& e) {
    throw ToJsError(env, e);
  }
}
#endif

Napi::Value CreateGroupJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& d = Data(env);
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "request must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  GroupRequest req;
  req.limits = ParseLimits(env, o);
  req.strict = GetBool(env, o, "strict", true);
  req.killOnClose = GetBool(env, o, "killOnClose", true);
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
  o.Set("backend", s.backend);
  o.Set("spawn", s.spawn);
  if (!s.spawnReason.empty()) o.Set("spawnReason", s.spawnReason);
  o.Set("limits", EnforcementToJs(env, s.limits));
  return o;
}

// ---- internals: the backends' pure pieces, for tests (see internals.h)

#ifdef _WIN32
std::vector<std::string> GetStrings(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string(what) + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(GetString(env, a.Get(i), what));
  return out;
}
#endif

#ifdef _WIN32
std::vector<uint32_t> GetUint32s(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string(what) + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToNumber().Uint32Value());
  return out;
}

Napi::Object WinInternals(Napi::Env env, Napi::Object o) {
  o.Set("cpuRate", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          std::string why;
          uint32_t rate = internals::CpuRate(info[0].ToNumber().DoubleValue(), info[1].ToNumber().DoubleValue(), &why);
          Napi::Object r = Napi::Object::New(info.Env());
          r.Set("rate", rate);
          if (!why.empty()) r.Set("why", why);
          return r;
        }));
  o.Set("groupAffinity", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          std::vector<std::pair<uint32_t, uint64_t> > pairs;
          try {
            pairs = internals::GroupAffinity(GetUint32s(e, info[0], "cpus"), GetUint32s(e, info[1], "groupSizes"));
          } catch (const SysError& err) {
            throw ToJsError(e, err);
          }
          Napi::Array out = Napi::Array::New(e, pairs.size());
          for (uint32_t i = 0; i < pairs.size(); i++) {
            Napi::Array p = Napi::Array::New(e, 2);
            p.Set(0u, pairs[i].first);
            p.Set(1u, Napi::BigInt::New(e, pairs[i].second));
            out.Set(i, p);
          }
          return out;
        }));
  o.Set("limitEchoes", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          if (!info[0].IsArray()) ThrowTypeError(e, "ERR_INVALID_ARG_TYPE", "messages must be an array");
          Napi::Array a = info[0].As<Napi::Array>();
          std::vector<std::vector<uint32_t> > msgs;
          for (uint32_t i = 0; i < a.Length(); i++) msgs.push_back(GetUint32s(e, a.Get(i), "message"));
          std::vector<bool> admitted = internals::LimitEchoes(msgs);
          Napi::Array out = Napi::Array::New(e, admitted.size());
          for (uint32_t i = 0; i < admitted.size(); i++) out.Set(i, Napi::Boolean::New(e, admitted[i]));
          return out;
        }));
  o.Set("tempBase", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          try {
            return Napi::String::New(info.Env(), internals::TempBase());
          } catch (const SysError& err) {
            throw ToJsError(info.Env(), err);
          }
        }));
  o.Set("makeTempDir", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          std::string base = GetString(e, info[0], "base"), first = GetString(e, info[1], "firstName");
          try {
            return Napi::String::New(e, internals::MakeTempDir(base, first));
          } catch (const SysError& err) {
            throw ToJsError(e, err);
          }
        }));
  o.Set("isTempLeftover", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::Boolean::New(info.Env(), internals::IsTempLeftover(GetString(info.Env(), info[0], "name")));
        }));
  o.Set("jobMemoryBytes", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          try {
            return Napi::Number::New(info.Env(), static_cast<double>(internals::JobMemoryBytes(
                                                     static_cast<uint64_t>(info[0].ToNumber().DoubleValue()), info[1].ToNumber().Int32Value())));
          } catch (const SysError& err) {
            throw ToJsError(info.Env(), err);
          }
        }));
  o.Set("hiddenConsole", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::String::New(info.Env(), internals::HiddenConsole(info[0].ToBoolean(), info[1].ToNumber().Uint32Value()));
        }));
  o.Set("watchdogUnopenedIsGone", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::Boolean::New(info.Env(), internals::WatchdogUnopenedIsGone(info[0].ToNumber().Uint32Value(), info[1].ToBoolean()));
        }));
  return o;
}
#endif

Napi::Array ToJsStrings(Napi::Env env, const std::vector<std::string>& list) {
  Napi::Array out = Napi::Array::New(env, list.size());
  for (uint32_t i = 0; i < list.size(); i++) out.Set(i, list[i]);
  return out;
}

Napi::Object Internals(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#ifdef _WIN32
  o.Set("commandLine", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::String::New(info.Env(), internals::CommandLine(GetStrings(info.Env(), info[0], "args")));
        }));
  o.Set("environmentBlock", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return ToJsStrings(info.Env(), internals::EnvironmentBlock(GetStrings(info.Env(), info[0], "env")));
        }));
  o.Set("win32Code", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::String::New(info.Env(), internals::Win32Code(info[0].As<Napi::Number>().Uint32Value()));
        }));
  WinInternals(env, o);
#else
  o.Set("mountInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          std::vector<internals::Mount> mounts = internals::MountInfo(GetString(e, info[0], "text"));
          Napi::Array out = Napi::Array::New(e, mounts.size());
          for (uint32_t i = 0; i < mounts.size(); i++) out.Set(i, ToJsStrings(e, {mounts[i].point, mounts[i].type, mounts[i].options}));
          return out;
        }));
  o.Set("procCgroup", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          Napi::Object out = Napi::Object::New(e);
          for (auto& kv : internals::ProcCgroup(GetString(e, info[0], "text"))) out.Set(kv.first, kv.second);
          return out;
        }));
  o.Set("seccompFilter", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env e = info.Env();
          std::vector<internals::BpfInsn> prog = internals::SeccompFilter(info[0].ToBoolean(), info[1].ToBoolean(), info[2].ToBoolean());
          Napi::Array out = Napi::Array::New(e, prog.size());
          for (uint32_t i = 0; i < prog.size(); i++) {
            Napi::Array insn = Napi::Array::New(e, 4);
            insn.Set(0u, prog[i].code);
            insn.Set(1u, prog[i].jt);
            insn.Set(2u, prog[i].jf);
            insn.Set(3u, prog[i].k);
            out.Set(i, insn);
          }
          return out;
        }));
  o.Set("auditArch", Napi::Number::New(env, internals::AuditArch()));
  o.Set("settleCgroups", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return ToJsStrings(info.Env(), internals::SettleCgroups());
        }));
#endif
  return o;
}

void Cleanup(AddonData* d) {
  // The environment is going away (process exit or worker_thread end): stop delivery, and
  // release every worker it still owns (killOnClose decides whether the tree dies).
  // Node closes the TSFN itself at teardown; its finalizer closes the sink as well.
  d->sink->Close();
  for (uint64_t id : d->owned) backend::Release(id);
  d->owned.clear();
  for (uint64_t id : d->groups) backend::ReleaseGroup(id);
  d->groups.clear();
  d->live.clear();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  static std::once_flag pinned;
  std::call_once(pinned, backend::PinModule);
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
}  // namespace si

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return si::InitModule(env, exports); }
NODE_API_MODULE(spawn_isolated, InitAll)
