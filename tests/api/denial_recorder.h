// A FetchObserver that records the destination-policy denials it is told
// about (and ignores everything else), for tests of the policy.
#ifndef FETCHD_TESTS_API_DENIAL_RECORDER_H_
#define FETCHD_TESTS_API_DENIAL_RECORDER_H_

#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/core/fetch_observer.h"

namespace fetchd::testing {

class DenialRecorder final : public core::FetchObserver {
 public:
  void OnAttemptStarted(const core::FetchJob&, absl::Duration) override {}
  void OnAttemptFinished(const core::FetchJob&, const fetch::v1::FetchResult&,
                         bool, std::optional<core::RetryReason>) override {}
  void OnResult(const core::FinishedRequest&, const fetch::v1::FetchResult&,
                absl::BitGenRef) override {}
  void OnCallFinished(core::CallMethod, absl::StatusCode, absl::Duration,
                      bool) override {}
  void OnPolicyDenied(absl::string_view category) override {
    absl::MutexLock lock(&mu_);
    ++denials_[std::string(category)];
  }

  // Denials by category so far.
  std::map<std::string, int> denials() const {
    absl::MutexLock lock(&mu_);
    return denials_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int> denials_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_API_DENIAL_RECORDER_H_
