// WebSocketServiceImpl: the gRPC edge of the WebSocket bridge
// (fetch.v1.WebSocketService, proto/fetch/v1/websocket.proto), on the
// callback API: one ServerBidiReactor per WebSocket.
//
// A call passes the api::CallGate shared with FetchService: identified
// (UNAUTHENTICATED), refused with UNAVAILABLE while draining, admitted
// against websocket.max_open and its caller's own quota (a WebSocket counts
// as one active call and one pending request of its caller), else
// RESOURCE_EXHAUSTED with the retry trailers. Its first message must be a
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
// the WebSocket with 1001; the gate's CancelAll() (the end of a drain) does
// the same for every open WebSocket, whose calls then get their close and
// end OK.
//
// Thread-safety: gRPC calls the handlers from its threads, the transport
// calls the sinks from its own; the per-call state is under a mutex.
#ifndef FETCHD_SERVICE_WS_WS_SERVICE_H_
#define FETCHD_SERVICE_WS_WS_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/websocket.grpc.pb.h"
#include "service/api/call_gate.h"
#include "service/policy/destination_gate.h"
#include "service/ws/ws_observer.h"
#include "service/ws/ws_transport.h"

namespace fetchd::ws {

class WsCall;

class WebSocketServiceImpl final
    : public fetch::v1::WebSocketService::CallbackService {
 public:
  struct Deps {
    // All must outlive the service; observer may be null.
    api::CallGate* gate = nullptr;
    const policy::DestinationGate* destinations = nullptr;
    WsTransport* transport = nullptr;
    WsObserver* observer = nullptr;
  };

  // Reads config.websocket (validated config).
  // Errors: InvalidArgument if a dependency is missing.
  static absl::StatusOr<std::unique_ptr<WebSocketServiceImpl>> Create(
      const fetch::v1::ServerConfig& config, const Deps& deps);

  grpc::ServerBidiReactor<fetch::v1::WsClientMessage,
                          fetch::v1::WsServerMessage>*
  WebSocket(grpc::CallbackServerContext* context) override;

  // WebSockets whose handshake succeeded and that are not closed yet.
  int64_t open_websockets() const {
    return open_.load(std::memory_order_relaxed);
  }

  // For the calls (ws_service.cc).
  void OnOpened() { open_.fetch_add(1, std::memory_order_relaxed); }
  void OnClosed() { open_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  WebSocketServiceImpl(const fetch::v1::ServerConfig& config, const Deps& deps);

  const fetch::v1::WebSocketLimits limits_;
  const Deps deps_;
  const policy::DestinationGate& destinations_;
  std::atomic<int64_t> open_{0};
};

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_WS_SERVICE_H_
