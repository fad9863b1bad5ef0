// Fetcher: what the API layer needs from the engine. The curl worker pool
// implements it; API tests may substitute their own.
//
// Thread-safety: every method may be called from any thread.
#ifndef FETCHD_SERVICE_CORE_FETCHER_H_
#define FETCHD_SERVICE_CORE_FETCHER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "service/core/batch.h"
#include "service/core/cookie_store.h"
#include "service/core/fetch_job.h"
#include "service/core/politeness/host_limiter.h"

namespace fetchd::core {

// Gauges of the engine, summed over workers (updated once per worker loop).
struct FetcherStats {
  int64_t in_flight = 0;  // attempts running in curl
  int64_t queued = 0;     // waiting for a slot
  int64_t delayed = 0;    // waiting for a retry backoff to end
  // Per politeness rule, in RuleSet order: gauges summed (the adaptive
  // limit is the lowest), counters summed. Refreshed every few hundred
  // milliseconds, not every loop.
  std::vector<politeness::RuleStats> politeness;
};

class Fetcher : public DispatchWaker {
 public:
  // Takes the jobs; each gets exactly one Batch::Deliver() of its batch.
  virtual void Submit(std::vector<std::unique_ptr<FetchJob>> jobs) = 0;
  // Ends every queued, delayed or running job of `batch` with
  // batch->cancel_error(). Call after batch->Cancel().
  virtual void CancelBatch(const std::shared_ptr<Batch>& batch) = 0;
  virtual FetcherStats stats() const = 0;
  // A cookie store for the jobs of one call (FetchJob::cookie_jar), holding
  // `initial` to start with. Errors (InvalidArgument) name `field`[i]: a
  // cookie a Cookie header can't carry.
  virtual absl::StatusOr<std::shared_ptr<CookieStore>> NewCookieStore(
      const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
      absl::string_view field) = 0;
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_FETCHER_H_
