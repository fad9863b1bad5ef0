// WebSocketServiceImpl: the gRPC edge of the WebSocket bridge
// (fetch.v1.WebSocketService, proto/fetch/v1/websocket.proto), on the
// callback API: one ServerBidiReactor per WebSocket.
//
// A call is identified like a FetchService call (auth::CallerAuth:
// UNAUTHENTICATED), refused with UNAVAILABLE once StartDraining() was
// called, and admitted against websocket.max_open and its caller's own
// quota (auth::CallerQuotas, shared with FetchService: a WebSocket counts
// as one active call and one pending request of its caller), else
// RESOURCE_EXHAUSTED with "retry-after-ms". Its first message must be a
// valid `open` (else INVALID_ARGUMENT). A destination the policy refuses,
// or one off the caller's allowed_hosts, is a failed handshake result
// (DENIED), not an RPC error.
//
// Flow control: one gRPC write in flight; the transport reads the
// target's next message only once the previous one is written to the
// caller, and the caller's next message is read only once the previous
// one is written to the target.
//
// Cancellation (the caller goes away, or the RPC deadline passes) closes
// the WebSocket with 1001; CloseAll() (the end of a drain) does the same
// for every open WebSocket, whose calls then get their close and end OK.
//
// Thread-safety: gRPC calls the handlers from its threads, the transport
// calls the sinks from its own; the per-call state is under a mutex.
#ifndef FETCHD_SERVICE_WS_WS_SERVICE_H_
#define FETCHD_SERVICE_WS_WS_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/websocket.grpc.pb.h"
#include "service/auth/caller_auth.h"
#include "service/auth/caller_quota.h"
#include "service/policy/address_policy.h"
#include "service/ws/ws_observer.h"
#include "service/ws/ws_transport.h"

namespace fetchd::ws {

class WsCall;

class WebSocketServiceImpl final
    : public fetch::v1::WebSocketService::CallbackService {
 public:
  struct Deps {
    // All must outlive the service; observer may be null.
    const auth::CallerAuth* auth = nullptr;
    auth::CallerQuotas* quotas = nullptr;
    WsTransport* transport = nullptr;
    WsObserver* observer = nullptr;
  };

  // Reads config.websocket and config.policy (validated config).
  // Errors: InvalidArgument if a dependency is missing or the policy is
  // invalid.
  static absl::StatusOr<std::unique_ptr<WebSocketServiceImpl>> Create(
      const fetch::v1::ServerConfig& config, const Deps& deps);

  grpc::ServerBidiReactor<fetch::v1::WsClientMessage,
                          fetch::v1::WsServerMessage>*
  WebSocket(grpc::CallbackServerContext* context) override;

  // New calls get UNAVAILABLE from now on; open WebSockets continue.
  void StartDraining() { draining_.store(true, std::memory_order_release); }
  // Closes every open WebSocket with 1001 "fetchd is shutting down".
  void CloseAll();

  // Calls admitted and not yet done (gRPC and transport both).
  int64_t active_calls() const {
    return active_calls_.load(std::memory_order_relaxed);
  }
  // WebSockets whose handshake succeeded and that are not closed yet.
  int64_t open_websockets() const {
    return open_.load(std::memory_order_relaxed);
  }

  // For the calls (ws_service.cc).
  void OnOpened() { open_.fetch_add(1, std::memory_order_relaxed); }
  void OnClosed() { open_.fetch_sub(1, std::memory_order_relaxed); }
  void OnCallDone(const WsCall* call);

 private:
  WebSocketServiceImpl(const fetch::v1::ServerConfig& config, const Deps& deps,
                       policy::AddressPolicy policy);

  const fetch::v1::WebSocketLimits limits_;
  const Deps deps_;
  const policy::AddressPolicy policy_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> active_calls_{0};
  std::atomic<int64_t> open_{0};
  absl::Mutex calls_mu_;
  std::map<const WsCall*, std::weak_ptr<WsCall>> calls_
      ABSL_GUARDED_BY(calls_mu_);
};

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_WS_SERVICE_H_
