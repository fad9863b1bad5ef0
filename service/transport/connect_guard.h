// ConnectGuard: the destination policy at connect time. libcurl asks it
// before it opens a socket (CURLOPT_OPENSOCKETFUNCTION: every address of
// every connection, including each Happy Eyeballs candidate and the proxy's)
// and before it sends a request (CURLOPT_PREREQFUNCTION: the address of the
// connection used, which may be a reused one opened for another transfer).
// A refused address makes curl fail the attempt; the guard keeps the first
// refusal of the attempt so that the result can say which address and
// rule.
//
// Thread-safety: none; used by one transfer on its worker thread, inside
// curl's callbacks.
#ifndef FETCHD_SERVICE_TRANSPORT_CONNECT_GUARD_H_
#define FETCHD_SERVICE_TRANSPORT_CONNECT_GUARD_H_

#include <curl/curl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "service/policy/destination_gate.h"

namespace fetchd::transport {

class ConnectGuard {
 public:
  // `gate` may be null (no destination checks: engine tests only); it
  // must outlive the guard.
  explicit ConnectGuard(const policy::DestinationGate* gate) : gate_(gate) {}

  // Forgets the refusal of the previous attempt.
  void Reset();

  // For CURLOPT_OPENSOCKETFUNCTION: a new socket for `address`, or
  // CURL_SOCKET_BAD when the policy refuses it (or it is not IPv4/IPv6).
  curl_socket_t OpenSocket(const curl_sockaddr& address);
  // For CURLOPT_PREREQFUNCTION: whether a request may go out on a
  // connection to `ip` (text form) and `port`.
  [[nodiscard]] bool PermitRequest(const char* ip, int port);

  // The first refusal of this attempt (its message names the address and
  // the rule), if any.
  const std::optional<policy::Denial>& denial() const { return denial_; }

 private:
  // Checks the address about to be used; records a refusal.
  bool Permit(const policy::IpAddress& addr, uint16_t port);

  const policy::DestinationGate* const gate_;  // may be null
  std::optional<policy::Denial> denial_;
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CONNECT_GUARD_H_
