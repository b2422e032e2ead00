// A spawn or group request from JS (lib/native.ts NativeSpawnRequest / NativeGroupRequest) to
// the contract. The TS layer validated already; this is the second, independent check: types
// and fit, own properties only.
#pragma once

#include <napi.h>

#include "../contract.h"

namespace si {
namespace js {

SpawnRequest ParseRequest(Napi::Env env, Napi::Object o);
GroupRequest ParseGroupRequest(Napi::Env env, Napi::Object o);

}  // namespace js
}  // namespace si
