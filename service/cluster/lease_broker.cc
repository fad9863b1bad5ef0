#include "service/cluster/lease_broker.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "spdlog/spdlog.h"

namespace fetchd::cluster {
namespace {

using core::politeness::WaitReason;

constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// How long the clock mapping of the round trip with the least delay is
// kept before a slower one may replace it (the clocks drift apart).
constexpr absl::Duration kClockSampleLife = absl::Seconds(10);

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

// 1 s / rate, rounded up to the nanosecond (as RateLimiter does).
absl::Duration Interval(double rate) {
  if (rate <= 0) return absl::ZeroDuration();
  return absl::Nanoseconds(std::ceil(1e9 / rate));
}

}  // namespace

LeaseBroker::LeaseBroker(const LimiterOptions& options, LeaseStore* store,
                         const Clock* clock, LimiterObserver* observer)
    : options_(options), store_(store), clock_(clock), observer_(observer) {
  if (observer_ != nullptr) observer_->OnLimiterMode(LimiterMode::kDegraded);
}

LeaseBroker::~LeaseBroker() { Stop(); }

void LeaseBroker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void LeaseBroker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (!connected_) return;
  const absl::Time now = clock_->Now();
  if (SyncDue(now, /*leaving=*/true)) {
    absl::StatusOr<Membership> left =
        store_->Heartbeat(options_.lease_ttl, /*leaving=*/true);
    if (!left.ok()) {
      spdlog::warn("limiter: leaving the replica set: {}",
                   left.status().ToString());
    }
  }
  store_->Disconnect();
  connected_ = false;
}

bool LeaseBroker::Woken() const { return kick_ || stopping_; }

void LeaseBroker::Run() {
  for (;;) {
    const absl::Time next = RunOnce();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Duration wait = next - clock_->Now();
    if (wait > absl::ZeroDuration() && !kick_) {
      mu_.AwaitWithTimeout(absl::Condition(this, &LeaseBroker::Woken), wait);
    }
    kick_ = false;
    if (stopping_) return;
  }
}

absl::Time LeaseBroker::RunOnce() {
  const absl::Time now = clock_->Now();
  {
    int starts = 0;
    {
      absl::MutexLock lock(&mu_);
      starts = std::exchange(starts_, 0);
      EraseUnused(now);
    }
    if (observer_ != nullptr && starts > 0) observer_->OnLimiterStarts(starts);
  }
  if (!connected_) {
    if (now < next_connect_) return next_connect_;
    const absl::Status status = store_->Connect();
    if (observer_ != nullptr) {
      observer_->OnRedisCall(RedisOperation::kConnect, 1, clock_->Now() - now,
                             status);
    }
    if (!status.ok()) {
      Fail(status, now);
      return next_connect_;
    }
    connected_ = true;
    next_heartbeat_ = now;
  }
  if (now >= next_heartbeat_ && !Heartbeat(now)) return next_connect_;
  {
    std::vector<std::pair<HostWakeup*, std::string>> wake;
    {
      absl::MutexLock lock(&mu_);
      if (mode_ == LimiterMode::kLearning && now >= learning_until_) {
        SetMode(LimiterMode::kRedis, wake);
      }
    }
    Wake(std::move(wake));
  }
  if (!SyncDue(now, /*leaving=*/false)) return next_connect_;
  absl::MutexLock lock(&mu_);
  absl::Time next = std::min(NextDue(now), next_heartbeat_);
  if (mode_ == LimiterMode::kLearning) next = std::min(next, learning_until_);
  return next;
}

void LeaseBroker::NoteStoreTime(int64_t store_now, absl::Time sent,
                                absl::Time received) {
  const absl::Duration rtt = received - sent;
  if (rtt > clock_rtt_ && received - clock_at_ < kClockSampleLife) return;
  clock_rtt_ = rtt;
  clock_at_ = received;
  clock_offset_us_ = store_now - absl::ToUnixMicros(sent + rtt / 2);
}

