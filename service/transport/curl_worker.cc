#include "service/transport/curl_worker.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/proto_duration.h"
#include "service/core/politeness/rule.h"
#include "service/core/redirect_rules.h"
#include "service/transport/cookie_jar.h"
#include "service/url/http_url.h"
#include "spdlog/spdlog.h"

namespace fetchd::transport {
namespace {

using fetch::v1::ErrorKind;

// Bounds one poll so the loop re-checks its state at least this often.
constexpr absl::Duration kMaxPollWait = absl::Seconds(1);
// How often a busy worker refreshes its politeness stats (an idle one at
// least every kMaxPollWait).
constexpr absl::Duration kPolitenessStatsInterval = absl::Milliseconds(250);
// Easy handles kept for reuse after their transfer ends.
constexpr size_t kMaxIdleEasy = 256;

thread_local int current_worker = -1;

// Politeness when the pool gives no rules: today's behaviour, a per-host
// concurrency limit and nothing else.
absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>> LegacyRules(
    int max_per_host) {
  core::politeness::HostRule rule;
  rule.name = "default";
  rule.max_concurrency = max_per_host;
  rule.max_queue = std::numeric_limits<int>::max();
  rule.breaker.consecutive_failures = 0;
  rule.retry_budget.ratio = 1;
  rule.retry_budget.min_retry_concurrency = std::numeric_limits<int>::max();
  absl::StatusOr<core::politeness::RuleSet> rules =
      core::politeness::RuleSet::Create(std::move(rule), {});
  if (!rules.ok()) return rules.status();
  return std::make_shared<const core::politeness::RuleSet>(*std::move(rules));
}

// The host-wide pause is on for every host once rules are given, off with
// the legacy rule.
core::politeness::LocalHostLimiter::Options LimiterOptions(
    bool legacy, const core::politeness::HostBackoffConfig& pause) {
  core::politeness::LocalHostLimiter::Options options;
  options.backoff = pause;
  if (legacy) {
    options.backoff.max_retry_after = absl::ZeroDuration();
    options.backoff.consecutive_throttles = 0;
  }
  return options;
}

std::unique_ptr<core::politeness::HostLimiter> MakeLimiter(
    const CurlWorker::Options& options,
    std::shared_ptr<const core::politeness::RuleSet> rules,
    std::function<void()> wake) {
  const core::politeness::LocalHostLimiter::Options limiter_options =
      LimiterOptions(options.politeness == nullptr, options.pause);
  if (options.make_limiter) {
    return options.make_limiter(std::move(rules), limiter_options,
                                std::move(wake));
  }
  return std::make_unique<core::politeness::LocalHostLimiter>(std::move(rules),
                                                              limiter_options);
}

core::politeness::AttemptResult Aborted() {
  core::politeness::AttemptResult result;
  result.kind = core::politeness::AttemptResult::Kind::kAborted;
  return result;
}

}  // namespace

int CurlWorker::CurrentIndex() { return current_worker; }

absl::StatusOr<std::unique_ptr<CurlWorker>> CurlWorker::Start(
    const Options& options, const Clock* clock) {
  const core::HostScheduler::Limits& limits = options.limits;
  CurlMultiPtr multi(curl_multi_init());
  if (multi == nullptr) return absl::InternalError("curl_multi_init failed");
  // Keep enough idle connections for every transfer this worker may run,
  // unless the config says how many.
  const int max_connects = options.max_cached_connections > 0
                               ? options.max_cached_connections
                               : std::max(limits.max_in_flight, 16);
  const CURLMcode code = curl_multi_setopt(
      multi.get(), CURLMOPT_MAXCONNECTS,
      static_cast<long>(max_connects));  // NOLINT(google-runtime-int)
  if (code != CURLM_OK) {
    return absl::InternalError(
        absl::StrCat("CURLMOPT_MAXCONNECTS: ", curl_multi_strerror(code)));
  }
  std::shared_ptr<const core::politeness::RuleSet> rules = options.politeness;
  if (rules == nullptr) {
    absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>> legacy =
        LegacyRules(options.max_per_host);
    if (!legacy.ok()) return legacy.status();
    rules = *std::move(legacy);
  }
  std::unique_ptr<CurlWorker> worker(
      new CurlWorker(options, clock, std::move(multi), std::move(rules)));
  worker->thread_ = std::thread([w = worker.get()] {
    current_worker = w->index_;
    w->Run();
  });
  return worker;
}

CurlWorker::CurlWorker(const Options& options, const Clock* clock,
                       CurlMultiPtr multi,
                       std::shared_ptr<const core::politeness::RuleSet> rules)
    : index_(options.index),
      clock_(clock),
      observer_(options.observer),
      destinations_(options.destinations),
      router_(options.router),
      settings_(options.settings),
      multi_(std::move(multi)),
      limiter_(MakeLimiter(options, std::move(rules), [this] { Wake(); })),
      scheduler_(options.limits, *limiter_, options.index) {}

CurlWorker::~CurlWorker() { Stop(); }

void CurlWorker::Stop() {
  stopping_.store(true, std::memory_order_release);
  curl_multi_wakeup(multi_.get());
  if (thread_.joinable()) thread_.join();
}

bool CurlWorker::Post(Task task) {
  {
    absl::MutexLock lock(&inbox_mu_);
    if (closed_) return false;
    inbox_.push_back(std::move(task));
  }
  curl_multi_wakeup(multi_.get());
  return true;
}

bool CurlWorker::SubmitHop(std::unique_ptr<core::FetchJob>& job) {
  // The job comes back through the task if the worker closed meanwhile;
  // Post() refusing leaves it with the caller.
  auto shared =
      std::make_shared<std::unique_ptr<core::FetchJob>>(std::move(job));
  const bool posted = Post([this, shared]() {
    scheduler_.Enqueue(std::move(*shared), clock_->Now());
  });
  if (!posted) job = std::move(*shared);
  return posted;
}

void CurlWorker::Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs) {
  // The jobs come back through the task if the worker closed meanwhile.
  auto shared = std::make_shared<std::vector<std::unique_ptr<core::FetchJob>>>(
      std::move(jobs));
  const bool posted = Post([this, shared]() {
    const absl::Time now = clock_->Now();
    for (auto& job : *shared) scheduler_.Enqueue(std::move(job), now);
  });
  if (posted) return;
  // Too late: the worker stopped. Every job still gets its one result, or
  // its call would wait forever.
  spdlog::error("{} jobs submitted to stopped curl worker {}", shared->size(),
                index_);
  for (auto& job : *shared) RefuseStopped(*job);
}

