#include "service/api/fetch_service.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/security/auth_context.h"
#include "service/core/batch.h"
#include "service/transport/cookie_jar.h"

namespace fetchd::api {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;

// Hint sent with RESOURCE_EXHAUSTED.
constexpr int kRetryAfterMs = 1000;
// Results that finished during the previous write go out in one message, up
// to this many bytes (a larger single result goes alone). Well below gRPC's
// 4 MiB default receive limit.
constexpr size_t kMaxEventBytes = 1 << 20;

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// The result of a request that never reached a worker.
FetchResult RefusedResult(const FetchRequest& request, uint32_t index,
                          fetch::v1::ErrorKind error,
                          absl::string_view message) {
  FetchResult result;
  result.set_id(request.id());
  result.set_index(index);
  result.set_final_url(request.url());
  result.set_error(error);
  result.set_error_message(std::string(message));
  return result;
}

FetchResult InvalidResult(const FetchRequest& request, uint32_t index,
                          const absl::Status& why) {
  return RefusedResult(request, index,
                       why.code() == absl::StatusCode::kPermissionDenied
                           ? fetch::v1::ERROR_KIND_DENIED
                           : fetch::v1::ERROR_KIND_INVALID_REQUEST,
                       why.message());
}

using Lease = auth::CallerQuotas::Lease;

// The streaming side of one FetchBatch call: receives results (and the
// heads and chunks of streamed bodies) from the workers, orders results if
// asked, and feeds them to the reactor one write at a time. Outlives the
// reactor when workers still hold jobs of the batch.
class BatchCall final : public core::Batch,
                        public std::enable_shared_from_this<BatchCall> {
 public:
  BatchCall(const Options& options, FetchServiceImpl* service,
            core::Fetcher* fetcher, bool fail_fast, int64_t total,
            absl::Time started, std::unique_ptr<Lease> lease)
      : core::Batch(options, fetcher),
        service_(service),
        fetcher_(fetcher),
        fail_fast_(fail_fast),
        started_(started),
        lease_(std::move(lease)),
        unwritten_(total) {}

  ~BatchCall() override {
    service_->OnCallDone(this, core::CallMethod::kFetchBatch,
                         window_high_water());
  }

  void Attach(grpc::ServerWriteReactor<FetchEvent>* reactor) {
    absl::MutexLock lock(&mu_);
    reactor_ = reactor;
  }

  void Deliver(FetchResult result, bool holds_window) override {
    service_->OnRequestsDone(1);
    lease_->RequestsDone(1);
    const bool failed = result.error() != fetch::v1::ERROR_KIND_NONE &&
                        result.error() != fetch::v1::ERROR_KIND_CANCELLED;
    if (fail_fast_ && failed && Cancel(fetch::v1::ERROR_KIND_CANCELLED)) {
      fetcher_->CancelBatch(shared_from_this());
    }
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) {
      OnResultWritten(holds_window);
      return;
    }
    if (ordered()) {
      const uint32_t index = result.index();
      out_of_order_.emplace(index, Pending{std::move(result), holds_window});
      while (!out_of_order_.empty() &&
             out_of_order_.begin()->first == next_index_) {
        ready_.push_back(std::move(out_of_order_.begin()->second));
        out_of_order_.erase(out_of_order_.begin());
        ++next_index_;
      }
    } else {
      ready_.push_back(Pending{std::move(result), holds_window});
    }
  }

  // Heads and chunks are never held for order or for Flush(): they go to
  // the stream as they come (each transfer sends its own in order), so
  // that the bytes they hold drain whatever the other requests do.
  void DeliverHead(fetch::v1::BodyHead head, int64_t bytes) override {
    Stream(Pending{std::move(head), false, bytes});
  }
  void DeliverChunk(fetch::v1::BodyChunk chunk, int64_t bytes) override {
    Stream(Pending{std::move(chunk), false, bytes});
  }

