// One owner for every kind of OS resource (an fd, a HANDLE, ...), and a scope guard. Closing
// preserves errno / GetLastError (Traits::Close does), so an error path can close and still
// report the error it met, as Chromium's GenericScopedHandle does.
#pragma once

#include <utility>

namespace si {

// Traits: `using Type`, `static Type Null()`, `static bool Valid(Type)`, `static void Close(Type)`.
template <typename Traits>
class Scoped {
 public:
  using Type = typename Traits::Type;
  Scoped() = default;
  explicit Scoped(Type v) : v_(v) {}
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;
  Scoped(Scoped&& o) noexcept : v_(o.release()) {}
  Scoped& operator=(Scoped&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~Scoped() { reset(); }
  Type get() const { return v_; }
  bool valid() const { return Traits::Valid(v_); }
  Type release() {
    Type v = v_;
    v_ = Traits::Null();
    return v;
  }
  void reset(Type v = Traits::Null()) {
    if (Traits::Valid(v_)) Traits::Close(v_);
    v_ = v;
  }

 private:
  Type v_ = Traits::Null();
};

// Runs `f` when the scope ends, unless dismissed (the work it undoes was kept).
template <typename F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ~ScopeExit() {
    if (armed_) f_();
  }
  void Dismiss() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

template <typename F>
ScopeExit<F> OnScopeExit(F f) {
  return ScopeExit<F>(std::move(f));
}

}  // namespace si