void CurlWorker::RefuseStopped(core::FetchJob& job) {
  fetch::v1::FetchResult result;
  result.set_id(job.id);
  result.set_index(job.index);
  result.set_final_url(job.url);
  result.set_error(fetch::v1::ERROR_KIND_CANCELLED);
  result.set_error_message("server shutting down");
  job.batch->Deliver(std::move(result), /*holds_window=*/false);
  job.batch->Flush();
}

void CurlWorker::ReleaseHost(core::FetchJob& job,
                             const core::politeness::AttemptResult& result,
                             absl::Time now) {
  if (!scheduler_.Release(job, result, now)) {
    spdlog::error("curl worker {}: released host {} with nothing in flight",
                  index_, job.host_key);
  }
}

void CurlWorker::FinishRejected() {
  for (core::HostScheduler::Rejected& rejected : scheduler_.TakeRejected()) {
    const bool queue_full =
        rejected.rejection.reason == core::politeness::RejectReason::kQueueFull;
    // A full queue is a wait that could not even begin: QUEUE_TIMEOUT, as
    // retryable later as a queue timeout is.
    DeliverEarly(std::move(rejected.job),
                 queue_full ? fetch::v1::ERROR_KIND_QUEUE_TIMEOUT
                            : fetch::v1::ERROR_KIND_CIRCUIT_OPEN,
                 std::move(rejected.rejection.message));
  }
}

void CurlWorker::CancelBatch(std::shared_ptr<core::Batch> batch) {
  // Refused only by a stopped worker, which has ended every job already.
  (void)Post(
      [this, batch = std::move(batch)]() { CancelBatchNow(batch.get()); });
}

