// Value conversion between JS and the contract (contract.h): Node-style errors, results and
// events to JS; typed reads of a request's own properties. Used by the rest of native/js.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "../contract.h"

namespace si {
namespace js {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

// Throws a TypeError with Node's `code`.
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& code, const std::string& msg);
// Throws a RangeError with code ERR_OUT_OF_RANGE.
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& msg);

// ---- to JS
Napi::Error ToJsError(Napi::Env env, const SysError& e);
Napi::Object StatsToJs(Napi::Env env, const Stats& s);
Napi::Array EnforcementToJs(Napi::Env env, const std::vector<Enforcement>& list);
Napi::Array ToJsStrings(Napi::Env env, const std::vector<std::string>& list);

// `name` as a JS string, made once per environment (`name` must be a string literal: it is
// keyed by its address).
Napi::Value Key(Napi::Env env, const char* name);

// ---- from JS. Own properties only: a polluted Object.prototype must not reach a request.
Napi::Value Prop(Napi::Object o, const char* name);
std::string GetString(Napi::Env env, Napi::Value v, const std::string& what);
double GetNumber(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi);
// An integer >= 1 (0 when absent).
uint64_t GetU64(Napi::Env env, Napi::Object o, const char* name, const std::string& what);
// ... that fits in uint32_t.
uint32_t GetU32(Napi::Env env, Napi::Object o, const char* name, const std::string& what);
bool GetBool(Napi::Env env, Napi::Object o, const char* name, bool dflt);
Napi::Array GetArray(Napi::Env env, Napi::Object o, const char* name);
// info[0]: a worker's or a group's id.
uint64_t GetId(const Napi::CallbackInfo& info);

}  // namespace js
}  // namespace si
