// The event bridge (see events.h).
#include "events.h"

#include "convert.h"

namespace si {
namespace js {

void EnvSink::Post(std::unique_ptr<Event> ev) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!open_) return;
  Event* raw = ev.release();
  if (tsfn_.NonBlockingCall(raw) != napi_ok) delete raw;
}

void EnvSink::Open(EventTsfn tsfn) {
  std::lock_guard<std::mutex> lock(mu_);
  tsfn_ = tsfn;
  open_ = true;
}

void EnvSink::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = false;
}

void AddonData::UpdateRef(Napi::Env env) {
  if (!hasTsfn) return;
  bool want = live.size() > unrefd.size();
  if (want == refd) return;
  if (want)
    tsfn.Ref(env);
  else
    tsfn.Unref(env);
  refd = want;
}

namespace {

// An object built with the C API, each step checked. node-addon-api turns a failed step into a
// C++ exception whose Napi::Error::New aborts the process when it cannot build that error either,
// which is what a worker_thread being terminated gives ("FATAL ERROR: Error::Error
// napi_define_properties", seen): it can run no JS, and the event is for no one any more.
class RawObject {
 public:
  explicit RawObject(napi_env env, napi_value o = nullptr) : env_(env), o_(o) {
    if (o_ == nullptr) ok_ = napi_create_object(env, &o_) == napi_ok;
  }
  RawObject& Num(const char* key, double v) {
    napi_value x;
    return Put(key, ok_ && napi_create_double(env_, v, &x) == napi_ok ? x : nullptr);
  }
  RawObject& Bool(const char* key, bool v) {
    napi_value x;
    return Put(key, ok_ && napi_get_boolean(env_, v, &x) == napi_ok ? x : nullptr);
  }
  RawObject& Str(const char* key, const std::string& v) {
    napi_value x;
    return Put(key, ok_ && napi_create_string_utf8(env_, v.data(), v.size(), &x) == napi_ok ? x : nullptr);
  }
  RawObject& Put(const char* key, napi_value x) {
    ok_ = ok_ && x != nullptr && napi_set_named_property(env_, o_, key, x) == napi_ok;
    return *this;
  }
  napi_value value() const { return ok_ ? o_ : nullptr; }

 private:
  napi_env env_;
  napi_value o_ = nullptr;
  bool ok_ = true;
};

napi_value StatsObject(napi_env env, const Stats& s) {
  napi_value processes = RawObject(env).Num("active", s.active).Num("total", s.total).value();
  return RawObject(env)
      .Num("cpuUserMs", s.cpuUserMs)
      .Num("cpuKernelMs", s.cpuKernelMs)
      .Num("peakMemory", static_cast<double>(s.peakMemory))
      .Put("processes", processes)
      .value();
}

// As ToJsError makes it (convert.cc), with the C API.
napi_value ErrorObject(napi_env env, const SysError& e) {
  napi_value msg, err;
  if (napi_create_string_utf8(env, e.message.data(), e.message.size(), &msg) != napi_ok ||
      napi_create_error(env, nullptr, msg, &err) != napi_ok)
    return nullptr;
  RawObject o(env, err);
  o.Str("code", e.code);
  if (e.errnum != 0) o.Num("errno", static_cast<double>(e.errnum));
  if (!e.syscall.empty()) o.Str("syscall", e.syscall);
  if (!e.limit.empty()) o.Str("limit", e.limit);
  return o.value();
}

// The JS object of an event (null: a step failed).
napi_value EventObject(napi_env env, const Event& ev) {
  RawObject o(env);
  o.Num("id", static_cast<double>(ev.id));
  if (ev.type == Event::Exit) {
    o.Str("type", "exit")
        .Num("exitCode", static_cast<double>(ev.exitCode))
        .Num("signal", ev.signal)
        .Bool("terminated", ev.terminated)
        .Str("reason", ev.reason)
        .Put("stats", StatsObject(env, ev.stats));
    if (ev.error) o.Put("error", ErrorObject(env, *ev.error));
  } else if (ev.type == Event::Spawned) {
    o.Str("type", "spawned");
  } else {
    o.Str("type", "limit").Str("limit", ev.limit).Num("pid", static_cast<double>(ev.pid)).Num("value", static_cast<double>(ev.value));
  }
  return o.value();
}

}  // namespace

void CallJs(Napi::Env env, Napi::Function fn, AddonData* data, Event* ev) {
  std::unique_ptr<Event> own(ev);
  if (env == nullptr || fn.IsEmpty() || data == nullptr) return;  // torn down: just free
  if (ev->type == Event::Exit) {
    data->live.erase(ev->id);
    data->unrefd.erase(ev->id);
  }
  try {
    if (ev->type == Event::Exit) data->UpdateRef(env);
  } catch (const Napi::Error&) {
  }
  // The environment is being torn down (a worker_thread that called process.exit(), or is being
  // terminated) and can run no more JS: there is no one left to tell, and nothing is thrown. (A
  // listener's own exception never gets here: the JS side re-throws it on the next tick.)
  napi_value arg = EventObject(env, *ev), recv, result;
  if (arg != nullptr && napi_get_undefined(env, &recv) == napi_ok && napi_call_function(env, recv, fn, 1, &arg, &result) == napi_ok) return;
  bool pending = false;
  napi_value exception;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &exception);
}

AddonData& Data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) ThrowTypeError(env, "ERR_INTERNAL_ASSERTION", "spawn-isolated: addon not initialised");
  return *d;
}

void OpenEvents(Napi::Env env, AddonData& d, Napi::Function handler) {
  if (d.hasTsfn) ThrowTypeError(env, "ERR_INVALID_STATE", "spawn-isolated: init() called twice");
  auto* keep = new std::shared_ptr<EnvSink>(d.sink);
  d.tsfn = EventTsfn::New(
      env, handler, "spawn-isolated:events", 0, 1, &d,
      [](Napi::Env, std::shared_ptr<EnvSink>* sink, AddonData*) {
        (*sink)->Close();
        delete sink;
      },
      keep);
  d.tsfn.Unref(env);
  d.hasTsfn = true;
  d.sink->Open(d.tsfn);
}

void Cleanup(AddonData* d) {
  // Node closes the TSFN itself at teardown; its finalizer closes the sink as well.
  d->sink->Close();
  for (uint64_t id : d->owned) backend::Release(id);
  d->owned.clear();
  for (uint64_t id : d->groups) backend::ReleaseGroup(id);
  d->groups.clear();
  d->live.clear();
  // The references this environment's data holds go now, while the environment can still take
  // them back: Node-API's own teardown runs after this hook, and which of its reference list
  // and this data it finalizes first is not the same in every Node version.
  d->keyStrings.Reset();
  d->keyIndex.clear();
  d->lastEnforcementJs.Reset();
  d->lastEnforcement.clear();
}

}  // namespace js
}  // namespace si