void CurlWorker::Wake() { curl_multi_wakeup(multi_.get()); }

core::FetcherStats CurlWorker::stats() const {
  core::FetcherStats stats{stat_in_flight_.load(std::memory_order_relaxed),
                           stat_queued_.load(std::memory_order_relaxed),
                           stat_delayed_.load(std::memory_order_relaxed),
                           {}};
  absl::MutexLock lock(&stats_mu_);
  stats.politeness = politeness_stats_;
  return stats;
}

void CurlWorker::RunInbox() {
  std::vector<Task> tasks;
  {
    absl::MutexLock lock(&inbox_mu_);
    tasks.swap(inbox_);
  }
  for (Task& task : tasks) std::move(task)();
}

void CurlWorker::Run() {
  while (true) {
    RunInbox();
    if (stopping_.load(std::memory_order_acquire)) break;
    absl::Time now = clock_->Now();
    ExpireQueued(now);
    AbortIdle(now);
    Dispatch(now);
    FinishRejected();
    ResumePaused(now);

    int still_running = 0;
    CURLMcode mc = curl_multi_perform(multi_.get(), &still_running);
    if (mc != CURLM_OK) {
      spdlog::error("curl_multi_perform: {}", curl_multi_strerror(mc));
    }
    now = clock_->Now();
    bool finished_any = false;
    int pending = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &pending)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode code = msg->data.result;
      HandleDone(easy, code, now);
      finished_any = true;
    }
    SendPartialChunks();
    FlushDelivered();
    PublishStats(now);
    // Finished transfers freed slots: start queued jobs before sleeping.
    if (finished_any) continue;

    const absl::Time wake = std::min(
        {scheduler_.NextEvent(), next_idle_check_, now + kMaxPollWait});
    const int timeout_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(
                                absl::Ceil(wake - now, absl::Milliseconds(1))),
                            0, absl::ToInt64Milliseconds(kMaxPollWait)));
    mc = curl_multi_poll(multi_.get(), nullptr, 0, timeout_ms, nullptr);
    if (mc != CURLM_OK) {
      spdlog::error("curl_multi_poll: {}", curl_multi_strerror(mc));
    }
  }
  // Work posted before the stop still gets its results; nothing is taken
  // after this.
  {
    absl::MutexLock lock(&inbox_mu_);
    closed_ = true;
  }
  RunInbox();
  FinishRejected();
  CancelAll("server shutting down");
  FlushDelivered();
  PublishStats(absl::InfinitePast());
}

void CurlWorker::ExpireQueued(absl::Time now) {
  for (auto& job : scheduler_.TakeExpired(now)) {
    const std::string message =
        absl::StrCat("waited ", absl::FormatDuration(job->queue_wait),
                     " for a connection slot (queue timeout ",
                     absl::FormatDuration(job->queue_timeout), ")");
    DeliverEarly(std::move(job), fetch::v1::ERROR_KIND_QUEUE_TIMEOUT, message);
  }
}

void CurlWorker::AbortIdle(absl::Time now) {
  if (now < next_idle_check_) return;
  absl::Time next = absl::InfiniteFuture();
  std::vector<CURL*> idle;
  for (const auto& [easy, transfer] : running_) {
    const absl::Time deadline = transfer->IdleDeadline();
    if (deadline <= now) {
      idle.push_back(easy);
    } else {
      // Not yet connected: the deadline can't come before now + idle.
      next = std::min(next, deadline == absl::InfiniteFuture()
                                ? now + transfer->job().read_idle_timeout
                                : deadline);
    }
  }
  next_idle_check_ = next;
  for (CURL* easy : idle) {
    std::unique_ptr<Transfer> transfer = Detach(easy);
    transfer->set_abort(Transfer::Abort::kReadIdle);
    FinishAttempt(std::move(transfer), CURLE_OK, now);
  }
}

