// The `internals` export: the backends' pure pieces (native/internals.h) as JS functions, for
// tests that check them without spawning.
#pragma once

#include <napi.h>

namespace si {
namespace js {

Napi::Object Internals(Napi::Env env);

}  // namespace js
}  // namespace si
