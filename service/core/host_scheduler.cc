#include "service/core/host_scheduler.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace fetchd::core {

void HostScheduler::Enqueue(std::unique_ptr<FetchJob> job, absl::Time now) {
  job->queued_at = now;
  next_expiry_ = std::min(next_expiry_, now + job->queue_timeout);
  AddToLane(std::move(job), /*front=*/false);
}

void HostScheduler::EnqueueAt(std::unique_ptr<FetchJob> job, absl::Time due) {
  job->not_before = due;
  delayed_.emplace(due, std::move(job));
}

void HostScheduler::AddToLane(std::unique_ptr<FetchJob> job, bool front) {
  const std::string& key = job->host_key;
  auto [it, inserted] = hosts_.try_emplace(key);
  Host& host = it->second;
  const std::string& caller = job->batch->caller();
  auto group =
      std::find_if(host.callers.begin(), host.callers.end(),
                   [&](const CallerLanes& c) { return c.caller == caller; });
  if (group == host.callers.end()) {
    host.callers.push_back(CallerLanes{caller, {}});
    group = std::prev(host.callers.end());
  }
  std::deque<Lane>& lanes = group->lanes;
  auto lane = std::find_if(lanes.begin(), lanes.end(), [&](const Lane& l) {
    return l.batch == job->batch.get();
  });
  if (lane == lanes.end()) {
    lanes.push_back(Lane{job->batch.get(), {}});
    lane = std::prev(lanes.end());
  }
  if (front) {
    // Retries go ahead of later jobs but stay in index order, so that in
    // ordered mode the job the stream waits for is always a lane's front.
    auto pos = std::find_if(lane->jobs.begin(), lane->jobs.end(),
                            [&](const std::unique_ptr<FetchJob>& j) {
                              return j->index > job->index;
                            });
    lane->jobs.insert(pos, std::move(job));
  } else {
    lane->jobs.push_back(std::move(job));
  }
  ++queued_;
  if (host.active < limits_.max_per_host) PushReady(it->first, host);
}

void HostScheduler::PushReady(const std::string& key, Host& host) {
  if (host.in_ready) return;
  host.in_ready = true;
  ready_.push_back(key);
}

void HostScheduler::PromoteDue(absl::Time now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    std::unique_ptr<FetchJob> job = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    job->queued_at = now;
    job->not_before = absl::InfinitePast();
    next_expiry_ = std::min(next_expiry_, now + job->queue_timeout);
    AddToLane(std::move(job), /*front=*/true);
  }
}

std::unique_ptr<FetchJob> HostScheduler::Next(absl::Time now) {
  PromoteDue(now);
  if (in_flight_ >= limits_.max_in_flight) return nullptr;
  for (size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    auto it = hosts_.find(key);
    if (it == hosts_.end()) continue;
    Host& host = it->second;
    host.in_ready = false;
    if (host.callers.empty()) {
      EraseIfIdle(key);
      continue;
    }
    if (host.active >= limits_.max_per_host) continue;  // Release() re-adds.
    std::unique_ptr<FetchJob> job = TakeFromHost(host);
    if (job == nullptr) {
      // Every batch here is blocked; its batch wakes the worker later.
      PushReady(it->first, host);
      continue;
    }
    ++host.active;
    ++in_flight_;
    --queued_;
    if (!host.callers.empty() && host.active < limits_.max_per_host) {
      PushReady(it->first, host);
    }
    job->queue_wait += now - job->queued_at;
    return job;
  }
  return nullptr;
}

std::unique_ptr<FetchJob> HostScheduler::TakeFromHost(Host& host) {
  for (size_t n = host.callers.size(); n > 0; --n) {
    CallerLanes group = std::move(host.callers.front());
    host.callers.pop_front();
    std::unique_ptr<FetchJob> job = TakeFromLanes(group.lanes);
    // Served or not, the caller goes to the back: the others come first.
    if (!group.lanes.empty()) host.callers.push_back(std::move(group));
    if (job != nullptr) return job;
  }
  return nullptr;
}