void CurlWorker::ResumePaused(absl::Time now) {
  if (paused_.empty()) return;
  std::vector<CURL*> paused;
  paused.swap(paused_);
  for (CURL* easy : paused) {
    const auto it = running_.find(easy);
    if (it == running_.end() || !it->second->paused()) continue;
    Transfer& transfer = *it->second;
    if (!transfer.job().batch->StreamHasRoom(index_)) {
      paused_.push_back(easy);  // the batch wakes us when it drains
      continue;
    }
    // A transfer that pauses again inside Resume() lists itself anew.
    if (absl::Status s = transfer.Resume(now); !s.ok()) {
      spdlog::error("resuming a streamed transfer: {}", s.ToString());
    }
  }
}

void CurlWorker::SendPartialChunks() {
  if (partial_.empty()) return;
  std::vector<CURL*> partial;
  partial.swap(partial_);
  for (CURL* easy : partial) {
    const auto it = running_.find(easy);
    if (it != running_.end()) it->second->SendPartial();
  }
}

void CurlWorker::Dispatch(absl::Time now) {
  while (std::unique_ptr<core::FetchJob> job = scheduler_.Next(now)) {
    core::Batch& batch = *job->batch;
    ErrorKind early = fetch::v1::ERROR_KIND_NONE;
    std::string message;
    if (batch.cancelled()) {
      early = batch.cancel_error();
      message = "batch cancelled before this request started";
    } else if (now >= batch.deadline()) {
      early = fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED;
      message = "the RPC deadline passed before this request started";
    }
    if (early == fetch::v1::ERROR_KIND_NONE) {
      StartAttempt(std::move(job), now);
      continue;
    }
    ReleaseHost(*job, Aborted(), now);
    batch.ReleaseConcurrency();
    fetch::v1::FetchResult result;
    result.set_error(early);
    result.set_error_message(std::move(message));
    Deliver(*job, std::move(result), /*holds_window=*/true);
  }
}

void CurlWorker::StartAttempt(std::unique_ptr<core::FetchJob> job,
                              absl::Time now) {
  if (!job->redirect_pending) ++job->attempts;
  job->redirect_pending = false;
  CurlEasyPtr easy = AcquireEasy();
  absl::Status status = easy == nullptr
                            ? absl::InternalError("curl_easy_init failed")
                            : absl::OkStatus();
  auto transfer = std::make_unique<Transfer>(std::move(job), std::move(easy),
                                             clock_, destinations_, &settings_);
  transfer->set_worker_lists(&paused_, &partial_, index_);
  if (status.ok()) status = transfer->Start(now);
  if (status.ok()) {
    const CURLMcode mc = curl_multi_add_handle(multi_.get(), transfer->easy());
    if (mc != CURLM_OK) {
      status = absl::InternalError(
          absl::StrCat("curl_multi_add_handle: ", curl_multi_strerror(mc)));
    }
  }
  core::FetchJob& started = transfer->job();
  if (!status.ok()) {
    ReleaseHost(started, Aborted(), now);
    started.batch->ReleaseConcurrency();
    fetch::v1::FetchResult result;
    result.set_error(fetch::v1::ERROR_KIND_INTERNAL);
    result.set_error_message(std::string(status.message()));
    Deliver(started, std::move(result), /*holds_window=*/true);
    if (transfer->easy() != nullptr) RecycleEasy(transfer->TakeEasy());
    return;
  }
  if (observer_ != nullptr) {
    // The scheduler took the job at `now`; it had waited since queued_at.
    observer_->OnAttemptStarted(started, now - started.queued_at);
  }
  next_idle_check_ =
      std::min(next_idle_check_, now + started.read_idle_timeout);
  CURL* key = transfer->easy();
  running_.emplace(key, std::move(transfer));
}

std::unique_ptr<Transfer> CurlWorker::Detach(CURL* easy) {
  auto it = running_.find(easy);
  if (it == running_.end()) return nullptr;
  std::unique_ptr<Transfer> transfer = std::move(it->second);
  running_.erase(it);
  const CURLMcode mc = curl_multi_remove_handle(multi_.get(), easy);
  if (mc != CURLM_OK) {
    spdlog::error("curl_multi_remove_handle: {}", curl_multi_strerror(mc));
  }
  transfer->job().batch->ReleaseConcurrency();
  return transfer;
}