absl::Time LeaseBroker::LocalTime(int64_t store_time) const {
  return absl::FromUnixMicros(store_time - clock_offset_us_);
}

int64_t LeaseBroker::StoreTime(absl::Time local) const {
  return absl::ToUnixMicros(local) + clock_offset_us_;
}

bool LeaseBroker::Heartbeat(absl::Time now) {
  absl::StatusOr<Membership> m =
      store_->Heartbeat(options_.lease_ttl, /*leaving=*/false);
  if (observer_ != nullptr) {
    observer_->OnRedisCall(RedisOperation::kHeartbeat, 1, clock_->Now() - now,
                           m.status());
  }
  if (!m.ok()) {
    Fail(m.status(), now);
    return false;
  }
  backoff_ = absl::ZeroDuration();
  next_heartbeat_ = now + options_.lease_ttl / 3;
  const bool new_epoch = m->epoch != epoch_;
  if (new_epoch && !epoch_.empty()) {
    spdlog::warn("limiter: redis epoch changed ({} -> {}): learning for {}",
                 epoch_, m->epoch, absl::FormatDuration(m->learning_left));
  }
  epoch_ = m->epoch;
  std::vector<std::pair<HostWakeup*, std::string>> wake;
  {
    absl::MutexLock lock(&mu_);
    live_ = std::max(1, m->live);
    if (new_epoch && m->learning_left > absl::ZeroDuration()) {
      learning_until_ = now + m->learning_left;
      SetMode(LimiterMode::kLearning, wake);
    } else if (mode_ == LimiterMode::kDegraded ||
               (mode_ == LimiterMode::kLearning && now >= learning_until_)) {
      SetMode(LimiterMode::kRedis, wake);
    }
  }
  Wake(std::move(wake));
  return true;
}

void LeaseBroker::Fail(const absl::Status& status, absl::Time now) {
  store_->Disconnect();
  connected_ = false;
  // The next connection may reach another server (a failover), with
  // another clock.
  clock_rtt_ = absl::InfiniteDuration();
  backoff_ = backoff_ == absl::ZeroDuration()
                 ? kMinBackoff
                 : std::min(backoff_ * 2, kMaxBackoff);
  next_connect_ = now + backoff_ * absl::Uniform(rng_, 0.5, 1.0);
  std::vector<std::pair<HostWakeup*, std::string>> wake;
  int dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    if (mode_ != LimiterMode::kDegraded) {
      spdlog::warn(
          "limiter: redis failed ({}): degraded shares until it is back",
          status.ToString());
    }
    SetMode(LimiterMode::kDegraded, wake);
    // Stopped: the workers (the owners) may be gone already.
    if (stopped_) wake.clear();
    for (auto& [key, pool] : pools_) {
      // Idle leases are given back as soon as the store is reached again
      // (they would block others until they expire); send times are the
      // store's.
      if (pool.held.size() > static_cast<size_t>(pool.in_use)) {
        pool.release_pending.insert(pool.release_pending.end(),
                                    pool.held.begin() + pool.in_use,
                                    pool.held.end());
        pool.held.resize(pool.in_use);
      }
      dropped += static_cast<int>(pool.tokens.size());
      pool.tokens.clear();
      pool.fresh_until = absl::InfinitePast();
      pool.sync_now = false;
    }
  }
  if (observer_ != nullptr && dropped > 0) observer_->OnTokens(0, 0, dropped);
  Wake(std::move(wake));
}

void LeaseBroker::SetMode(
    LimiterMode mode, std::vector<std::pair<HostWakeup*, std::string>>& wake) {
  if (!first_attempt_done_) {
    first_attempt_done_ = true;
    WakeAll(wake);
  }
  if (mode_ == mode) return;
  mode_ = mode;
  if (mode == LimiterMode::kDegraded) degraded_since_ = clock_->Now();
  if (observer_ != nullptr) observer_->OnLimiterMode(mode);
  WakeAll(wake);
}

