// The process-wide table of live workers that each backend's monitor thread serves: ids,
// lookup, removal, and the one mutex that also guards each worker's mutable state.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "contract.h"

namespace si {

template <typename T>
class Registry {
 public:
  uint64_t NextId() { return ++nextId_; }
  std::mutex& mu() { return mu_; }

  void Add(std::shared_ptr<T> c) {
    std::lock_guard<std::mutex> lock(mu_);
    items_[c->id] = std::move(c);
  }
  std::shared_ptr<T> Find(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = items_.find(id);
    return it == items_.end() ? nullptr : it->second;
  }
  // Find, or an ESRCH error naming the call (`what`) for an id that is gone.
  std::shared_ptr<T> Get(uint64_t id, const char* what) {
    std::shared_ptr<T> c = Find(id);
    if (!c) throw SysError("ESRCH", 0, what, std::string(what) + ": no such worker or group (already released)");
    return c;
  }
  std::shared_ptr<T> Remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = items_.find(id);
    if (it == items_.end()) return nullptr;
    std::shared_ptr<T> c = std::move(it->second);
    items_.erase(it);
    return c;
  }
  bool Empty() {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.empty();
  }
  // Every worker, for the monitor thread to look at without holding the lock throughout.
  std::vector<std::shared_ptr<T>> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<T>> out;
    out.reserve(items_.size());
    for (auto& kv : items_) out.push_back(kv.second);
    return out;
  }

 private:
  std::atomic<uint64_t> nextId_{0};
  std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<T>> items_;
};

}  // namespace si