void CurlWorker::HandleDone(CURL* easy, CURLcode code, absl::Time now) {
  std::unique_ptr<Transfer> transfer = Detach(easy);
  if (transfer == nullptr) {
    spdlog::error("curl reported a transfer fetchd doesn't know");
    return;
  }
  FinishAttempt(std::move(transfer), code, now);
}

void CurlWorker::FinishAttempt(std::unique_ptr<Transfer> transfer,
                               CURLcode code, absl::Time now) {
  const core::AttemptOutcome outcome = transfer->Finish(code);
  core::FetchJob& job = transfer->job();
  // Before a redirect moves the job to another host.
  ReleaseHost(job, AttemptResultOf(outcome), now);
  if (observer_ != nullptr && transfer->denied_category().has_value()) {
    observer_->OnPolicyDenied(*transfer->denied_category());
  }
  if (transfer->redirect_url().has_value() && !job.batch->cancelled()) {
    FollowRedirect(std::move(transfer), outcome, now);
    return;
  }
  // Once its head has been streamed, a request is never tried again: the
  // caller already has part of this response.
  absl::Status budget;
  if (!job.batch->cancelled() && !job.head_sent) {
    const std::optional<core::RetryDecision> retry = core::DecideRetry(
        job.retry, outcome, job.attempts, core::IsIdempotent(job.method),
        job.batch->deadline() - now, rng_);
    // The host's retry budget has the last word: a failing host must not
    // multiply its own load.
    if (retry.has_value()) budget = scheduler_.TryRetry(job, now);
    if (retry.has_value() && budget.ok()) {
      ReportAttempt(job, transfer->result(), outcome, retry->reason);
      // The job leaves the window while it waits; it competes for a slot
      // again when its backoff ends.
      job.batch->ReleaseWindow();
      RecycleEasy(transfer->TakeEasy());
      scheduler_.EnqueueAt(transfer->TakeJob(), now + retry->delay);
      return;
    }
  }
  ReportAttempt(job, transfer->result(), outcome, std::nullopt);
  fetch::v1::FetchResult result = std::move(transfer->result());
  if (!budget.ok()) {
    job.politeness_waits.retry_denied = true;
    // The request keeps its last error; the message says why it stopped.
    if (result.error() != fetch::v1::ERROR_KIND_NONE) {
      result.set_error_message(absl::StrCat(
          result.error_message(), "; not retried: ", budget.message()));
    }
  }
  RecycleEasy(transfer->TakeEasy());
  Deliver(job, std::move(result), /*holds_window=*/true);
}