  void Flush() override {
    absl::MutexLock lock(&mu_);
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    for (int i = 0; i < writing_window_slots_; ++i) OnResultWritten(true);
    writing_window_slots_ = 0;
    if (writing_stream_bytes_ > 0) OnStreamWritten(writing_stream_bytes_);
    writing_stream_bytes_ = 0;
    if (!ok) {
      // The stream is broken (client gone); OnCancel follows.
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    if (ordered() && wrote_result_) set_next_to_write(written_index_ + 1);
    MaybeWriteLocked();
  }

  // Client cancel, deadline, or broken connection.
  void OnCancel(bool deadline_passed) {
    const auto why = deadline_passed ? fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED
                                     : fetch::v1::ERROR_KIND_CANCELLED;
    if (Cancel(why)) fetcher_->CancelBatch(shared_from_this());
    absl::MutexLock lock(&mu_);
    FinishLocked(deadline_passed
                     ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                    "deadline exceeded")
                     : grpc::Status::CANCELLED);
  }

  void OnDone() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    // Results that were never written give their window slots back, and
    // streamed bytes their room.
    for (Pending& p : ready_) Drop(p);
    for (auto& [index, p] : out_of_order_) Drop(p);
    ready_.clear();
    out_of_order_.clear();
  }

 private:
  struct Pending {
    std::variant<FetchResult, fetch::v1::BodyHead, fetch::v1::BodyChunk> item;
    bool holds_window = false;
    // Counted by the batch's stream buffer (heads and chunks).
    int64_t stream_bytes = 0;
  };

  // Gives back what `p` holds, when it will never be written.
  void Drop(const Pending& p) {
    OnResultWritten(p.holds_window);
    if (p.stream_bytes > 0) OnStreamWritten(p.stream_bytes);
  }

  void Stream(Pending p) {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) {
      Drop(p);
      return;
    }
    ready_.push_back(std::move(p));
    MaybeWriteLocked();
  }

  static size_t SizeOf(const Pending& p) {
    return std::visit([](const auto& m) { return m.ByteSizeLong(); }, p.item);
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (write_in_flight_ || finished_ || reactor_ == nullptr) return;
    if (ready_.empty()) {
      if (unwritten_ == 0) FinishLocked(grpc::Status::OK);
      return;
    }
    event_.Clear();
    size_t bytes = 0;
    wrote_result_ = false;
    while (!ready_.empty()) {
      Pending& next = ready_.front();
      const size_t size = SizeOf(next);
      if (bytes > 0 && bytes + size > kMaxEventBytes) break;
      bytes += size;
      writing_stream_bytes_ += next.stream_bytes;
      if (auto* result = std::get_if<FetchResult>(&next.item)) {
        if (next.holds_window) ++writing_window_slots_;
        written_index_ = result->index();
        wrote_result_ = true;
        event_.add_results()->Swap(result);
        --unwritten_;
      } else if (auto* head = std::get_if<fetch::v1::BodyHead>(&next.item)) {
        event_.add_heads()->Swap(head);
      } else {
        event_.add_chunks()->Swap(&std::get<fetch::v1::BodyChunk>(next.item));
      }
      ready_.pop_front();
    }
    write_in_flight_ = true;
    // OnWriteDone is never run inline from StartWrite (gRPC 1.51), so
    // holding mu_ here can't deadlock. (No buffer_hint: a hinted write may
    // not complete until a later write flushes it, and the next write only
    // starts from OnWriteDone.)
    reactor_->StartWrite(&event_);
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || reactor_ == nullptr) return;
    finished_ = true;
    service_->ReportCall(core::CallMethod::kFetchBatch, status, started_,
                         /*rejected=*/false);
    reactor_->Finish(status);
  }

  FetchServiceImpl* const service_;
  core::Fetcher* const fetcher_;
  const bool fail_fast_;
  // When the handler started (service clock).
  const absl::Time started_;
  // The call's share of its caller's quota; released when the call ends.
  const std::unique_ptr<Lease> lease_;

  absl::Mutex mu_;
  grpc::ServerWriteReactor<FetchEvent>* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Results ready to write, in write order.
  std::deque<Pending> ready_ ABSL_GUARDED_BY(mu_);
  // Ordered mode: results that wait for an earlier index.
  std::map<uint32_t, Pending> out_of_order_ ABSL_GUARDED_BY(mu_);
  uint32_t next_index_ ABSL_GUARDED_BY(mu_) = 0;
  // Results not yet handed to StartWrite.
  int64_t unwritten_ ABSL_GUARDED_BY(mu_);
  FetchEvent event_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // Window slots held by the results of the message being written.
  int writing_window_slots_ ABSL_GUARDED_BY(mu_) = 0;
  // Streamed bytes (heads, chunks) in the message being written.
  int64_t writing_stream_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The message being written has results; written_index_ is its last.
  bool wrote_result_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t written_index_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// A call refused before it started.
