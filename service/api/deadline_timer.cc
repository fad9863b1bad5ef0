#include "service/api/deadline_timer.h"

namespace fetchd::api {

DeadlineTimer::DeadlineTimer(const Clock* clock)
    : clock_(clock), thread_([this] { Run(); }) {}

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

void DeadlineTimer::ClockAdvanced() {
  absl::MutexLock lock(&mu_);
  ++clock_advances_;
}

size_t DeadlineTimer::pending() const {
  absl::MutexLock lock(&mu_);
  return scheduled_.size();
}

void DeadlineTimer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    // Wakes on Stop, on a new earliest entry, when the clock was advanced,
    // or when the earliest is due.
    const absl::Time next = scheduled_.empty()
                                ? absl::InfiniteFuture()
                                : scheduled_.begin()->first.first;
    const uint64_t advances = clock_advances_;
    const auto changed = [this, next,
                          advances]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || clock_advances_ != advances ||
             (!scheduled_.empty() && scheduled_.begin()->first.first < next);
    };
    const absl::Time now = clock_->Now();
    if (next > now &&
        mu_.AwaitWithTimeout(absl::Condition(&changed), next - now)) {
      continue;
    }
    if (stopping_ || scheduled_.empty() ||
        scheduled_.begin()->first.first > clock_->Now()) {
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
