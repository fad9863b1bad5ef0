#include "service/core/host_scheduler.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace fetchd::core {
namespace {

using politeness::Admission;
using politeness::WaitReason;

// A concurrency wait with nothing in flight here can't end on a Release of
// this scheduler (a shared limiter may count attempts of other replicas):
// the host is looked at again after this long instead.
constexpr absl::Duration kForeignRecheck = absl::Milliseconds(100);

}  // namespace

void HostScheduler::Enqueue(std::unique_ptr<FetchJob> job, absl::Time now) {
  job->queued_at = now;
  const auto it = hosts_.find(job->host_key);
  const size_t waiting = it == hosts_.end() ? 0 : it->second.queued;
  if (std::optional<politeness::Rejection> rejection =
          limiter_.CheckQueue(job->host_key, waiting, now);
      rejection.has_value() && !WaitsForBreaker(*job, *rejection)) {
    rejected_.push_back(Rejected{std::move(job), *std::move(rejection)});
    return;
  }
  next_expiry_ = std::min(next_expiry_, now + job->queue_timeout);
  AddToLane(std::move(job), /*front=*/false);
}

void HostScheduler::EnqueueAt(std::unique_ptr<FetchJob> job, absl::Time due) {
  job->not_before = due;
  delayed_.emplace(due, std::move(job));
}