void CurlWorker::FollowRedirect(std::unique_ptr<Transfer> transfer,
                                const core::AttemptOutcome& outcome,
                                absl::Time now) {
  core::FetchJob& job = transfer->job();
  fetch::v1::FetchResult& hop = transfer->result();
  const auto stop = [&](ErrorKind kind, std::string message,
                        absl::string_view denied_category) {
    if (observer_ != nullptr && !denied_category.empty()) {
      observer_->OnPolicyDenied(denied_category);
    }
    ReportAttempt(job, hop, outcome, std::nullopt);
    fetch::v1::FetchResult result = std::move(hop);
    result.set_error(kind);
    result.set_error_message(std::move(message));
    RecycleEasy(transfer->TakeEasy());
    Deliver(job, std::move(result), /*holds_window=*/true);
  };
  if (job.redirect_history.size() >= job.max_redirects) {
    stop(fetch::v1::ERROR_KIND_TOO_MANY_REDIRECTS,
         absl::StrCat("more than ", job.max_redirects,
                      " redirects (max_redirects)"),
         "");
    return;
  }
  absl::StatusOr<url::HttpUrl> target =
      url::ParseHttpUrl(*transfer->redirect_url());
  if (!target.ok()) {
    const bool denied =
        target.status().code() == absl::StatusCode::kPermissionDenied;
    stop(denied ? fetch::v1::ERROR_KIND_DENIED : fetch::v1::ERROR_KIND_PROTOCOL,
         absl::StrCat("redirect ", job.redirect_history.size() + 1, " (",
                      hop.status(), "): Location ", target.status().message()),
         denied ? "scheme" : "");
    return;
  }
  if (destinations_ != nullptr) {
    const std::string hop_name = absl::StrCat(
        "redirect ", job.redirect_history.size() + 1, " (", hop.status(), ")");
    if (std::optional<policy::Denial> denial = destinations_->CheckTarget(
            hop_name, target->scheme, target->host, target->port,
            job.caller_host_check.get())) {
      stop(fetch::v1::ERROR_KIND_DENIED,
           denial->category == "caller"
               ? absl::StrCat(hop_name, ": ", denial->message)
               : std::move(denial->message),
           denial->category);
      return;
    }
  }
  core::RedirectJob(job, hop.status(), std::move(target->url),
                    std::move(target->host_key));
  // The hop counts as a redirect followed, for the metrics.
  hop.set_redirects(1);
  ReportAttempt(job, hop, outcome, std::nullopt);
  job.redirect_time += now - transfer->started();
  // Like a retry, the job leaves the window and competes for a slot again.
  job.batch->ReleaseWindow();
  RecycleEasy(transfer->TakeEasy());
  std::unique_ptr<core::FetchJob> next = transfer->TakeJob();
  CurlWorker* owner =
      router_ == nullptr ? this : router_->WorkerFor(next->host_key);
  if (owner == this) {
    scheduler_.Enqueue(std::move(next), now);
    return;
  }
  if (!owner->SubmitHop(next)) {
    // The pool is stopping: nobody will run the hop.
    DeliverEarly(std::move(next), fetch::v1::ERROR_KIND_CANCELLED,
                 "server shutting down");
  }
}

void CurlWorker::ReportAttempt(const core::FetchJob& job,
                               const fetch::v1::FetchResult& attempt,
                               const core::AttemptOutcome& outcome,
                               std::optional<core::RetryReason> retry) {
  if (observer_ == nullptr) return;
  observer_->OnAttemptFinished(job, attempt, outcome.request_sent, retry);
}

void CurlWorker::CancelBatchNow(const core::Batch* batch) {
  const ErrorKind why = batch->cancel_error();
  const bool deadline = why == fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED;
  for (auto& job : scheduler_.TakeBatch(batch, clock_->Now())) {
    DeliverEarly(std::move(job), why,
                 deadline ? "the call's deadline came before this request "
                            "started (limits.deadline_margin before it)"
                          : "batch cancelled before this request finished");
  }
  CancelRunning(batch, why,
                deadline ? "the call's deadline came while this request was "
                           "running (limits.deadline_margin before it)"
                         : "batch cancelled while this request was running");
  PublishStats(absl::InfinitePast());
}

void CurlWorker::CancelAll(absl::string_view why) {
  CancelRunning(nullptr, fetch::v1::ERROR_KIND_CANCELLED, std::string(why));
  for (auto& job : scheduler_.TakeAll(clock_->Now())) {
    DeliverEarly(std::move(job), fetch::v1::ERROR_KIND_CANCELLED,
                 std::string(why));
  }
}

void CurlWorker::CancelRunning(const core::Batch* batch, ErrorKind kind,
                               const std::string& message) {
  std::vector<CURL*> easies;
  for (const auto& [easy, transfer] : running_) {
    if (batch == nullptr || transfer->job().batch.get() == batch) {
      easies.push_back(easy);
    }
  }
  for (CURL* easy : easies) {
    std::unique_ptr<Transfer> transfer = Detach(easy);
    transfer->set_abort(Transfer::Abort::kCancelled);
    const core::AttemptOutcome outcome = transfer->Finish(CURLE_OK);
    ReleaseHost(transfer->job(), Aborted(), clock_->Now());
    ReportAttempt(transfer->job(), transfer->result(), outcome, std::nullopt);
    fetch::v1::FetchResult result = std::move(transfer->result());
    result.set_error(kind);
    result.set_error_message(message);
    RecycleEasy(transfer->TakeEasy());
    Deliver(transfer->job(), std::move(result), /*holds_window=*/true);
  }
}

