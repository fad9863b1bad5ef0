#include "tests/cluster/fake_lease_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace fetchd::cluster {

void FakeCluster::Down() {
  absl::MutexLock lock(&mu_);
  down_ = true;
}

void FakeCluster::Up() {
  absl::MutexLock lock(&mu_);
  down_ = false;
}

void FakeCluster::Restart() {
  absl::MutexLock lock(&mu_);
  ++generation_;
  hosts_.clear();
  members_.clear();
  epoch_.clear();
}

void FakeCluster::SetOldEpoch() {
  absl::MutexLock lock(&mu_);
  epoch_ = absl::StrCat("old", ++epochs_);
  learn_until_ = absl::InfinitePast();
}

absl::Status FakeCluster::Check(int generation) const {
  if (down_) return absl::UnavailableError("fake redis: down");
  if (generation != generation_) {
    return absl::UnavailableError("fake redis: connection closed");
  }
  return absl::OkStatus();
}

int FakeCluster::Leases(const std::string& host) const {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return 0;
  int n = 0;
  for (const auto& [member, expiry] : it->second.leases) {
    if (expiry > clock_->Now()) ++n;
  }
  return n;
}

int FakeCluster::LeasesOf(const std::string& host,
                          const std::string& replica) const {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return 0;
  int n = 0;
  for (const auto& [member, expiry] : it->second.leases) {
    if (expiry > clock_->Now() && member.rfind(replica + ":", 0) == 0) ++n;
  }
  return n;
}

int FakeCluster::Members() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [member, expiry] : members_) {
    if (expiry > clock_->Now()) ++n;
  }
  return n;
}

absl::Time FakeCluster::PausedUntil(const std::string& host) const {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(host);
  return it == hosts_.end() ? absl::InfinitePast() : it->second.pause;
}

int FakeCluster::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

absl::Status FakeLeaseStore::Connect() {
  absl::MutexLock lock(&cluster_->mu_);
  if (cluster_->down_) return absl::UnavailableError("fake redis: refused");
  generation_ = cluster_->generation_;
  return absl::OkStatus();
}

absl::StatusOr<Membership> FakeLeaseStore::Heartbeat(absl::Duration ttl,
                                                     bool leaving) {
  FakeCluster& c = *cluster_;
  absl::MutexLock lock(&c.mu_);
  ++c.calls_;
  if (absl::Status s = c.Check(generation_); !s.ok()) return s;
  const absl::Time now = c.clock_->Now();
  if (leaving) {
    c.members_.erase(replica_);
  } else {
    c.members_[replica_] = now + ttl;
  }
  Membership m;
  for (const auto& [member, expiry] : c.members_) {
    if (expiry > now) ++m.live;
  }
  if (c.epoch_.empty()) {
    c.epoch_ = absl::StrCat("epoch", ++c.epochs_);
    c.learn_until_ = now + ttl;
  }
  m.epoch = c.epoch_;
  m.learning_left = std::max(absl::ZeroDuration(), c.learn_until_ - now);
  return m;
}

absl::StatusOr<std::vector<HostSyncReply>> FakeLeaseStore::Sync(
    absl::Span<const HostSyncRequest> requests, absl::Duration ttl,
    absl::Duration want_ttl) {
  last_.assign(requests.begin(), requests.end());
  FakeCluster& c = *cluster_;
  absl::MutexLock lock(&c.mu_);
  c.calls_ += static_cast<int>(requests.size());
  if (absl::Status s = c.Check(generation_); !s.ok()) return s;
  const absl::Time now = c.clock_->Now();
  const int64_t now_us = c.Micros(now);
  std::vector<HostSyncReply> out;
  for (const HostSyncRequest& r : requests) {
    FakeCluster::Host& host = c.hosts_[r.host_key];
    HostSyncReply reply;
    reply.store_now = now_us;
    for (auto it = host.leases.begin(); it != host.leases.end();) {
      if (it->second <= now) {
        it = host.leases.erase(it);
        ++reply.reaped;
      } else {
        ++it;
      }
    }
    const auto member = [&](uint64_t seq) {
      return absl::StrCat(replica_, ":", seq);
    };
    for (uint64_t seq : r.hold) host.leases[member(seq)] = now + ttl;
    for (uint64_t seq : r.release) host.leases.erase(member(seq));
    if (r.limit > 0 && r.want > 0) {
      const int room = r.limit - static_cast<int>(host.leases.size());
      reply.granted = std::max(0, std::min(r.want, room));
      for (int i = 0; i < reply.granted; ++i) {
        host.leases[member(r.first_seq + i)] = now + ttl;
      }
    }
    reply.held_cluster = static_cast<int>(host.leases.size());
    for (auto it = host.wanters.begin(); it != host.wanters.end();) {
      it = it->second <= now ? host.wanters.erase(it) : std::next(it);
    }
    const bool short_of = r.want > reply.granted;
    if (short_of) {
      host.wanters[replica_] = now + want_ttl;
    } else {
      host.wanters.erase(replica_);
    }
    reply.wanters = static_cast<int>(host.wanters.size()) - (short_of ? 1 : 0);
    if (r.interval > absl::ZeroDuration()) {
      const int64_t interval = absl::ToInt64Microseconds(r.interval);
      const int64_t tolerance = absl::ToInt64Microseconds(r.tolerance);
      host.holes.erase(host.holes.begin(),
                       host.holes.lower_bound(now_us - interval));
      for (int64_t send : r.returned) {
        if (send >= now_us - interval) {
          host.holes.insert(send);
          ++reply.returned;
        }
      }
      const int64_t last = now_us + absl::ToInt64Microseconds(r.horizon);
      while (static_cast<int>(reply.tokens.size()) < r.want_tokens &&
             !host.holes.empty() && *host.holes.begin() <= last) {
        reply.tokens.push_back(
            absl::Microseconds(*host.holes.begin() - now_us));
        host.holes.erase(host.holes.begin());
      }
      int64_t tat = host.tat;
      while (static_cast<int>(reply.tokens.size()) < r.want_tokens) {
        const int64_t send = std::max(now_us, tat - tolerance);
        if (send > last) break;
        reply.tokens.push_back(absl::Microseconds(send - now_us));
        tat = std::max(tat, send) + interval;
      }
      host.tat = tat;
    }
    if (r.pause > absl::ZeroDuration()) {
      host.pause = std::max(host.pause, now + r.pause);
    }
    reply.paused_for = std::max(absl::ZeroDuration(), host.pause - now);
    out.push_back(std::move(reply));
  }
  return out;
}

}  // namespace fetchd::cluster
