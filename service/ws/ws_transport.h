// WsTransport: the WebSocket client engine behind fetch.v1.WebSocketService,
// as a small interface so that the library doing the work (today
// Boost.Beast, beast_transport.h) can change without touching the gRPC side.
//
// Open() starts one WebSocket: wait for a slot of its host (at most
// Options::max_per_host open per scheme+host+port, FIFO), resolve the host,
// check every resolved address with the AddressCheck and connect only to
// those allowed (so DNS rebinding can't reach a denied address), TLS for
// wss, then the HTTP upgrade. Ping/pong, fragmentation and the close
// handshake are handled inside; a message over max_message_bytes from the
// target closes the WebSocket with 1009; no message either way for
// idle_timeout closes it with 1001.
//
// Events go to the WsSink on the transport's own thread, in this order:
// OnHandshake once, then (only after a successful handshake) OnMessage for
// each message, then OnClosed once. After OnClosed nothing more is called.
// A failed handshake is followed by no OnClosed.
//
// Thread-safety: Open() and every WsHandle method may be called from any
// thread; the work is posted to the transport's thread.
#ifndef FETCHD_SERVICE_WS_WS_TRANSPORT_H_
#define FETCHD_SERVICE_WS_WS_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/policy/destination_gate.h"

namespace fetchd::ws {

// A validated WebSocket URL.
struct WsTarget {
  bool tls = false;  // wss
  // Host as in the URL, lower case; an IPv6 literal without brackets.
  std::string host;
  uint16_t port = 0;
  // Path and query, at least "/".
  std::string target;
  // "scheme://host:port", the per-host limit's key.
  std::string host_key;
};

struct WsOpenParams {
  WsTarget target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> subprotocols;
  // TLS: PEM CA (empty: the system's roots), client certificate and key.
  std::string ca_cert_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  bool insecure_skip_verify = false;
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Minutes(5);
  uint64_t max_message_bytes = 16 << 20;
};

struct WsMessage {
  bool binary = false;
  std::string data;
};

struct WsHandshakeResult {
  bool ok = false;
  // HTTP status of the response; 0 when there was none.
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string subprotocol;
  fetch::v1::ErrorKind error = fetch::v1::ERROR_KIND_NONE;
  std::string error_message;
  // The policy rule category when error is DENIED (for metrics).
  std::string denied_category;
  std::string remote_address;
};

struct WsCloseResult {
  // The close frame's code, or 1006 when there was none.
  int code = 1006;
  std::string reason;
  // "target", "client" or "fetchd" (see websocket.proto WsClose).
  std::string initiator;
  fetch::v1::ErrorKind error = fetch::v1::ERROR_KIND_NONE;
  std::string error_message;
};

// Receives one WebSocket's events, on the transport's thread. Must not
// block.
class WsSink {
 public:
  virtual ~WsSink() = default;
  virtual void OnHandshake(const WsHandshakeResult& result) = 0;
  // A whole message from the target. The transport reads the next one
  // only once the handle's ReadMore() is called (back-pressure).
  virtual void OnMessage(WsMessage message) = 0;
  virtual void OnClosed(const WsCloseResult& result) = 0;
};

// One WebSocket, as its owner sees it.
class WsHandle {
 public:
  virtual ~WsHandle() = default;
  // Sends a message; `sent` runs on the transport thread once it is written
  // (true) or can't be (false: closing or closed).
  virtual void Send(WsMessage message,
                    absl::AnyInvocable<void(bool ok)> sent) = 0;
  // Lets the transport deliver the next message.
  virtual void ReadMore() = 0;
  // Starts the closing handshake with `code` and `reason`, sent after the
  // messages already queued; `initiator` and `error` end up in the
  // WsCloseResult. Before the handshake is done: gives up the opening
  // (OnHandshake reports CANCELLED). Later calls do nothing.
  virtual void Close(int code, std::string reason, std::string initiator,
                     fetch::v1::ErrorKind error = fetch::v1::ERROR_KIND_NONE,
                     std::string error_message = "") = 0;
};

// Whether the transport may connect to an address: nullopt, or why not
// (policy::DestinationGate::CheckAddress).
using AddressCheck = std::function<std::optional<policy::Denial>(
    const policy::IpAddress&, uint16_t port)>;

// What the transport tells metrics about traffic (transport thread).
class WsTrafficObserver {
 public:
  virtual ~WsTrafficObserver() = default;
  // `sent`: to the target; else from it. `bytes`: the payload.
  virtual void OnWsMessage(bool sent, uint64_t bytes) = 0;
};

class WsTransport {
 public:
  struct Options {
    // Must be set: decides every address before connecting.
    AddressCheck address_check;
    // Open (or opening) WebSockets per scheme+host+port; more wait.
    int max_per_host = 16;
    // May be null. Must outlive the transport.
    WsTrafficObserver* observer = nullptr;
  };
  virtual ~WsTransport() = default;

  // Starts opening a WebSocket; `sink` is kept until OnClosed (or a failed
  // OnHandshake) has been delivered.
  virtual std::shared_ptr<WsHandle> Open(WsOpenParams params,
                                         std::shared_ptr<WsSink> sink) = 0;
  // Closes every WebSocket (abortively if a close handshake takes longer
  // than a second) and stops the thread. Later Open()s fail with INTERNAL.
  virtual void Stop() = 0;
};

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_WS_TRANSPORT_H_