void CurlWorker::DeliverEarly(std::unique_ptr<core::FetchJob> job,
                              ErrorKind kind, std::string message) {
  fetch::v1::FetchResult result;
  result.set_error(kind);
  result.set_error_message(std::move(message));
  Deliver(*job, std::move(result), /*holds_window=*/false);
}

void CurlWorker::Deliver(core::FetchJob& job, fetch::v1::FetchResult result,
                         bool holds_window) {
  result.set_id(job.id);
  result.set_index(job.index);
  result.set_attempts(static_cast<uint32_t>(job.attempts));
  result.set_redirects(static_cast<uint32_t>(job.redirect_history.size()));
  for (const std::string& cookie : job.set_cookies) {
    result.add_set_cookies(cookie);
  }
  for (const core::RedirectHop& hop : job.redirect_history) {
    fetch::v1::RedirectHop* out = result.add_redirect_history();
    out->set_url(hop.url);
    out->set_status(hop.status);
  }
  if (job.redirect_time > absl::ZeroDuration()) {
    *result.mutable_timings()->mutable_redirect() = ToProto(job.redirect_time);
  }
  if (result.final_url().empty()) result.set_final_url(job.url);
  *result.mutable_timings()->mutable_queue_wait() = ToProto(job.queue_wait);
  if (const core::FetchJob::PolitenessWaits& p = job.politeness_waits;
      p.rate || p.paused || p.retry_denied) {
    fetch::v1::PolitenessReport* report = result.mutable_politeness();
    report->set_rule(limiter_->Rule(job.host_key).name);
    report->set_rate_limited(p.rate);
    report->set_paused(p.paused);
    report->set_retry_denied(p.retry_denied);
  }
  if (observer_ != nullptr) {
    const absl::Duration duration = job.admitted_at == absl::InfinitePast()
                                        ? absl::ZeroDuration()
                                        : clock_->Now() - job.admitted_at;
    observer_->OnResult(
        core::FinishedRequest{job.method, job.url, job.host_key, duration},
        result, rng_);
  }
  // A streamed job's held body (or head) goes out before its result.
  SendHeldBody(job, result);
  job.batch->Deliver(std::move(result), holds_window);
  if (delivered_.empty() || delivered_.back() != job.batch) {
    delivered_.push_back(job.batch);
  }
}

void CurlWorker::FlushDelivered() {
  // A batch may appear more than once (interleaved deliveries); Flush() of
  // an already flushed batch does nothing.
  for (const auto& batch : delivered_) batch->Flush();
  delivered_.clear();
}

CurlEasyPtr CurlWorker::AcquireEasy() {
  if (!idle_easy_.empty()) {
    CurlEasyPtr easy = std::move(idle_easy_.back());
    idle_easy_.pop_back();
    curl_easy_reset(easy.get());
    return easy;
  }
  return CurlEasyPtr(curl_easy_init());
}

void CurlWorker::RecycleEasy(CurlEasyPtr easy) {
  // The batch's cookie jar may end with the batch; the handle must not
  // keep pointing at it (curl_easy_reset keeps the share).
  if (easy != nullptr) CookieJar::Detach(easy.get());
  if (easy != nullptr && idle_easy_.size() < kMaxIdleEasy) {
    idle_easy_.push_back(std::move(easy));
  }
}

void CurlWorker::PublishStats(absl::Time now) {
  stat_in_flight_.store(static_cast<int64_t>(running_.size()),
                        std::memory_order_relaxed);
  stat_queued_.store(static_cast<int64_t>(scheduler_.queued()),
                     std::memory_order_relaxed);
  stat_delayed_.store(static_cast<int64_t>(scheduler_.delayed()),
                      std::memory_order_relaxed);
  if (now < next_politeness_stats_) return;
  next_politeness_stats_ = now + kPolitenessStatsInterval;
  std::vector<core::politeness::RuleStats> stats = limiter_->Stats(now);
  absl::MutexLock lock(&stats_mu_);
  politeness_stats_.swap(stats);
}

}  // namespace fetchd::transport