std::unique_ptr<FetchJob> HostScheduler::TakeFromLanes(
    std::deque<Lane>& lanes) {
  for (size_t n = lanes.size(); n > 0; --n) {
    Lane lane = std::move(lanes.front());
    lanes.pop_front();
    FetchJob& head = *lane.jobs.front();
    if (head.batch->TryAcquire(head.index, worker_)) {
      std::unique_ptr<FetchJob> job = std::move(lane.jobs.front());
      lane.jobs.pop_front();
      if (!lane.jobs.empty()) lanes.push_back(std::move(lane));
      return job;
    }
    lanes.push_back(std::move(lane));
  }
  return nullptr;
}

bool HostScheduler::Release(const std::string& host_key) {
  auto it = hosts_.find(host_key);
  const bool known = it != hosts_.end() && it->second.active > 0;
  assert(known && "HostScheduler::Release of a host with nothing in flight");
  if (!known) return false;
  --in_flight_;
  Host& host = it->second;
  --host.active;
  if (!host.callers.empty()) {
    PushReady(it->first, host);
  } else {
    EraseIfIdle(host_key);
  }
  return true;
}

void HostScheduler::EraseIfIdle(const std::string& key) {
  auto it = hosts_.find(key);
  if (it != hosts_.end() && it->second.active == 0 &&
      it->second.callers.empty() && !it->second.in_ready) {
    hosts_.erase(it);
  }
}

template <typename Pred>
HostScheduler::JobList HostScheduler::TakeQueuedIf(Pred pred) {
  JobList taken;
  for (auto host_it = hosts_.begin(); host_it != hosts_.end();) {
    Host& host = host_it->second;
    for (auto group = host.callers.begin(); group != host.callers.end();) {
      std::deque<Lane>& lanes = group->lanes;
      for (auto lane = lanes.begin(); lane != lanes.end();) {
        auto& jobs = lane->jobs;
        for (auto job = jobs.begin(); job != jobs.end();) {
          if (pred(**job)) {
            taken.push_back(std::move(*job));
            job = jobs.erase(job);
          } else {
            ++job;
          }
        }
        lane = jobs.empty() ? lanes.erase(lane) : std::next(lane);
      }
      group = lanes.empty() ? host.callers.erase(group) : std::next(group);
    }
    if (host.callers.empty() && host.active == 0) {
      hosts_.erase(host_it++);
    } else {
      ++host_it;
    }
  }
  queued_ -= taken.size();
  return taken;
}

HostScheduler::JobList HostScheduler::TakeExpired(absl::Time now) {
  if (now < next_expiry_) return {};
  absl::Time next = absl::InfiniteFuture();
  JobList expired = TakeQueuedIf([&](const FetchJob& job) {
    const absl::Time deadline = job.queued_at + job.queue_timeout;
    if (deadline <= now) return true;
    next = std::min(next, deadline);
    return false;
  });
  next_expiry_ = next;
  for (auto& job : expired) job->queue_wait += now - job->queued_at;
  return expired;
}

HostScheduler::JobList HostScheduler::TakeBatch(const Batch* batch) {
  JobList taken = TakeQueuedIf(
      [batch](const FetchJob& job) { return job.batch.get() == batch; });
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (it->second->batch.get() == batch) {
      taken.push_back(std::move(it->second));
      it = delayed_.erase(it);
    } else {
      ++it;
    }
  }
  return taken;
}

HostScheduler::JobList HostScheduler::TakeAll() {
  JobList taken = TakeQueuedIf([](const FetchJob&) { return true; });
  for (auto& [due, job] : delayed_) taken.push_back(std::move(job));
  delayed_.clear();
  ready_.clear();
  for (auto& [key, host] : hosts_) host.in_ready = false;
  return taken;
}

absl::Time HostScheduler::NextEvent() const {
  absl::Time next = next_expiry_;
  if (!delayed_.empty()) next = std::min(next, delayed_.begin()->first);
  return next;
}

}  // namespace fetchd::core
