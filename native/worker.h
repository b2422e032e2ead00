// What a worker record has on every backend, and the rules they share: its id and sink come
// from the spawn, and the first reason given for its end is the one reported.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "contract.h"
#include "registry.h"

namespace si {

struct WorkerBase {
  uint64_t id = 0;
  std::shared_ptr<EventSink> sink;
  bool killOnClose = true;
  // Guarded by the monitor's registry mutex.
  std::string reason;
  bool ended = false;  // reaped / exited: nothing left to end

  // First reason wins. False when the worker has already ended (nothing to do then).
  bool ClaimEnd(std::mutex& mu, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (ended) return false;
    if (reason.empty()) reason = why;
    return true;
  }
};

// A new worker record for `req`, numbered `id`.
template <typename W>
std::shared_ptr<W> NewWorker(uint64_t id, const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  auto w = std::make_shared<W>();
  w->id = id;
  w->sink = std::move(sink);
  w->killOnClose = req.killOnClose;
  return w;
}

// A 'limit' event: `limit` was hit by `pid` (value: the count seen, for handles).
inline std::unique_ptr<Event> LimitEvent(uint64_t id, const std::string& limit, int64_t pid, uint64_t value = 0) {
  auto ev = std::make_unique<Event>();
  ev->type = Event::Limit;
  ev->id = id;
  ev->limit = limit;
  ev->pid = pid;
  ev->value = value;
  return ev;
}

// The 'exit' event: `reason` empty when the worker ended by itself.
inline std::unique_ptr<Event> ExitEvent(uint64_t id, int64_t exitCode, int signal, const std::string& reason, const Stats& stats) {
  auto ev = std::make_unique<Event>();
  ev->type = Event::Exit;
  ev->id = id;
  ev->exitCode = exitCode;
  ev->signal = signal;
  ev->reason = reason;
  ev->terminated = !reason.empty();
  ev->stats = stats;
  return ev;
}

// Adds a new group to `groups`: what createGroup answers.
template <typename G>
GroupResult PublishGroup(Registry<G>& groups, std::shared_ptr<G> g, std::vector<Enforcement> enforcement) {
  GroupResult res;
  res.id = g->id;
  res.enforcement = std::move(enforcement);
  groups.Add(std::move(g));
  return res;
}

}  // namespace si
