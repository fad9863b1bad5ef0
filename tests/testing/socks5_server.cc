#include "tests/testing/socks5_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fetchd::testing {
namespace {

bool ReadAll(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = read(fd, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteAll(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t put = send(fd, p, n, MSG_NOSIGNAL);
    if (put <= 0) return false;
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

// Connects to a numeric host (no DNS) and port; -1 on failure.
int ConnectNumeric(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                  &result) != 0) {
    return -1;
  }
  int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, result->ai_addr, result->ai_addrlen) != 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(result);
  return fd;
}

}  // namespace

std::vector<std::string> Socks5Server::targets() const {
  absl::MutexLock lock(&mu_);
  return targets_;
}

void Socks5Server::Serve(int client) {
  int upstream = -1;
  // The listener closes `client` when this returns.
  const auto done = [&] {
    if (upstream >= 0) close(upstream);
  };
  // Greeting: VER NMETHODS METHODS...
  uint8_t head[2];
  uint8_t methods[255];
  if (!ReadAll(client, head, 2) || head[0] != 5 ||
      !ReadAll(client, methods, head[1])) {
    return done();
  }
  const uint8_t want = username_.empty() ? 0x00 : 0x02;
  if (std::memchr(methods, want, head[1]) == nullptr) {
    const uint8_t none[2] = {5, 0xff};
    WriteAll(client, none, 2);
    return done();
  }
  const uint8_t chosen[2] = {5, want};
  if (!WriteAll(client, chosen, 2)) return done();
  if (want == 0x02) {
    uint8_t ver_len[2];
    char user[256] = {};
    char pass[256] = {};
    uint8_t plen = 0;
    if (!ReadAll(client, ver_len, 2) || ver_len[0] != 1 ||
        !ReadAll(client, user, ver_len[1]) || !ReadAll(client, &plen, 1) ||
        !ReadAll(client, pass, plen)) {
      return done();
    }
    const bool ok = std::string(user, ver_len[1]) == username_ &&
                    std::string(pass, plen) == password_;
    // Counted before the client hears of it, so that a test that has its
    // result sees the count.
    if (!ok) ++auth_failures_;
    const uint8_t status[2] = {1, static_cast<uint8_t>(ok ? 0 : 1)};
    WriteAll(client, status, 2);
    if (!ok) return done();
  }
  // Request: VER CMD RSV ATYP DST.ADDR DST.PORT
  uint8_t req[4];
  if (!ReadAll(client, req, 4) || req[0] != 5 || req[1] != 1) return done();
  std::string host;
  if (req[3] == 1 || req[3] == 4) {
    uint8_t raw[16];
    const int n = req[3] == 1 ? 4 : 16;
    if (!ReadAll(client, raw, n)) return done();
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(n == 4 ? AF_INET : AF_INET6, raw, text, sizeof(text));
    host = text;
  } else if (req[3] == 3) {
    uint8_t len = 0;
    char name[256] = {};
    if (!ReadAll(client, &len, 1) || !ReadAll(client, name, len)) {
      return done();
    }
    host.assign(name, len);
  } else {
    return done();
  }
  uint8_t port_bytes[2];
  if (!ReadAll(client, port_bytes, 2)) return done();
  const uint16_t port =
      static_cast<uint16_t>(port_bytes[0] << 8 | port_bytes[1]);
  upstream = ConnectNumeric(host, port);
  const uint8_t reply[10] = {
      5, static_cast<uint8_t>(upstream >= 0 ? 0 : 5), 0, 1, 0, 0, 0, 0, 0, 0};
  if (!WriteAll(client, reply, sizeof(reply)) || upstream < 0) return done();
  {
    absl::MutexLock lock(&mu_);
    targets_.push_back(absl::StrCat(host, ":", port));
  }
  // Relay until either side closes.
  pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  char buf[16384];
  while (!listener_.stopping()) {
    if (poll(fds, 2, 1000) < 0) break;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      closed = n <= 0 || !WriteAll(fds[1 - i].fd, buf, static_cast<size_t>(n));
    }
    if (closed) break;
  }
  done();
}

}  // namespace fetchd::testing
