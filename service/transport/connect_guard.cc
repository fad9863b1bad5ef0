#include "service/transport/connect_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::transport {

void ConnectGuard::Reset() { denial_.reset(); }

bool ConnectGuard::Permit(const policy::IpAddress& addr, uint16_t port) {
  if (gate_ == nullptr) return true;
  std::optional<policy::Denial> denial = gate_->CheckAddress(addr, port);
  if (!denial.has_value()) return true;
  if (!denial_.has_value()) denial_ = std::move(denial);
  return false;
}

curl_socket_t ConnectGuard::OpenSocket(const curl_sockaddr& address) {
  policy::IpAddress addr;
  uint16_t port = 0;
  if (address.family == AF_INET && address.addrlen >= sizeof(sockaddr_in)) {
    sockaddr_in sin;
    std::memcpy(&sin, &address.addr, sizeof(sin));
    addr.family = policy::IpAddress::Family::kV4;
    std::memcpy(addr.bytes.data(), &sin.sin_addr, 4);
    port = ntohs(sin.sin_port);
  } else if (address.family == AF_INET6 &&
             address.addrlen >= sizeof(sockaddr_in6)) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &address.addr, sizeof(sin6));
    addr.family = policy::IpAddress::Family::kV6;
    std::memcpy(addr.bytes.data(), &sin6.sin6_addr, 16);
    port = ntohs(sin6.sin6_port);
  } else {
    // Unix sockets and anything else are never a fetch destination.
    return CURL_SOCKET_BAD;
  }
  if (!Permit(addr, port)) return CURL_SOCKET_BAD;
  return socket(address.family, address.socktype | SOCK_CLOEXEC,
                address.protocol);
}

bool ConnectGuard::PermitRequest(const char* ip, int port) {
  // A reused connection was opened for an earlier transfer: its address is
  // checked again for this one (the policy checks every request).
  if (gate_ == nullptr) return true;
  std::optional<policy::IpAddress> addr = policy::IpAddress::Parse(ip);
  return addr.has_value() && port > 0 && port <= 65535 &&
         Permit(*addr, static_cast<uint16_t>(port));
}

}  // namespace fetchd::transport
