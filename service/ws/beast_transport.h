// The WsTransport of fetchd, on Boost.Beast (Debian's libboost-dev 1.74,
// header-only; TLS through OpenSSL, which fetchd links already).
//
// Threads: one event-loop thread (a boost::asio::io_context) per transport
// runs every WebSocket: resolution (asio's resolver, getaddrinfo on asio's
// internal resolver thread), connect, TLS, handshake, reads, writes and
// timers. Other threads only post to it. A WebSocket's socket, buffers and
// timers are touched by that thread alone.
#ifndef FETCHD_SERVICE_WS_BEAST_TRANSPORT_H_
#define FETCHD_SERVICE_WS_BEAST_TRANSPORT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "service/ws/ws_transport.h"

namespace fetchd::ws {

// Starts the transport's thread. Errors: InvalidArgument without an
// address_check or with max_per_host < 1; Internal if the thread can't
// start.
absl::StatusOr<std::unique_ptr<WsTransport>> NewBeastTransport(
    WsTransport::Options options);

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_BEAST_TRANSPORT_H_