void LeaseBroker::WakeAll(
    std::vector<std::pair<HostWakeup*, std::string>>& wake) {
  for (auto& [key, pool] : pools_) {
    pool.waiting = false;
    if (pool.owner != nullptr) wake.emplace_back(pool.owner, key);
  }
}

void LeaseBroker::Wake(std::vector<std::pair<HostWakeup*, std::string>> wake) {
  if (wake.empty()) return;
  std::sort(wake.begin(), wake.end());
  for (size_t i = 0; i < wake.size();) {
    HostWakeup* owner = wake[i].first;
    std::vector<std::string> keys;
    for (; i < wake.size() && wake[i].first == owner; ++i) {
      keys.push_back(std::move(wake[i].second));
    }
    owner->WakeHosts(std::move(keys));
  }
}

int LeaseBroker::Replicas() const {
  return std::max(live_, options_.expected_replicas);
}

void LeaseBroker::AskSync(Pool& pool) {
  pool.sync_now = true;
  pool.waiting = true;
  kick_ = true;
}

LeaseBroker::Decision LeaseBroker::TryTake(absl::string_view host_key,
                                           const HostLimits& limits,
                                           HostWakeup* owner, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto [it, added] = pools_.try_emplace(host_key);
  Pool& pool = it->second;
  if (added) pool.cap = limits.max_concurrency;
  pool.owner = owner;
  pool.limits = limits;
  pool.last_activity = std::max(pool.last_activity, now);
  pool.took_token = false;
  pool.undo_degraded_tat = pool.degraded_tat;
  if (pool.paused_until > now) {
    return Decision{false, WaitReason::kPaused, pool.paused_until};
  }
  // Before the first attempt to reach the store has ended (at most the
  // connect and command timeouts), nothing is known of what the others
  // hold: nothing starts.
  if (!first_attempt_done_) return Decision{};
  Decision decision;
  switch (mode_) {
    case LimiterMode::kRedis:
      decision = TakeFromStore(pool, now);
      break;
    case LimiterMode::kLocal:
    case LimiterMode::kDegraded:
    case LimiterMode::kLearning:
      switch (options_.on_failure) {
        case FailurePolicy::kDegraded: {
          const int n = Replicas();
          int share = limits.max_concurrency / n;
          // What the others held at the last sync may still be in use
          // (they may not have noticed the failure yet, or, learning, are
          // still finishing what they started): while that can be, this
          // replica keeps within what they leave.
          if (mode_ == LimiterMode::kLearning ||
              now < degraded_since_ + options_.lease_ttl) {
            share = std::min(
                share, std::max(0, limits.max_concurrency - pool.others_held));
          }
          decision = TakeLocal(pool, share, limits.rate / n,
                               std::max(1, limits.burst / n), now);
          break;
        }
        case FailurePolicy::kFailOpen:
          decision = TakeLocal(pool, limits.max_concurrency, limits.rate,
                               limits.burst, now);
          break;
        case FailurePolicy::kFailClosed:
          decision = Decision{};
          break;
      }
      break;
  }
  if (decision.go) {
    ++pool.in_use;
    ++starts_;
  }
  return decision;
}

