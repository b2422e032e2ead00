// The `internals` export (see internals_js.h).
#include "internals_js.h"

#include "../contract.h"
#include "../internals.h"
#include "convert.h"

namespace si {
namespace js {
namespace {

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
            return Napi::Number::New(info.Env(),
                                     static_cast<double>(internals::JobMemoryBytes(static_cast<uint64_t>(info[0].ToNumber().DoubleValue()),
                                                                                   info[1].ToNumber().Int32Value())));
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

}  // namespace

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
          std::vector<internals::BpfInsn> prog =
              internals::SeccompFilter(info[0].ToBoolean(), info[1].ToBoolean(), info[2].ToBoolean(),
                                       info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0);
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
  o.Set("keptFiles", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return ToJsStrings(info.Env(), internals::KeptFiles());
        }));
  o.Set("settleCgroups", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
          return ToJsStrings(info.Env(), internals::SettleCgroups());
        }));
#endif
  return o;
}

}  // namespace js
}  // namespace si
