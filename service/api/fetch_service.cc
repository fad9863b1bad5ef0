#include "service/api/fetch_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "service/api/batch_call.h"
#include "service/api/stream_call.h"
#include "service/api/submit_requests.h"
#include "service/api/unary_call.h"
#include "service/common/status_macros.h"

namespace fetchd::api {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;
using fetch::v1::FetchStreamRequest;

// A call refused before it started.
class RejectedBatch final : public grpc::ServerWriteReactor<FetchEvent> {
 public:
  explicit RejectedBatch(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class RejectedStream final
    : public grpc::ServerBidiReactor<FetchStreamRequest, FetchEvent> {
 public:
  explicit RejectedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// The batch's cookie jar: one per batch unless turned off.
absl::StatusOr<std::shared_ptr<core::CookieStore>> BatchCookieJar(
    core::Fetcher& fetcher, const BatchRequest& request) {
  if (!request.has_cookie_jar() || request.cookie_jar()) {
    return fetcher.NewCookieStore(request.cookies(), "cookies");
  }
  if (request.cookies_size() > 0) {
    return absl::InvalidArgumentError(
        "cookies: given while cookie_jar is false");
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FetchServiceImpl>> FetchServiceImpl::Create(
    const fetch::v1::ServerConfig& config, const Options& options) {
  if (options.gate == nullptr || options.destinations == nullptr) {
    return absl::InvalidArgumentError(
        "FetchServiceImpl: the call gate and the destination gate are "
        "required");
  }
  RequestValidator validator(config, options.destinations);
  FETCHD_RETURN_IF_ERROR(validator.CheckServerDefaults());
  return std::unique_ptr<FetchServiceImpl>(
      new FetchServiceImpl(config, std::move(validator), options));
}

FetchServiceImpl::FetchServiceImpl(const fetch::v1::ServerConfig& config,
                                   RequestValidator validator,
                                   const Options& options)
    : limits_(config.limits()),
      validator_(std::move(validator)),
      gate_(options.gate),
      env_(options.env) {}

namespace {

// The call's deadline in real time; InfiniteFuture for none.
absl::Time RealDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() -
                      std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

}  // namespace

absl::Time FetchServiceImpl::DeadlineOf(
    const grpc::CallbackServerContext& context) const {
  const absl::Time deadline = RealDeadline(context);
  if (deadline == absl::InfiniteFuture()) return deadline;
  return env_.clock->Now() + (deadline - absl::Now());
}

grpc::ServerWriteReactor<FetchEvent>* FetchServiceImpl::FetchBatch(
    grpc::CallbackServerContext* context, const BatchRequest* request) {
  constexpr auto kMethod = core::CallMethod::kFetchBatch;
  const absl::Time started = env_.clock->Now();
  const auto reject = [&](const absl::Status& status) {
    const grpc::Status s = ToGrpc(status);
    ReportCall(env_, kMethod, s, started, /*rejected=*/true);
    return new RejectedBatch(s);
  };
  const absl::StatusOr<auth::Caller> caller = gate_->Identify(*context);
  if (!caller.ok()) return reject(caller.status());
  if (absl::Status s = validator_.ValidateBatch(*request); !s.ok()) {
    return reject(s);
  }
  absl::StatusOr<std::shared_ptr<core::CookieStore>> jar =
      BatchCookieJar(*env_.fetcher, *request);
  if (!jar.ok()) return reject(jar.status());
  const int64_t n = request->requests_size();
  absl::StatusOr<std::unique_ptr<CallGate::Ticket>> ticket =
      gate_->Admit(*context, CallKind::kFetchBatch, n, *caller);
  if (!ticket.ok()) return reject(ticket.status());

  const core::Batch::Options options =
      BatchOptions(*request, *caller, DeadlineOf(*context));
  BatchCall::Setup setup;
  setup.fail_fast = request->fail_fast();
  setup.total = n;
  setup.started = started;
  auto call =
      std::make_shared<BatchCall>(options, env_, setup, *std::move(ticket));
  auto* reactor = MakeBatchReactor(context, call);
  call->ticket().Register(call);
  call->CutBeforeDeadline(options.deadline);

  const FetchRequest defaults =
      validator_.EffectiveDefaults(request->defaults());
  CallRequests requests;
  requests.defaults = &defaults;
  requests.requests = absl::MakeConstSpan(request->requests().data(),
                                          request->requests().size());
  requests.cookie_jar = *std::move(jar);
  requests.defaults_set_queue_timeout =
      request->defaults().timeouts().has_queue();
  SubmitRequests(validator_, env_, *caller, call, requests, started);
  return reactor;
}

core::Batch::Options FetchServiceImpl::BatchOptions(const BatchRequest& request,
                                                    const auth::Caller& caller,
                                                    absl::Time deadline) const {
  core::Batch::Options options;
  options.max_concurrency = static_cast<int>(
      request.max_concurrency() == 0
          ? limits_.max_in_flight()
          : std::min(request.max_concurrency(), limits_.max_in_flight()));
  options.window = static_cast<int>(limits_.stream_window());
  options.max_stream_buffer_bytes =
      static_cast<int64_t>(limits_.max_stream_buffer_bytes());
  options.ordered = request.ordered();
  options.deadline = deadline;
  options.caller = caller.name;
  options.politeness.max_concurrency = static_cast<int>(
      std::min<uint32_t>(request.politeness().max_concurrency(), 1 << 30));
  options.politeness.rate = request.politeness().rate();
  return options;
}

grpc::ServerBidiReactor<FetchStreamRequest, FetchEvent>*
FetchServiceImpl::FetchStream(grpc::CallbackServerContext* context) {
  constexpr auto kMethod = core::CallMethod::kFetchStream;
  const absl::Time started = env_.clock->Now();
  const auto reject = [&](const absl::Status& status) {
    const grpc::Status s = ToGrpc(status);
    ReportCall(env_, kMethod, s, started, /*rejected=*/true);
    return new RejectedStream(s);
  };
  const absl::StatusOr<auth::Caller> caller = gate_->Identify(*context);
  if (!caller.ok()) return reject(caller.status());
  // Admitted with no requests: each message's count as they are read.
  absl::StatusOr<std::unique_ptr<CallGate::Ticket>> ticket =
      gate_->Admit(*context, CallKind::kFetchStream, 0, *caller);
  if (!ticket.ok()) return reject(ticket.status());

  StreamCall::Setup setup;
  setup.validator = &validator_;
  setup.caller = *caller;
  setup.read_window = static_cast<int64_t>(limits_.stream_window());
  setup.max_message_requests = static_cast<int64_t>(limits_.max_batch_size());
  setup.started = started;
  setup.deadline = DeadlineOf(*context);
  setup.opener =
      [this, caller = *caller, deadline = setup.deadline](
          const BatchRequest& options) -> absl::StatusOr<StreamCall::Opened> {
    FETCHD_RETURN_IF_ERROR(validator_.ValidateStreamOptions(options));
    StreamCall::Opened opened;
    FETCHD_ASSIGN_OR_RETURN(opened.cookie_jar,
                            BatchCookieJar(*env_.fetcher, options));
    opened.options = BatchOptions(options, caller, deadline);
    opened.fail_fast = options.fail_fast();
    opened.defaults = validator_.EffectiveDefaults(options.defaults());
    opened.defaults_set_queue_timeout =
        options.defaults().timeouts().has_queue();
    return opened;
  };
  auto call =
      std::make_shared<StreamCall>(env_, std::move(setup), *std::move(ticket));
  call->ticket().Register(call);
  return MakeStreamReactor(context, std::move(call));
}

grpc::ServerUnaryReactor* FetchServiceImpl::Fetch(
    grpc::CallbackServerContext* context, const FetchRequest* request,
    FetchResult* response) {
  constexpr auto kMethod = core::CallMethod::kFetch;
  const absl::Time started = env_.clock->Now();
  const absl::StatusOr<auth::Caller> caller = gate_->Identify(*context);
  absl::StatusOr<std::unique_ptr<CallGate::Ticket>> ticket =
      caller.ok() ? gate_->Admit(*context, CallKind::kFetch, 1, *caller)
                  : caller.status();
  if (!ticket.ok()) {
    const grpc::Status s = ToGrpc(ticket.status());
    ReportCall(env_, kMethod, s, started, /*rejected=*/true);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  }
  core::Batch::Options options;
  options.window = 1;
  options.max_concurrency = 1;
  options.deadline = DeadlineOf(*context);
  options.caller = caller->name;
  auto call = std::make_shared<UnaryCall>(options, env_, context, response,
                                          started, *std::move(ticket));
  call->Start(call);
  call->ticket().Register(call);
  call->CutBeforeDeadline(options.deadline);
  const FetchRequest defaults = validator_.EffectiveDefaults(FetchRequest());
  // A single request still keeps the cookies its redirect hops set.
  absl::StatusOr<std::shared_ptr<core::CookieStore>> jar =
      env_.fetcher->NewCookieStore({}, "cookies");
  const FetchRequest* items[] = {request};
  CallRequests requests;
  requests.defaults = &defaults;
  requests.requests = items;
  requests.cookie_jar = jar.ok() ? *std::move(jar) : nullptr;
  requests.allow_stream_body = false;
  SubmitRequests(validator_, env_, *caller, call, requests, started);
  return call.get();
}

}  // namespace fetchd::api