LeaseBroker::Decision LeaseBroker::TakeFromStore(Pool& pool, absl::Time now) {
  const HostLimits& limits = pool.limits;
  const bool stale = pool.fresh_until <= now;
  const size_t usable =
      std::min(pool.held.size(), static_cast<size_t>(std::max(pool.cap, 1)));
  const bool need_slot = static_cast<size_t>(pool.in_use) >= usable;
  if (need_slot) pool.short_at = now;
  bool need_token = false;
  if (limits.rate > 0) {
    // A send time used later than one interval after it could put more
    // than rate * w + burst starts in some window.
    dropped_tokens_ += DropLate(pool, now);
    need_token = pool.tokens.empty();
  }
  const bool can_grow = pool.held.size() < static_cast<size_t>(pool.cap);
  // Asked for now, unless the store gave less than asked a moment ago (the
  // cluster is full, or the rate is reserved past the horizon): then the
  // pool's next regular sync asks, and wakes the worker.
  const bool ask_slot = need_slot && can_grow && now >= pool.no_grant_until;
  const bool ask_token = need_token && now >= pool.no_token_until;
  if (stale || ask_slot || ask_token) {
    AskSync(pool);
  } else if (need_slot || need_token) {
    pool.waiting = true;
  }
  if (stale || need_slot || need_token) {
    const WaitReason reason = need_token && !need_slot && !stale
                                  ? WaitReason::kRate
                                  : WaitReason::kConcurrency;
    return Decision{false, reason, absl::InfiniteFuture()};
  }
  if (limits.rate > 0) {
    if (pool.tokens.front() > now) {
      // Waiting for a send time is activity: the pool is not idle (its
      // leases and send times are not given back) before it comes.
      pool.last_activity = std::max(pool.last_activity, pool.tokens.front());
      return Decision{false, WaitReason::kRate, pool.tokens.front()};
    }
    pool.took_token = true;
    pool.taken_token = pool.tokens.front();
    pool.tokens.pop_front();
  }
  return Decision{true, WaitReason::kConcurrency, now};
}

LeaseBroker::Decision LeaseBroker::TakeLocal(Pool& pool, int share, double rate,
                                             int burst, absl::Time now) {
  if (pool.in_use >= share) return Decision{};
  if (rate > 0) {
    const absl::Duration interval = Interval(rate);
    const absl::Time allowed = pool.degraded_tat - (burst - 1) * interval;
    if (allowed > now) return Decision{false, WaitReason::kRate, allowed};
    pool.degraded_tat = std::max(pool.degraded_tat, now) + interval;
  }
  return Decision{true, WaitReason::kConcurrency, now};
}

void LeaseBroker::Untake(absl::string_view host_key) {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find(host_key);
  if (it == pools_.end() || it->second.in_use == 0) return;
  Pool& pool = it->second;
  --pool.in_use;
  --starts_;
  if (pool.took_token) pool.tokens.push_front(pool.taken_token);
  pool.took_token = false;
  pool.degraded_tat = pool.undo_degraded_tat;
}

void LeaseBroker::Release(absl::string_view host_key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find(host_key);
  if (it == pools_.end() || it->second.in_use == 0) return;
  --it->second.in_use;
  it->second.last_activity = std::max(it->second.last_activity, now);
}

void LeaseBroker::PublishPause(absl::string_view host_key, absl::Time until,
                               absl::Time now) {
  absl::MutexLock lock(&mu_);
  Pool& pool = pools_[host_key];
  pool.last_activity = std::max(pool.last_activity, now);
  pool.paused_until = std::max(pool.paused_until, until);
  pool.publish_until = std::max(pool.publish_until, until);
  kick_ = true;
}

LimiterMode LeaseBroker::mode() const {
  absl::MutexLock lock(&mu_);
  return mode_;
}

int LeaseBroker::held_leases() const {
  absl::MutexLock lock(&mu_);
  size_t held = 0;
  for (const auto& [key, pool] : pools_) held += pool.held.size();
  return static_cast<int>(held);
}

size_t LeaseBroker::pools() const {
  absl::MutexLock lock(&mu_);
  return pools_.size();
}

void LeaseBroker::EraseUnused(absl::Time now) {
  absl::erase_if(pools_, [&](const PoolMap::value_type& entry) {
    const Pool& p = entry.second;
    return p.in_use == 0 && p.held.empty() && p.release_pending.empty() &&
           p.tokens.empty() && !p.waiting && !p.sync_now &&
           p.publish_until == absl::InfinitePast() && p.paused_until <= now &&
           p.degraded_tat <= now &&
           now >= p.last_activity +
                      std::max(options_.sync_interval, options_.idle_release);
  });
}

