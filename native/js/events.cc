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
