// FetchServiceImpl: fetch.v1.FetchService on gRPC's callback API. Each call
// passes the CallGate (identity, drain, admission), its requests go through
// the request pipeline (SubmitRequests: validate, merge defaults, build the
// jobs, submit them to the Fetcher), and its results stream back through a
// BatchCall (FetchBatch), a StreamCall feeding a BatchCall (FetchStream) or
// a UnaryCall (Fetch).
//
// Destinations: a request whose host is not in its caller's allowed_hosts
// gets a result with ERROR_KIND_DENIED naming the caller and the rule; the
// rest of the batch runs. Fairness: each batch is tagged with its caller,
// and the scheduler serves a host's callers round-robin (HostScheduler).
//
// Cancellation (client cancel, RPC deadline, fail_fast) cancels the batch in
// the Fetcher, which ends its queued and running transfers.
//
// Observation: every call's end (method, status, handling time, whether it
// was refused) and the results of requests that fail validation (the
// workers report all other results) go to the optional core::FetchObserver.
//
// Thread-safety: gRPC calls the handlers from its threads; workers deliver
// results from theirs. The service itself holds no mutable state.
#ifndef FETCHD_SERVICE_API_FETCH_SERVICE_H_
#define FETCHD_SERVICE_API_FETCH_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/api/request_validation.h"
#include "service/auth/caller_auth.h"
#include "service/core/batch.h"
#include "service/policy/destination_gate.h"

namespace fetchd::api {

class FetchServiceImpl final : public fetch::v1::FetchService::CallbackService {
 public:
  struct Options {
    // Every call passes it; must outlive the service.
    CallGate* gate = nullptr;
    // Where requests may go; must outlive the service.
    const policy::DestinationGate* destinations = nullptr;
    // `env.fetcher`, `env.clock` and `env.stats` must outlive the service,
    // and so must `env.observer` unless it is null (nothing reported).
    CallEnv env;
  };

  // Checks config.request_defaults against config.request_bounds.
  static absl::StatusOr<std::unique_ptr<FetchServiceImpl>> Create(
      const fetch::v1::ServerConfig& config, const Options& options);

  grpc::ServerWriteReactor<fetch::v1::FetchEvent>* FetchBatch(
      grpc::CallbackServerContext* context,
      const fetch::v1::BatchRequest* request) override;
  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext* context,
                                  const fetch::v1::FetchRequest* request,
                                  fetch::v1::FetchResult* response) override;
  grpc::ServerBidiReactor<fetch::v1::FetchStreamRequest, fetch::v1::FetchEvent>*
  FetchStream(grpc::CallbackServerContext* context) override;

 private:
  FetchServiceImpl(const fetch::v1::ServerConfig& config,
                   RequestValidator validator, const Options& options);
  absl::Time DeadlineOf(const grpc::CallbackServerContext& context) const;
  // The core::Batch options of a FetchBatch, or of a FetchStream's options.
  core::Batch::Options BatchOptions(const fetch::v1::BatchRequest& request,
                                    const auth::Caller& caller,
                                    absl::Time deadline) const;

  const fetch::v1::Limits limits_;
  const RequestValidator validator_;
  CallGate* const gate_;
  const CallEnv env_;
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_FETCH_SERVICE_H_