absl::Time LeaseBroker::DueAt(const Pool& pool) const {
  if (pool.sync_now || pool.publish_until != absl::InfinitePast() ||
      !pool.release_pending.empty()) {
    return absl::InfinitePast();
  }
  absl::Time due = absl::InfiniteFuture();
  // Renewal and freshness while it holds or waits for anything.
  if (pool.in_use > 0 || !pool.held.empty() || !pool.tokens.empty() ||
      pool.waiting) {
    due = std::min(due, pool.last_sync + options_.sync_interval);
  }
  // Send times nobody asked for within two intervals go back.
  if (!pool.tokens.empty()) {
    due = std::min(due, pool.last_activity + 2 * Interval(pool.limits.rate));
  }
  // Idle leases go back.
  if (pool.held.size() > static_cast<size_t>(pool.in_use)) {
    due = std::min(due, pool.last_activity + options_.idle_release);
  }
  return due;
}

absl::Time LeaseBroker::NextDue(absl::Time now) const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [key, pool] : pools_) next = std::min(next, DueAt(pool));
  return std::max(next, now);
}

int LeaseBroker::DropLate(Pool& pool, absl::Time now) {
  const absl::Duration interval = Interval(pool.limits.rate);
  int dropped = 0;
  while (!pool.tokens.empty() && pool.tokens.front() + interval < now) {
    pool.tokens.pop_front();
    ++dropped;
  }
  return dropped;
}

HostSyncRequest LeaseBroker::BuildRequest(const std::string& host_key,
                                          Pool& pool, bool leaving,
                                          absl::Time now, int& released,
                                          int& dropped) {
  HostSyncRequest r;
  r.host_key = host_key;
  r.limit = pool.limits.max_concurrency;
  pool.sync_now = false;
  // Attempts started without a lease (DEGRADED, LEARNING) take one now,
  // over the limit if need be: they are running.
  while (pool.held.size() < static_cast<size_t>(pool.in_use)) {
    pool.held.push_back(next_seq_++);
  }
  const bool idle = now >= pool.last_activity + options_.idle_release;
  const size_t keep =
      leaving ? 0
      : idle  ? static_cast<size_t>(pool.in_use)
              : static_cast<size_t>(std::max(pool.in_use, pool.cap));
  r.release = std::move(pool.release_pending);
  pool.release_pending.clear();
  if (pool.held.size() > keep) {
    r.release.insert(r.release.end(), pool.held.begin() + keep,
                     pool.held.end());
    pool.held.resize(keep);
  }
  released += static_cast<int>(r.release.size());
  r.hold = pool.held;
  const bool store_mode = mode_ == LimiterMode::kRedis && !leaving;
  // Workers were short of leases lately (an idle host wants nothing).
  if (store_mode && !idle && now - pool.short_at < 2 * options_.sync_interval) {
    const int room = pool.cap - static_cast<int>(pool.held.size());
    r.want = std::max(1, std::min(CeilDiv(r.limit, Replicas()), room));
    r.first_seq = next_seq_;
    next_seq_ += r.want;
  }
  if (pool.limits.rate > 0) {
    r.interval = Interval(pool.limits.rate);
    r.tolerance = (pool.limits.burst - 1) * r.interval;
    r.horizon = options_.rate_horizon;
    dropped += DropLate(pool, now);
    // Send times nobody here asked for lately go back for the others:
    // no start was tried for two intervals (a waiting start counts until
    // its send time).
    const bool no_demand =
        leaving || idle || now >= pool.last_activity + 2 * r.interval;
    if (no_demand) {
      r.returned.reserve(pool.tokens.size());
      for (absl::Time token : pool.tokens) {
        r.returned.push_back(StoreTime(token));
      }
      pool.tokens.clear();
    } else if (store_mode &&
               (pool.tokens.empty()
                    ? pool.waiting
                    : pool.tokens.back() < now + options_.rate_horizon / 2)) {
      r.want_tokens = std::max(
          1, static_cast<int>(
                 std::ceil(pool.limits.rate * absl::ToDoubleSeconds(r.horizon) /
                           Replicas())));
    }
  }
  if (pool.publish_until > now) r.pause = pool.publish_until - now;
  pool.publish_until = absl::InfinitePast();
  return r;
}

