#include "service/api/call_gate.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_context.h"

namespace fetchd::api {
namespace {

// What each kind's own limit is called in the config, for messages.
constexpr std::array<absl::string_view, kCallKinds> kActiveLimitNames = {
    "limits.max_active_calls", "limits.max_active_calls", "websocket.max_open",
    "limits.max_active_calls"};

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

CallGate::Options CallGate::OptionsFromConfig(
    const fetch::v1::ServerConfig& config, const auth::CallerAuth* auth) {
  Options options;
  options.max_pending = static_cast<int64_t>(config.limits().max_pending());
  const auto active = static_cast<int64_t>(config.limits().max_active_calls());
  options.max_active = {active, active,
                        static_cast<int64_t>(config.websocket().max_open()),
                        active};
  options.auth = auth;
  return options;
}

CallGate::CallGate(const Options& options) : options_(options) {}

CallGate::Ticket::~Ticket() { gate_->Release(*this); }

void CallGate::Ticket::RequestsDone(int64_t n) {
  requests_.fetch_sub(n, std::memory_order_relaxed);
  gate_->pending_.fetch_sub(n, std::memory_order_relaxed);
  lease_->RequestsDone(n);
}

absl::Status CallGate::Ticket::TryAddRequests(int64_t n) {
  if (absl::Status busy = gate_->AddPending(n); !busy.ok()) return busy;
  if (absl::Status s = lease_->TryAddRequests(n); !s.ok()) {
    gate_->pending_.fetch_sub(n, std::memory_order_relaxed);
    return s;
  }
  requests_.fetch_add(n, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status CallGate::AddPending(int64_t n) {
  int64_t pending = pending_.load(std::memory_order_relaxed);
  do {
    if (pending + n > options_.max_pending) {
      return absl::ResourceExhaustedError(
          absl::StrCat("server busy: ", pending, " requests pending, limit ",
                       options_.max_pending, " (limits.max_pending)"));
    }
  } while (!pending_.compare_exchange_weak(pending, pending + n,
                                           std::memory_order_relaxed));
  return absl::OkStatus();
}

void CallGate::Ticket::Register(std::weak_ptr<CancellableCall> call) {
  absl::MutexLock lock(&gate_->mu_);
  gate_->registered_[this] = std::move(call);
}

absl::StatusOr<auth::Caller> CallGate::Identify(
    const grpc::CallbackServerContext& context) const {
  std::vector<std::string> identities;
  const std::shared_ptr<const grpc::AuthContext> auth_context =
      context.auth_context();
  // Authenticated only when the peer sent a certificate that TLS verified.
  if (auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    for (const grpc::string_ref& identity : auth_context->GetPeerIdentity()) {
      identities.emplace_back(identity.data(), identity.size());
    }
  }
  std::optional<absl::string_view> authorization;
  const auto& metadata = context.client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  return options_.auth->Identify(identities, authorization);
}

absl::StatusOr<std::unique_ptr<CallGate::Ticket>> CallGate::Admit(
    grpc::CallbackServerContext& context, CallKind kind, int64_t requests,
    const auth::Caller& caller) {
  if (draining()) {
    return absl::UnavailableError(
        "fetchd is shutting down; retry on another replica");
  }
  const int64_t retry_ms = absl::ToInt64Milliseconds(options_.retry_after);
  const auto refuse = [&](absl::string_view why) {
    // Our own hint, and gRPC's standard pushback for clients with a retry
    // policy.
    context.AddTrailingMetadata("retry-after-ms", std::to_string(retry_ms));
    context.AddTrailingMetadata("grpc-retry-pushback-ms",
                                std::to_string(retry_ms));
    return absl::ResourceExhaustedError(
        absl::StrCat(why, "; retry after ", retry_ms, " ms"));
  };
  const int k = static_cast<int>(kind);
  if (active_[k].fetch_add(1, std::memory_order_relaxed) >=
      options_.max_active[k]) {
    active_[k].fetch_sub(1, std::memory_order_relaxed);
    return refuse(absl::StrCat("too many active calls (", kActiveLimitNames[k],
                               " ", options_.max_active[k], ")"));
  }
  if (absl::Status busy = AddPending(requests); !busy.ok()) {
    active_[k].fetch_sub(1, std::memory_order_relaxed);
    return refuse(busy.message());
  }
  absl::StatusOr<std::unique_ptr<auth::CallerQuotas::Lease>> lease =
      quotas_.Admit(caller, requests);
  if (!lease.ok()) {
    pending_.fetch_sub(requests, std::memory_order_relaxed);
    active_[k].fetch_sub(1, std::memory_order_relaxed);
    return refuse(lease.status().message());
  }
  {
    absl::MutexLock lock(&mu_);
    ++admitted_;
  }
  return std::unique_ptr<Ticket>(
      new Ticket(this, kind, requests, *std::move(lease)));
}

void CallGate::Release(const Ticket& ticket) {
  // Requests never reported done (a call that ended early) free their
  // share of max_pending now; the lease returns the caller's.
  const int64_t left = ticket.requests_.load(std::memory_order_relaxed);
  if (left != 0) pending_.fetch_sub(left, std::memory_order_relaxed);
  active_[static_cast<int>(ticket.kind_)].fetch_sub(1,
                                                    std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  registered_.erase(&ticket);
  --admitted_;
}

void CallGate::StartDraining() {
  draining_.store(true, std::memory_order_release);
  for (const std::shared_ptr<CancellableCall>& call : RegisteredCalls()) {
    call->StopReading();
  }
}

std::vector<std::shared_ptr<CancellableCall>> CallGate::RegisteredCalls() {
  // Copied out: a call may end (and release its ticket) once called.
  std::vector<std::shared_ptr<CancellableCall>> calls;
  absl::MutexLock lock(&mu_);
  for (const auto& [ticket, weak] : registered_) {
    if (std::shared_ptr<CancellableCall> call = weak.lock()) {
      calls.push_back(std::move(call));
    }
  }
  return calls;
}

void CallGate::CancelAll() {
  // Outside the lock: a cancelled call may end (and release) at once.
  for (const std::shared_ptr<CancellableCall>& call : RegisteredCalls()) {
    call->CancelForShutdown();
  }
}

bool CallGate::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](int64_t* admitted) { return *admitted == 0; }, &admitted_),
      deadline);
}

int64_t CallGate::active_calls() const {
  int64_t sum = 0;
  for (const auto& a : active_) sum += a.load(std::memory_order_relaxed);
  return sum;
}

}  // namespace fetchd::api
