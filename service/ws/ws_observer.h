// WsObserver: what the WebSocket bridge reports, for metrics
// (service/metrics/fetch_metrics.h implements it). Same rules as
// core::FetchObserver: any thread, cheap, non-blocking, no calls back.
#ifndef FETCHD_SERVICE_WS_WS_OBSERVER_H_
#define FETCHD_SERVICE_WS_WS_OBSERVER_H_

#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"
#include "service/ws/ws_transport.h"

namespace fetchd::ws {

class WsObserver : public WsTrafficObserver {
 public:
  // A WebSocket's handshake succeeded: it is open.
  virtual void OnWsOpened() = 0;
  // An open WebSocket ended; `code` as in WsClose (1006: no close frame).
  virtual void OnWsClosed(int code) = 0;
  // An opening failed before or during the handshake (the policy's
  // refusals included, after OnWsDenied).
  virtual void OnWsHandshakeFailed(fetch::v1::ErrorKind kind) = 0;
  // The destination policy (or the caller's allowed hosts: "caller")
  // refused a WebSocket, by a rule of `category`.
  virtual void OnWsDenied(absl::string_view category) = 0;
};

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_WS_OBSERVER_H_