bool LeaseBroker::SyncDue(absl::Time now, bool leaving) {
  std::vector<HostSyncRequest> requests;
  int released = 0;
  int dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, pool] : pools_) {
      if (leaving || DueAt(pool) <= now) {
        requests.push_back(
            BuildRequest(key, pool, leaving, now, released, dropped));
      }
    }
  }
  if (requests.empty()) {
    if (observer_ != nullptr && dropped > 0) observer_->OnTokens(0, 0, dropped);
    return true;
  }
  const absl::Time sent = clock_->Now();
  absl::StatusOr<std::vector<HostSyncReply>> replies =
      store_->Sync(requests, options_.lease_ttl, 2 * options_.sync_interval);
  const absl::Time received = clock_->Now();
  if (observer_ != nullptr) {
    observer_->OnRedisCall(RedisOperation::kSync,
                           static_cast<int>(requests.size()), received - sent,
                           replies.status());
  }
  if (!replies.ok()) {
    Fail(replies.status(), now);
    return false;
  }
  if (!replies->empty()) {
    NoteStoreTime(replies->front().store_now, sent, received);
  }
  std::vector<std::pair<HostWakeup*, std::string>> wake;
  int granted = 0, reaped = 0, returned = 0, reserved = 0, held = 0;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < requests.size() && i < replies->size(); ++i) {
      const HostSyncRequest& request = requests[i];
      const HostSyncReply& reply = (*replies)[i];
      granted += reply.granted;
      reaped += reply.reaped;
      returned += reply.returned;
      dropped += static_cast<int>(request.returned.size()) - reply.returned;
      if (leaving) continue;
      auto it = pools_.find(request.host_key);
      if (it == pools_.end()) continue;
      Pool& pool = it->second;
      for (int j = 0; j < reply.granted; ++j) {
        pool.held.push_back(request.first_seq + j);
      }
      const int limit = pool.limits.max_concurrency;
      pool.cap = reply.wanters > 0
                     ? std::max(1, CeilDiv(limit, reply.wanters + 1))
                     : limit;
      const absl::Time store_now = LocalTime(reply.store_now);
      for (absl::Duration offset : reply.tokens) {
        pool.tokens.push_back(store_now + offset);
      }
      reserved += static_cast<int>(reply.tokens.size());
      // Short of what it asked for: the next regular sync asks again.
      pool.no_grant_until = reply.granted < request.want
                                ? now + options_.sync_interval
                                : absl::InfinitePast();
      pool.no_token_until =
          static_cast<int>(reply.tokens.size()) < request.want_tokens
              ? now + options_.sync_interval
              : absl::InfinitePast();
      pool.others_held =
          std::max(0, reply.held_cluster - static_cast<int>(pool.held.size()));
      if (reply.paused_for > absl::ZeroDuration()) {
        pool.paused_until =
            std::max(pool.paused_until, received + reply.paused_for);
      }
      pool.fresh_until = now + 2 * options_.sync_interval;
      pool.last_sync = now;
      if (pool.waiting) {
        pool.waiting = false;
        if (pool.owner != nullptr)
          wake.emplace_back(pool.owner, request.host_key);
      }
    }
    for (const auto& [key, pool] : pools_)
      held += static_cast<int>(pool.held.size());
    dropped += std::exchange(dropped_tokens_, 0);
  }
  if (observer_ != nullptr) {
    observer_->OnLeases(granted, released, reaped, held);
    observer_->OnTokens(reserved, returned, dropped);
  }
  Wake(std::move(wake));
  return true;
}

}  // namespace fetchd::cluster
