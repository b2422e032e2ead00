// The event bridge: backend events (posted from any thread) delivered to the JS environment
// that spawned the worker, through one thread-safe function per environment; and the
// per-environment state (AddonData) that decides whether live workers keep its loop alive.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "../contract.h"

namespace si {
namespace js {

struct AddonData;

void CallJs(Napi::Env env, Napi::Function fn, AddonData* data, Event* ev);
using EventTsfn = Napi::TypedThreadSafeFunction<AddonData, Event, CallJs>;

// One per JS environment: what a backend posts its events to.
class EnvSink : public EventSink {
 public:
  void Post(std::unique_ptr<Event> ev) override;
  void Open(EventTsfn tsfn);
  // After Close nothing more is queued. Called from the TSFN finalizer (the TSFN is still
  // valid then, and Post holds the same lock), and from the environment cleanup hook.
  void Close();

 private:
  std::mutex mu_;
  bool open_ = false;
  EventTsfn tsfn_;
};

// One per JS environment (instance data).
struct AddonData {
  std::shared_ptr<EnvSink> sink = std::make_shared<EnvSink>();
  EventTsfn tsfn;
  bool hasTsfn = false;
  std::set<uint64_t> live;    // spawned and not yet exited
  std::set<uint64_t> unrefd;  // live, but unref()'d: they do not keep the loop alive
  std::set<uint64_t> owned;   // not yet released
  std::set<uint64_t> groups;  // groups not yet released
  bool refd = false;
  // Property names as JS strings, made once (Key): naming a property by a C string makes and
  // looks up a new string each time, and a spawn reads and writes dozens of them.
  // (Node-API before v10 refers to objects only: the strings are held in an array.)
  Napi::Reference<Napi::Array> keyStrings;
  std::unordered_map<const char*, uint32_t> keyIndex;
  // The last spawn's enforcement list and its JS array: most spawns of a service report the
  // same one, and the array is only read (enforcementMap copies it).
  std::string lastEnforcement;
  Napi::Reference<Napi::Array> lastEnforcementJs;

  // Refs the TSFN while some live worker is ref'd, unrefs it otherwise.
  void UpdateRef(Napi::Env env);
};

// This environment's AddonData (throws if the addon was not initialised in it).
AddonData& Data(Napi::Env env);

// init(handler): creates the environment's TSFN that calls `handler` with each event.
void OpenEvents(Napi::Env env, AddonData& d, Napi::Function handler);

// The environment is going away: stop delivery, and release every worker and group it still
// owns (killOnClose decides whether the trees die).
void Cleanup(AddonData* d);

}  // namespace js
}  // namespace si