void HostScheduler::AddToLane(std::unique_ptr<FetchJob> job, bool front) {
  auto [it, inserted] = hosts_.try_emplace(job->host_key);
  Host& host = it->second;
  if (inserted) host.key = &it->first;
  if (host.paused) MarkPaused(*job);
  const std::string& caller = job->batch->caller();
  auto group =
      std::find_if(host.callers.begin(), host.callers.end(),
                   [&](const CallerLanes& c) { return c.caller == caller; });
  if (group == host.callers.end()) {
    group = host.callers.insert(host.callers.end(), CallerLanes{caller, {}});
  }
  std::list<Lane>& lanes = group->lanes;
  auto lane = std::find_if(lanes.begin(), lanes.end(), [&](const Lane& l) {
    return l.batch == job->batch.get();
  });
  if (lane == lanes.end()) {
    lane = lanes.insert(lanes.end(), Lane{job->batch.get(), {}});
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
  ++host.queued;
  // A held host is looked at when its wait ends, not before.
  if (host.wait_until == absl::InfinitePast() && !host.waits_release) {
    PushReady(host);
  }
}

void HostScheduler::PushReady(Host& host) {
  if (host.in_ready) return;
  host.in_ready = true;
  ready_.push_back(&host);
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

void HostScheduler::PromoteWaiting(absl::Time now) {
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const absl::Time until = waiting_.begin()->first;
    const std::string key = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    auto it = hosts_.find(key);
    if (it == hosts_.end() || it->second.wait_until != until) continue;
    Host& host = it->second;
    host.wait_until = absl::InfinitePast();
    host.paused = false;
    if (host.callers.empty()) {
      EraseIfIdle(key);
    } else {
      PushReady(host);
    }
  }
}

void HostScheduler::PromoteWoken() {
  for (const std::string& key : limiter_.TakeWoken()) {
    auto it = hosts_.find(key);
    if (it == hosts_.end()) continue;
    Host& host = it->second;
    if (!host.waits_release && host.wait_until == absl::InfinitePast()) {
      continue;
    }
    // A stale entry stays in waiting_; PromoteWaiting() skips it.
    host.waits_release = false;
    host.wait_until = absl::InfinitePast();
    host.paused = false;
    if (host.callers.empty()) {
      EraseIfIdle(key);
    } else {
      PushReady(host);
    }
  }
}

std::unique_ptr<FetchJob> HostScheduler::Next(absl::Time now) {
  PromoteDue(now);
  PromoteWaiting(now);
  PromoteWoken();
  if (in_flight_ >= limits_.max_in_flight) return nullptr;
  next_ask_start_ = absl::InfiniteFuture();
  for (size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
    Host& host = *ready_.front();
    ready_.pop_front();
    host.in_ready = false;
    if (host.callers.empty()) {
      EraseIfIdle(*host.key);
      continue;
    }
    // Held hosts come back through PromoteWaiting() or Release().
    if (host.waits_release || host.wait_until != absl::InfinitePast()) {
      continue;
    }
    const std::optional<Pick> pick = FindStartable(host, now);
    if (!pick.has_value()) {
      // Every batch here is blocked; its batch wakes the worker later.
      PushReady(host);
      continue;
    }
    const Admission admission = limiter_.Reserve(*host.key, now);
    if (admission.kind != Admission::Kind::kGo) {
      // The job keeps its turn; its batch slots go back.
      FetchJob& held = *pick->lane->jobs.front();
      held.batch->ReleaseConcurrency();
      held.batch->ReleaseWindow();
      if (admission.kind == Admission::Kind::kReject) {
        RejectQueued(host, admission.rejection, now);
      } else {
        if (admission.wait_reason == WaitReason::kRate) MarkRate(held);
        Wait(host, admission.until,
             admission.wait_reason == WaitReason::kPaused, now);
      }
      continue;
    }
    std::unique_ptr<FetchJob> job = TakePicked(host, *pick);
    job->permit = admission.permit;
    AskStarted(host, *job, now);
    ++host.active;
    ++in_flight_;
    --queued_;
    --host.queued;
    if (!host.callers.empty()) PushReady(host);
    job->queue_wait += now - job->queued_at;
    return job;
  }
  return nullptr;
}

std::optional<HostScheduler::Pick> HostScheduler::FindStartable(
    Host& host, absl::Time now) {
  for (auto group = host.callers.begin(); group != host.callers.end();
       ++group) {
    for (auto lane = group->lanes.begin(); lane != group->lanes.end(); ++lane) {
      FetchJob& head = *lane->jobs.front();
      if (AskAllows(host, head, now) &&
          head.batch->TryAcquire(head.index, worker_)) {
        return Pick{group, lane};
      }
    }
  }
  return std::nullopt;
}

bool HostScheduler::AskAllows(Host& host, FetchJob& head, absl::Time now) {
  if (host.asks.empty()) return true;
  const auto it = host.asks.find(head.batch.get());
  if (it == host.asks.end()) return true;
  if (it->second.active == 0 && it->second.next_start <= now) {
    host.asks.erase(it);
    return true;
  }
  const politeness::BatchAsk& ask = head.batch->politeness();
  if (ask.max_concurrency > 0 && it->second.active >= ask.max_concurrency) {
    return false;  // An attempt's end (Release) brings the host back.
  }
  if (it->second.next_start > now) {
    next_ask_start_ = std::min(next_ask_start_, it->second.next_start);
    MarkRate(head);
    return false;
  }
  return true;
}

void HostScheduler::AskStarted(Host& host, const FetchJob& job,
                               absl::Time now) {
  const politeness::BatchAsk& ask = job.batch->politeness();
  if (ask.max_concurrency <= 0 && ask.rate <= 0) return;
  AskState& state = host.asks[job.batch.get()];
  ++state.active;
  if (ask.rate > 0) {
    // GCRA with a burst of one: starts at least 1/rate apart.
    state.next_start =
        std::max(state.next_start, now) + absl::Seconds(1 / ask.rate);
  }
}

void HostScheduler::AskEnded(Host& host, const FetchJob& job, absl::Time now) {
  const auto it = host.asks.find(job.batch.get());
  if (it == host.asks.end()) return;
  --it->second.active;
  if (it->second.active <= 0 && it->second.next_start <= now) {
    host.asks.erase(it);
  }
}

std::unique_ptr<FetchJob> HostScheduler::TakePicked(Host& host, Pick pick) {
  // The callers and lanes passed over (their batches blocked) go to the
  // back, as does the served one: the others come first next time. Splices
  // within one list: constant time, nothing moved.
  std::list<CallerLanes>& callers = host.callers;
  std::list<Lane>& lanes = pick.caller->lanes;
  callers.splice(callers.end(), callers, callers.begin(), pick.caller);
  lanes.splice(lanes.end(), lanes, lanes.begin(), pick.lane);
  std::unique_ptr<FetchJob> job = std::move(pick.lane->jobs.front());
  pick.lane->jobs.pop_front();
  if (pick.lane->jobs.empty()) {
    lanes.erase(pick.lane);
  } else {
    lanes.splice(lanes.end(), lanes, pick.lane);
  }
  if (lanes.empty()) {
    callers.erase(pick.caller);
  } else {
    callers.splice(callers.end(), callers, pick.caller);
  }
  return job;
}

void HostScheduler::Wait(Host& host, absl::Time until, bool paused,
                         absl::Time now) {
  if (paused && !host.paused) {
    // Every job here waits for the pause, not only the one asked about.
    for (CallerLanes& group : host.callers) {
      for (Lane& lane : group.lanes) {
        for (auto& job : lane.jobs) MarkPaused(*job);
      }
    }
  }
  host.paused = paused;
  if (until == absl::InfiniteFuture()) {
    if (host.active > 0) {
      host.waits_release = true;
      return;
    }
    until = now + kForeignRecheck;
  }
  host.wait_until = until;
  waiting_.emplace(until, *host.key);
}

void HostScheduler::RejectQueued(Host& host,
                                 const politeness::Rejection& rejection,
                                 absl::Time now) {
  // Jobs that did not ask to wait, or would expire by the time the breaker
  // admits again, are refused now.
  {
    JobList refused;
    TakeFromHostIf(
        host,
        [&](const FetchJob& job) { return !WaitsForBreaker(job, rejection); },
        refused);
    for (auto& job : refused) {
      job->queue_wait += now - job->queued_at;
      Dropped(*job, now);
      rejected_.push_back(Rejected{std::move(job), rejection});
    }
    if (host.callers.empty()) {
      EraseIfIdle(*host.key);
      return;
    }
  }
  Wait(host, rejection.until, /*paused=*/false, now);
}

bool HostScheduler::WaitsForBreaker(const FetchJob& job,
                                    const politeness::Rejection& rejection) {
  if (rejection.reason != politeness::RejectReason::kCircuitOpen ||
      !job.wait_for_open_breaker) {
    return false;
  }
  // InfiniteFuture: a half-open breaker's probe is out; its end decides,
  // and the queue timeout bounds the wait.
  return rejection.until == absl::InfiniteFuture() ||
         job.queued_at + job.queue_timeout > rejection.until;
}

void HostScheduler::MarkRate(FetchJob& job) {
  if (job.politeness_waits.rate) return;
  job.politeness_waits.rate = true;
  ++rate_limited_jobs_;
  limiter_.NoteWaited(job.host_key, politeness::WaitReason::kRate);
}

void HostScheduler::MarkPaused(FetchJob& job) {
  if (job.politeness_waits.paused) return;
  job.politeness_waits.paused = true;
  ++paused_jobs_;
  limiter_.NoteWaited(job.host_key, politeness::WaitReason::kPaused);
}

void HostScheduler::Dropped(FetchJob& job, absl::Time now) {
  if (!job.retry_outstanding) return;
  job.retry_outstanding = false;
  limiter_.EndRetry(job.host_key, now);
}

bool HostScheduler::Release(FetchJob& job,
                            const politeness::AttemptResult& result,
                            absl::Time now) {
  auto it = hosts_.find(job.host_key);
  const bool known = it != hosts_.end() && it->second.active > 0;
  assert(known && "HostScheduler::Release of a host with nothing in flight");
  if (!known) return false;
  --in_flight_;
  Host& host = it->second;
  --host.active;
  AskEnded(host, job, now);
  const bool released = limiter_.Release(job.host_key, job.permit, result, now);
  job.permit = politeness::Permit{};
  // The retry's attempt is over, whatever it was.
  Dropped(job, now);
  if (!released) return false;
  if (host.waits_release) {
    host.waits_release = false;
    host.paused = false;
  }
  if (!host.callers.empty()) {
    // A host in a timed wait stays there; Next() skips it if listed.
    if (host.wait_until == absl::InfinitePast()) PushReady(host);
  } else {
    EraseIfIdle(job.host_key);
  }
  return true;
}

absl::Status HostScheduler::TryRetry(FetchJob& job, absl::Time now) {
  assert(!job.retry_outstanding);
  absl::Status status = limiter_.TryRetry(job.host_key, now);
  if (status.ok()) job.retry_outstanding = true;
  return status;
}

std::vector<HostScheduler::Rejected> HostScheduler::TakeRejected() {
  std::vector<Rejected> out;
  out.swap(rejected_);
  return out;
}

void HostScheduler::EraseIfIdle(const std::string& key) {
  auto it = hosts_.find(key);
  if (it != hosts_.end() && it->second.active == 0 &&
      it->second.callers.empty() && !it->second.in_ready) {
    hosts_.erase(it);
  }
}

template <typename Pred>
void HostScheduler::TakeFromHostIf(Host& host, Pred pred, JobList& taken) {
  const size_t before = taken.size();
  for (auto group = host.callers.begin(); group != host.callers.end();) {
    std::list<Lane>& lanes = group->lanes;
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
  const size_t n = taken.size() - before;
  host.queued -= n;
  queued_ -= n;
}

template <typename Pred>
HostScheduler::JobList HostScheduler::TakeQueuedIf(Pred pred) {
  JobList taken;
  for (auto host_it = hosts_.begin(); host_it != hosts_.end();) {
    Host& host = host_it->second;
    TakeFromHostIf(host, pred, taken);
    // A host listed in ready_ stays until Next() takes it off the list.
    if (host.callers.empty() && host.active == 0 && !host.in_ready) {
      hosts_.erase(host_it++);
    } else {
      ++host_it;
    }
  }
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
  for (auto& job : expired) {
    job->queue_wait += now - job->queued_at;
    Dropped(*job, now);
  }
  return expired;
}

HostScheduler::JobList HostScheduler::TakeBatch(const Batch* batch,
                                                absl::Time now) {
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
  for (auto& job : taken) Dropped(*job, now);
  return taken;
}

HostScheduler::JobList HostScheduler::TakeAll(absl::Time now) {
  JobList taken = TakeQueuedIf([](const FetchJob&) { return true; });
  for (auto& [due, job] : delayed_) taken.push_back(std::move(job));
  delayed_.clear();
  for (auto& job : taken) Dropped(*job, now);
  ready_.clear();
  waiting_.clear();
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    Host& host = it->second;
    if (host.active == 0) {
      hosts_.erase(it++);
      continue;
    }
    host.in_ready = false;
    host.wait_until = absl::InfinitePast();
    host.waits_release = false;
    host.paused = false;
    ++it;
  }
  return taken;
}

absl::Time HostScheduler::NextEvent() const {
  if (!rejected_.empty()) return absl::InfinitePast();
  absl::Time next = next_expiry_;
  if (!delayed_.empty()) next = std::min(next, delayed_.begin()->first);
  if (!waiting_.empty()) next = std::min(next, waiting_.begin()->first);
  return std::min(next, next_ask_start_);
}

}  // namespace fetchd::core
