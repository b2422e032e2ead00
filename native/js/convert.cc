// Value conversion between JS and the contract (see convert.h).
#include "convert.h"

#include <cmath>

#include "events.h"

namespace si {
namespace js {

void ThrowTypeError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::TypeError err = Napi::TypeError::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

void ThrowRangeError(Napi::Env env, const std::string& msg) {
  Napi::RangeError err = Napi::RangeError::New(env, msg);
  err.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
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

Napi::Value Key(Napi::Env env, const char* name) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) return Napi::String::New(env, name);
  if (d->keyStrings.IsEmpty()) d->keyStrings = Napi::Persistent(Napi::Array::New(env));
  Napi::Array strings = d->keyStrings.Value();
  auto it = d->keyIndex.find(name);
  if (it != d->keyIndex.end()) return strings.Get(it->second);
  Napi::String s = Napi::String::New(env, name);
  uint32_t i = strings.Length();
  strings.Set(i, s);
  d->keyIndex.emplace(name, i);
  return s;
}

Napi::Object StatsToJs(Napi::Env env, const Stats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set(Key(env, "cpuUserMs"), s.cpuUserMs);
  o.Set(Key(env, "cpuKernelMs"), s.cpuKernelMs);
  o.Set(Key(env, "peakMemory"), static_cast<double>(s.peakMemory));
  Napi::Object p = Napi::Object::New(env);
  p.Set(Key(env, "active"), s.active);
  p.Set(Key(env, "total"), s.total);
  o.Set(Key(env, "processes"), p);
  return o;
}

Napi::Array EnforcementToJs(Napi::Env env, const std::vector<Enforcement>& list) {
  std::string id;
  for (const Enforcement& e : list) {
    id += e.limit;
    id += '\0';
    id += e.mechanism;
    id += '\0';
    id += e.enforced ? '1' : '0';
    id += e.reason;
    id += '\0';
  }
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d != nullptr && !d->lastEnforcementJs.IsEmpty() && d->lastEnforcement == id) return d->lastEnforcementJs.Value();
  Napi::Array enf = Napi::Array::New(env, list.size());
  for (uint32_t i = 0; i < list.size(); i++) {
    Napi::Object e = Napi::Object::New(env);
    e.Set(Key(env, "limit"), list[i].limit);
    e.Set(Key(env, "mechanism"), list[i].mechanism);
    e.Set(Key(env, "enforced"), list[i].enforced);
    if (!list[i].reason.empty()) e.Set(Key(env, "reason"), list[i].reason);
    enf.Set(i, e);
  }
  if (d != nullptr) {
    d->lastEnforcement = std::move(id);
    d->lastEnforcementJs = Napi::Persistent(enf);
  }
  return enf;
}

Napi::Array ToJsStrings(Napi::Env env, const std::vector<std::string>& list) {
  Napi::Array out = Napi::Array::New(env, list.size());
  for (uint32_t i = 0; i < list.size(); i++) out.Set(i, list[i]);
  return out;
}

Napi::Value Prop(Napi::Object o, const char* name) {
  Napi::Value k = Key(o.Env(), name);
  return o.HasOwnProperty(k) ? o.Get(k) : o.Env().Undefined();
}

std::string GetString(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"" + what + "\" property must be of type string");
  // One call for a string that fits the buffer (most do: an env entry, an argument); two, to
  // size it first, for a longer one. A write that stopped short of a UTF-8 character leaves at
  // most 3 bytes unused: one that left more was complete.
  char buf[512];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof(buf), &n) != napi_ok) throw Napi::Error::New(env);
  std::string s = n + 4 < sizeof(buf) ? std::string(buf, n) : v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    ThrowTypeError(env, "ERR_INVALID_ARG_VALUE", "The \"" + what + "\" property must be a string without null bytes");
  return s;
}

double GetNumber(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi) {
  if (!v.IsNumber()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"" + what + "\" property must be of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < lo || d > hi) ThrowRangeError(env, "The value of \"" + what + "\" is out of range");
  return d;
}

uint64_t GetU64(Napi::Env env, Napi::Object o, const char* name, const std::string& what) {
  Napi::Value v = Prop(o, name);
  if (v.IsUndefined()) return 0;
  double d = GetNumber(env, v, what, 1, kMaxSafeInteger);
  if (std::floor(d) != d) ThrowTypeError(env, "ERR_OUT_OF_RANGE", "The value of \"" + what + "\" must be an integer");
  return static_cast<uint64_t>(d);
}

uint32_t GetU32(Napi::Env env, Napi::Object o, const char* name, const std::string& what) {
  uint64_t v = GetU64(env, o, name, what);
  if (v > UINT32_MAX) ThrowTypeError(env, "ERR_OUT_OF_RANGE", "The value of \"" + what + "\" does not fit in 32 bits");
  return static_cast<uint32_t>(v);
}

bool GetBool(Napi::Env env, Napi::Object o, const char* name, bool dflt) {
  Napi::Value v = Prop(o, name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" property must be of type boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Array GetArray(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = Prop(o, name);
  if (!v.IsArray()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" property must be an array");
  return v.As<Napi::Array>();
}

uint64_t GetId(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", "id must be a number");
  return static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
}

}  // namespace js
}  // namespace si
