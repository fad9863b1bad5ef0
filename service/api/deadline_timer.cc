#include "service/api/deadline_timer.h"

#include "absl/time/clock.h"

namespace fetchd::api {

DeadlineTimer::DeadlineTimer() : thread_([this] { Run(); }) {}

DeadlineTimer::~DeadlineTimer() { Stop(); }

void DeadlineTimer::Stop() {
  std::map<Key, absl::AnyInvocable<void() &&>> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(scheduled_);
  }
  if (thread_.joinable()) thread_.join();
}

DeadlineTimer::Key DeadlineTimer::Schedule(
    absl::Time when, absl::AnyInvocable<void() &&> callback) {
  absl::MutexLock lock(&mu_);
  const Key key{when, next_id_++};
  if (!stopping_) scheduled_.emplace(key, std::move(callback));
  return key;
}

void DeadlineTimer::Cancel(const Key& key) {
  absl::AnyInvocable<void() &&> dropped;
  absl::MutexLock lock(&mu_);
  if (const auto it = scheduled_.find(key); it != scheduled_.end()) {
    dropped = std::move(it->second);
    scheduled_.erase(it);
  }
  // `dropped` (and what it holds) goes after the lock: declared first.
}

size_t DeadlineTimer::pending() const {
  absl::MutexLock lock(&mu_);
  return scheduled_.size();
}

void DeadlineTimer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    // Wakes on Stop, on a new earliest entry, or when the earliest is due.
    const absl::Time next = scheduled_.empty()
                                ? absl::InfiniteFuture()
                                : scheduled_.begin()->first.first;
    const auto changed = [this, next]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ ||
             (!scheduled_.empty() && scheduled_.begin()->first.first < next);
    };
    if (next > absl::Now() &&
        mu_.AwaitWithDeadline(absl::Condition(&changed), next)) {
      continue;
    }
    if (stopping_ || scheduled_.empty() ||
        scheduled_.begin()->first.first > absl::Now()) {
      continue;
    }
    absl::AnyInvocable<void()&&> callback =
        std::move(scheduled_.begin()->second);
    scheduled_.erase(scheduled_.begin());
    mu_.Unlock();
    std::move(callback)();
    mu_.Lock();
  }
}

}  // namespace fetchd::api
