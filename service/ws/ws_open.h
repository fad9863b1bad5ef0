// Checking a WsOpen (proto/fetch/v1/websocket.proto) against the server's
// bounds and destination policy, and turning it into WsOpenParams.
//
// Pure; thread-safe.
#ifndef FETCHD_SERVICE_WS_WS_OPEN_H_
#define FETCHD_SERVICE_WS_WS_OPEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/websocket.pb.h"
#include "service/policy/destination_gate.h"
#include "service/ws/ws_transport.h"

namespace fetchd::ws {

// Errors:
//   InvalidArgument   a malformed field, named with its rule ("open.url:
//                     ...", "open.headers[2]: ...", "open.idle_timeout:
//                     ...");
//   PermissionDenied  a scheme other than ws and wss, or a destination the
//                     gate refuses before resolution (the policy's rules,
//                     the `caller`'s allowed hosts if not null); the
//                     message names the rule, and *denied_category (if not
//                     null) gets its category ("scheme", "loopback",
//                     "host", "caller", ...).
absl::StatusOr<WsOpenParams> CheckOpen(const fetch::v1::WsOpen& open,
                                       const fetch::v1::WebSocketLimits& limits,
                                       const policy::DestinationGate& gate,
                                       const policy::HostRule* caller = nullptr,
                                       std::string* denied_category = nullptr);

}  // namespace fetchd::ws

#endif  // FETCHD_SERVICE_WS_WS_OPEN_H_