template <typename Reactor>
class RejectedCall final : public Reactor {
 public:
  explicit RejectedCall(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

class BatchReactor final : public grpc::ServerWriteReactor<FetchEvent> {
 public:
  BatchReactor(grpc::CallbackServerContext* context,
               std::shared_ptr<BatchCall> call)
      : context_(context), call_(std::move(call)) {
    call_->Attach(this);
  }
  void OnWriteDone(bool ok) override { call_->OnWriteDone(ok); }
  void OnCancel() override {
    call_->OnCancel(context_->deadline() <= std::chrono::system_clock::now());
  }
  void OnDone() override {
    call_->OnDone();
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<BatchCall> call_;
};

// One unary Fetch: a batch of one whose result becomes the response.
class UnaryCall final : public core::Batch,
                        public grpc::ServerUnaryReactor,
                        public std::enable_shared_from_this<UnaryCall> {
 public:
  UnaryCall(const Options& options, FetchServiceImpl* service,
            core::Fetcher* fetcher, grpc::CallbackServerContext* context,
            FetchResult* response, absl::Time started,
            std::unique_ptr<Lease> lease)
      : core::Batch(options, fetcher),
        service_(service),
        fetcher_(fetcher),
        context_(context),
        response_(response),
        started_(started),
        lease_(std::move(lease)) {}

  ~UnaryCall() override {
    service_->OnCallDone(this, core::CallMethod::kFetch, window_high_water());
  }

  // Keeps the call alive until both gRPC (OnDone) and the worker (Deliver)
  // are done with it.
  void Start(std::shared_ptr<UnaryCall> self) {
    absl::MutexLock lock(&mu_);
    self_ = std::move(self);
  }

  void Deliver(FetchResult result, bool holds_window) override {
    service_->OnRequestsDone(1);
    lease_->RequestsDone(1);
    OnResultWritten(holds_window);
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    *response_ = std::move(result);
    FinishLocked(grpc::Status::OK);
  }

  void OnCancel() override {
    const bool deadline_passed =
        context_->deadline() <= std::chrono::system_clock::now();
    if (Cancel(deadline_passed ? fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED
                               : fetch::v1::ERROR_KIND_CANCELLED)) {
      fetcher_->CancelBatch(shared_from_this());
    }
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    FinishLocked(deadline_passed
                     ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                    "deadline exceeded")
                     : grpc::Status::CANCELLED);
  }

  void OnDone() override {
    std::shared_ptr<UnaryCall> self;
    {
      absl::MutexLock lock(&mu_);
      self = std::move(self_);
    }
    // `self` may be the last reference: released here, after the lock.
  }

 private:
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    service_->ReportCall(core::CallMethod::kFetch, status, started_,
                         /*rejected=*/false);
    Finish(status);
  }

  FetchServiceImpl* const service_;
  core::Fetcher* const fetcher_;
  grpc::CallbackServerContext* const context_;
  FetchResult* const response_;
  // When the handler started (service clock).
  const absl::Time started_;
  // The call's share of its caller's quota; released when the call ends.
  const std::unique_ptr<Lease> lease_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<UnaryCall> self_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<FetchServiceImpl>> FetchServiceImpl::Create(
    const fetch::v1::ServerConfig& config, core::Fetcher* fetcher,
    const Clock* clock, core::FetchObserver* observer) {
  RequestValidator validator(config);
  if (absl::Status s = validator.CheckServerDefaults(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<auth::CallerAuth>> auth =
      auth::CallerAuth::Load(config.auth());
  if (!auth.ok()) return auth.status();
  return std::unique_ptr<FetchServiceImpl>(
      new FetchServiceImpl(config, std::move(validator), *std::move(auth),
                           fetcher, clock, observer));
}

FetchServiceImpl::FetchServiceImpl(const fetch::v1::ServerConfig& config,
                                   RequestValidator validator,
                                   std::unique_ptr<auth::CallerAuth> auth,
                                   core::Fetcher* fetcher, const Clock* clock,
                                   core::FetchObserver* observer)
    : limits_(config.limits()),
      validator_(std::move(validator)),
      auth_(std::move(auth)),
      fetcher_(fetcher),
      clock_(clock),
      observer_(observer) {}

void FetchServiceImpl::ReportDenied(const absl::Status& why) const {
  if (observer_ == nullptr) return;
  if (const std::string category = PolicyCategory(why); !category.empty()) {
    observer_->OnPolicyDenied(category);
  }
}

void FetchServiceImpl::OnRequestsDone(int64_t n) {
  pending_.fetch_sub(n, std::memory_order_relaxed);
}

void FetchServiceImpl::Register(const std::shared_ptr<core::Batch>& call) {
  absl::MutexLock lock(&calls_mu_);
  calls_.emplace(call.get(), call);
}

void FetchServiceImpl::CancelAllCalls() {
  std::vector<std::shared_ptr<core::Batch>> calls;
  {
    absl::MutexLock lock(&calls_mu_);
    for (const auto& [key, weak] : calls_) {
      if (auto call = weak.lock()) calls.push_back(std::move(call));
    }
  }
  for (const auto& call : calls) {
    if (call->Cancel(fetch::v1::ERROR_KIND_CANCELLED)) {
      fetcher_->CancelBatch(call);
    }
  }
}

void FetchServiceImpl::OnCallDone(const core::Batch* call,
                                  core::CallMethod method,
                                  int64_t window_high_water) {
  {
    absl::MutexLock lock(&calls_mu_);
    calls_.erase(call);
  }
  active_calls_.fetch_sub(1, std::memory_order_relaxed);
  active_by_method_[static_cast<int>(method)].fetch_sub(
      1, std::memory_order_relaxed);
  int64_t high = window_high_water_.load(std::memory_order_relaxed);
  while (window_high_water > high &&
         !window_high_water_.compare_exchange_weak(high, window_high_water)) {
  }
  const int64_t streamed = call->stream_buffered_high_water();
  high = stream_high_water_.load(std::memory_order_relaxed);
  while (streamed > high &&
         !stream_high_water_.compare_exchange_weak(high, streamed)) {
  }
}

void FetchServiceImpl::ReportCall(core::CallMethod method,
                                  const grpc::Status& status,
                                  absl::Time started, bool rejected) const {
  if (observer_ == nullptr) return;
  observer_->OnCallFinished(method,
                            static_cast<absl::StatusCode>(status.error_code()),
                            clock_->Now() - started, rejected);
}

void FetchServiceImpl::ReportInvalid(const FetchRequest& request,
                                     const FetchRequest& defaults,
                                     const FetchResult& result,
                                     absl::Time admitted) const {
  if (observer_ == nullptr) return;
  // Sampling only (the access log): a thread's own generator, no lock.
  thread_local absl::InsecureBitGen rng;
  const std::string& method =
      request.method().empty() ? defaults.method() : request.method();
  observer_->OnResult(
      core::FinishedRequest{method, request.url(),
                            /*host_key=*/{}, clock_->Now() - admitted},
      result, rng);
}

absl::StatusOr<auth::Caller> FetchServiceImpl::Identify(
    const grpc::CallbackServerContext* context) const {
  std::vector<std::string> identities;
  const std::shared_ptr<const grpc::AuthContext> auth_context =
      context->auth_context();
  // Authenticated only when the peer sent a certificate that TLS verified.
  if (auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    for (const grpc::string_ref& identity : auth_context->GetPeerIdentity()) {
      identities.emplace_back(identity.data(), identity.size());
    }
  }
  std::optional<absl::string_view> authorization;
  const auto& metadata = context->client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  return auth_->Identify(identities, authorization);
}

std::shared_ptr<const core::HostCheck> FetchServiceImpl::HopCheck(
    const auth::Caller& caller) {
  const auth::CallerRules& rules = *caller.rules;
  if (rules.allowed_hosts.allows_all()) return nullptr;
  return std::make_shared<const core::HostCheck>(
      [allowed = rules.allowed_hosts, name = caller.DisplayName(),
       field = std::string(rules.field)](
          std::string_view hop_host) -> std::optional<std::string> {
        const absl::string_view host(hop_host.data(), hop_host.size());
        if (allowed.Allows(host)) return std::nullopt;
        return absl::StrCat("caller \"", name, "\" may not fetch host \"", host,
                            "\": not in ", field, ".allowed_hosts");
      });
}

std::optional<std::string> FetchServiceImpl::DeniedBy(
    const core::HostCheck* check, const core::FetchJob& job) {
  if (check == nullptr) return std::nullopt;
  const absl::string_view host = auth::HostOfKey(job.host_key);
  return (*check)(std::string_view(host.data(), host.size()));
}

grpc::Status FetchServiceImpl::Admit(grpc::CallbackServerContext* context,
                                     core::CallMethod method, int64_t n,
                                     const auth::Caller& caller,
                                     std::unique_ptr<Lease>* lease) {
  if (draining_.load(std::memory_order_acquire)) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "fetchd is shutting down; retry on another replica");
  }
  const auto refuse = [&](std::string message) {
    // Our own hint, and gRPC's standard pushback for clients with a retry
    // policy.
    context->AddTrailingMetadata("retry-after-ms",
                                 std::to_string(kRetryAfterMs));
    context->AddTrailingMetadata("grpc-retry-pushback-ms",
                                 std::to_string(kRetryAfterMs));
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::move(message));
  };
  if (active_calls_.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(limits_.max_active_calls())) {
    active_calls_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(absl::StrCat("too many active calls (limit ",
                               limits_.max_active_calls(), ")"));
  }
  int64_t pending = pending_.load(std::memory_order_relaxed);
  do {
    if (pending + n > static_cast<int64_t>(limits_.max_pending())) {
      active_calls_.fetch_sub(1, std::memory_order_relaxed);
      return refuse(absl::StrCat(
          "server busy: ", pending, " requests pending, limit ",
          limits_.max_pending(), "; retry after ", kRetryAfterMs, " ms"));
    }
  } while (!pending_.compare_exchange_weak(pending, pending + n,
                                           std::memory_order_relaxed));
  absl::StatusOr<std::unique_ptr<Lease>> admitted = quotas_.Admit(caller, n);
  if (!admitted.ok()) {
    pending_.fetch_sub(n, std::memory_order_relaxed);
    active_calls_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(absl::StrCat(admitted.status().message(), "; retry after ",
                               kRetryAfterMs, " ms"));
  }
  *lease = *std::move(admitted);
  active_by_method_[static_cast<int>(method)].fetch_add(
      1, std::memory_order_relaxed);
  return grpc::Status::OK;
}

absl::Time FetchServiceImpl::DeadlineOf(
    const grpc::CallbackServerContext* context) const {
  const auto deadline = context->deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() -
                      std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return clock_->Now() +
         absl::FromChrono(deadline - std::chrono::system_clock::now());
}

grpc::ServerWriteReactor<FetchEvent>* FetchServiceImpl::FetchBatch(
    grpc::CallbackServerContext* context, const BatchRequest* request) {
  using Rejected = RejectedCall<grpc::ServerWriteReactor<FetchEvent>>;
  constexpr auto kMethod = core::CallMethod::kFetchBatch;
  const absl::Time started = clock_->Now();
  const auto reject = [&](const grpc::Status& status) {
    ReportCall(kMethod, status, started, /*rejected=*/true);
    return new Rejected(status);
  };
  const absl::StatusOr<auth::Caller> caller = Identify(context);
  if (!caller.ok()) return reject(ToGrpc(caller.status()));
  if (absl::Status s = validator_.ValidateBatch(*request); !s.ok()) {
    return reject(ToGrpc(s));
  }
  // One cookie jar per batch, unless turned off.
  std::shared_ptr<transport::CookieJar> jar;
  if (!request->has_cookie_jar() || request->cookie_jar()) {
    absl::StatusOr<std::shared_ptr<transport::CookieJar>> created =
        transport::CookieJar::Create(request->cookies(), "cookies");
    if (!created.ok()) return reject(ToGrpc(created.status()));
    jar = *std::move(created);
  } else if (request->cookies_size() > 0) {
    return reject(ToGrpc(absl::InvalidArgumentError(
        "cookies: given while cookie_jar is false")));
  }
  const int64_t n = request->requests_size();
  std::unique_ptr<Lease> lease;
  if (grpc::Status s = Admit(context, kMethod, n, *caller, &lease); !s.ok()) {
    return reject(s);
  }

  core::Batch::Options options;
  options.max_concurrency = static_cast<int>(
      request->max_concurrency() == 0
          ? limits_.max_in_flight()
          : std::min(request->max_concurrency(), limits_.max_in_flight()));
  options.window = static_cast<int>(limits_.stream_window());
  options.max_stream_buffer_bytes =
      static_cast<int64_t>(limits_.max_stream_buffer_bytes());
  options.ordered = request->ordered();
  options.deadline = DeadlineOf(context);
  options.caller = caller->name;
  auto call =
      std::make_shared<BatchCall>(options, this, fetcher_, request->fail_fast(),
                                  n, started, std::move(lease));
  Register(call);
  auto* reactor = new BatchReactor(context, call);

  const FetchRequest base = validator_.EffectiveDefaults(request->defaults());
  const std::shared_ptr<const core::HostCheck> hop_check = HopCheck(*caller);
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  jobs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const FetchRequest& item = request->requests(i);
    const auto index = static_cast<uint32_t>(i);
    absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
        validator_.Build(base, item, index);
    if (!job.ok()) {
      FetchResult result = InvalidResult(item, index, job.status());
      ReportDenied(job.status());
      ReportInvalid(item, base, result, started);
      call->Deliver(std::move(result), /*holds_window=*/false);
      continue;
    }
    if (std::optional<std::string> why = DeniedBy(hop_check.get(), **job)) {
      FetchResult result =
          RefusedResult(item, index, fetch::v1::ERROR_KIND_DENIED, *why);
      if (observer_ != nullptr) observer_->OnPolicyDenied("caller");
      ReportInvalid(item, base, result, started);
      call->Deliver(std::move(result), /*holds_window=*/false);
      continue;
    }
    (*job)->batch = call;
    (*job)->admitted_at = started;
    (*job)->caller_host_check = hop_check;
    (*job)->cookie_jar = jar;
    jobs.push_back(*std::move(job));
  }
  call->Flush();  // the invalid items' results
  if (!jobs.empty()) fetcher_->Submit(std::move(jobs));
  return reactor;
}

