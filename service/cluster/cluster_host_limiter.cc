#include "service/cluster/cluster_host_limiter.h"

#include <utility>

namespace fetchd::cluster {

namespace pol = core::politeness;

pol::LocalHostLimiter::Options ClusterHostLimiter::RateElsewhere(
    pol::LocalHostLimiter::Options options) {
  options.rate_elsewhere = true;
  return options;
}

ClusterHostLimiter::ClusterHostLimiter(
    std::shared_ptr<const pol::RuleSet> rules,
    pol::LocalHostLimiter::Options options, LeaseBroker* broker,
    std::function<void()> wake_worker)
    : local_(std::move(rules), RateElsewhere(options)),
      broker_(broker),
      wake_worker_(std::move(wake_worker)) {}

const pol::HostRule& ClusterHostLimiter::Rule(
    absl::string_view host_key) const {
  return local_.Rule(host_key);
}

std::optional<pol::Rejection> ClusterHostLimiter::CheckQueue(
    absl::string_view host_key, size_t waiting, absl::Time now) const {
  return local_.CheckQueue(host_key, waiting, now);
}

pol::Admission ClusterHostLimiter::Reserve(absl::string_view host_key,
                                           absl::Time now) {
  const pol::HostRule& rule = local_.Rule(host_key);
  const LeaseBroker::Decision decision = broker_->TryTake(
      host_key, HostLimits{rule.max_concurrency, rule.rate, rule.burst}, this,
      now);
  if (!decision.go) {
    pol::Admission wait;
    wait.kind = pol::Admission::Kind::kWait;
    wait.until = decision.until;
    wait.wait_reason = decision.reason;
    return wait;
  }
  pol::Admission admission = local_.Reserve(host_key, now);
  if (admission.kind != pol::Admission::Kind::kGo) broker_->Untake(host_key);
  return admission;
}

bool ClusterHostLimiter::Release(absl::string_view host_key,
                                 const pol::Permit& permit,
                                 const pol::AttemptResult& result,
                                 absl::Time now) {
  if (!local_.Release(host_key, permit, result, now)) return false;
  broker_->Release(host_key, now);
  if (result.kind == pol::AttemptResult::Kind::kResponse &&
      (result.status == 429 || result.status == 503)) {
    const absl::Time until = local_.PausedUntil(host_key);
    if (until > now) broker_->PublishPause(host_key, until, now);
  }
  return true;
}

absl::Status ClusterHostLimiter::TryRetry(absl::string_view host_key,
                                          absl::Time now) {
  return local_.TryRetry(host_key, now);
}

void ClusterHostLimiter::EndRetry(absl::string_view host_key, absl::Time now) {
  local_.EndRetry(host_key, now);
}

absl::Time ClusterHostLimiter::NextReady(absl::string_view host_key,
                                         absl::Time now) const {
  return local_.NextReady(host_key, now);
}

void ClusterHostLimiter::NoteWaited(absl::string_view host_key,
                                    pol::WaitReason reason) {
  local_.NoteWaited(host_key, reason);
}

std::vector<pol::RuleStats> ClusterHostLimiter::Stats(absl::Time now) const {
  return local_.Stats(now);
}

std::vector<std::string> ClusterHostLimiter::TakeWoken() {
  if (!any_woken_.load(std::memory_order_acquire)) return {};
  absl::MutexLock lock(&mu_);
  any_woken_.store(false, std::memory_order_relaxed);
  return std::exchange(woken_, {});
}

void ClusterHostLimiter::WakeHosts(std::vector<std::string> host_keys) {
  {
    absl::MutexLock lock(&mu_);
    for (std::string& key : host_keys) woken_.push_back(std::move(key));
    any_woken_.store(true, std::memory_order_release);
  }
  if (wake_worker_) wake_worker_();
}

}  // namespace fetchd::cluster
