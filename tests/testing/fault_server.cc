#include "tests/testing/fault_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::testing {
namespace {

// Longest request head read; a request is never bigger in these tests.
constexpr size_t kMaxHead = 64 * 1024;
// How long a connection may take to send its request head.
constexpr int kReadTimeoutMs = 5000;

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// The request head (up to the blank line), or "" if the peer went away.
std::string ReadHead(int fd) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxHead) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kReadTimeoutMs) <= 0) return "";
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return "";
    head.append(buf, static_cast<size_t>(n));
  }
  return head;
}

// "GET /path?q HTTP/1.1" -> "/path".
std::string PathOf(const std::string& head) {
  const size_t start = head.find(' ');
  if (start == std::string::npos) return "";
  const size_t end = head.find_first_of(" ?", start + 1);
  if (end == std::string::npos) return "";
  return head.substr(start + 1, end - start - 1);
}

}  // namespace

std::string FaultServer::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port(),
                      absl::string_view(path.data(), path.size()));
}

int FaultServer::Requests(absl::string_view path) const {
  absl::MutexLock lock(&mu_);
  const auto it = requests_.find(path);
  return it == requests_.end() ? 0 : it->second;
}

void FaultServer::Serve(int fd) {
  const std::string head = ReadHead(fd);
  if (head.empty()) return;
  const std::string path = PathOf(head);
  {
    absl::MutexLock lock(&mu_);
    ++requests_[path];
  }
  if (path == "/reset-mid-body") {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n");
    WriteAll(fd, std::string(1024, 'x'));
    // The listener's close() then sends RST instead of FIN.
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  } else if (path == "/truncated") {
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    WriteAll(fd, std::string(10, 'x'));
  } else if (path == "/bad-status") {
    WriteAll(fd, "HTTP/1.1 2x0 Maybe\r\nContent-Length: 2\r\n\r\nok");
  } else if (path == "/not-http") {
    WriteAll(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  } else if (path == "/bad-chunk") {
    WriteAll(fd,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\nxx\r\n0\r\n\r\n");
  } else if (path == "/no-reply") {
    // Nothing: the listener's close() is the whole answer.
  } else {
    WriteAll(fd,
             "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n"
             "status 404");
  }
}

}  // namespace fetchd::testing