grpc::ServerUnaryReactor* FetchServiceImpl::Fetch(
    grpc::CallbackServerContext* context, const FetchRequest* request,
    FetchResult* response) {
  constexpr auto kMethod = core::CallMethod::kFetch;
  const absl::Time started = clock_->Now();
  const absl::StatusOr<auth::Caller> caller = Identify(context);
  std::unique_ptr<Lease> lease;
  if (grpc::Status s = caller.ok() ? Admit(context, kMethod, 1, *caller, &lease)
                                   : ToGrpc(caller.status());
      !s.ok()) {
    ReportCall(kMethod, s, started, /*rejected=*/true);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  }
  core::Batch::Options options;
  options.window = 1;
  options.max_concurrency = 1;
  options.deadline = DeadlineOf(context);
  options.caller = caller->name;
  auto call = std::make_shared<UnaryCall>(options, this, fetcher_, context,
                                          response, started, std::move(lease));
  call->Start(call);
  Register(call);
  const FetchRequest base = validator_.EffectiveDefaults(FetchRequest());
  absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
      validator_.Build(base, *request, 0);
  if (job.ok() && (*job)->stream_body) {
    job = absl::InvalidArgumentError(
        "stream_body: Fetch returns the body in its result; use FetchBatch "
        "to stream it");
  }
  const std::shared_ptr<const core::HostCheck> hop_check = HopCheck(*caller);
  std::optional<std::string> denied;
  if (!job.ok()) {
    FetchResult result = InvalidResult(*request, 0, job.status());
    ReportDenied(job.status());
    ReportInvalid(*request, base, result, started);
    call->Deliver(std::move(result), /*holds_window=*/false);
  } else if ((denied = DeniedBy(hop_check.get(), **job)).has_value()) {
    FetchResult result =
        RefusedResult(*request, 0, fetch::v1::ERROR_KIND_DENIED, *denied);
    if (observer_ != nullptr) observer_->OnPolicyDenied("caller");
    ReportInvalid(*request, base, result, started);
    call->Deliver(std::move(result), /*holds_window=*/false);
  } else {
    (*job)->batch = call;
    (*job)->admitted_at = started;
    (*job)->caller_host_check = hop_check;
    // A single request still keeps the cookies its redirect hops set.
    absl::StatusOr<std::shared_ptr<transport::CookieJar>> jar =
        transport::CookieJar::Create({}, "cookies");
    if (jar.ok()) (*job)->cookie_jar = *std::move(jar);
    std::vector<std::unique_ptr<core::FetchJob>> jobs;
    jobs.push_back(*std::move(job));
    fetcher_->Submit(std::move(jobs));
  }
  return call.get();
}

}  // namespace fetchd::api
