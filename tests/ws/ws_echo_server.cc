#include "tests/ws/ws_echo_server.h"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace fetchd::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using beast::error_code;

}  // namespace

class WsEchoServer::Impl {
 public:
  Impl() : acceptor_(ioc_), ssl_(asio::ssl::context::tls_server) {}

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads = std::move(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  absl::Status Listen(const std::string& cert, const std::string& key) {
    error_code ec;
    if (!cert.empty()) {
      tls_ = true;
      ssl_.use_certificate_chain_file(cert, ec);
      if (!ec) ssl_.use_private_key_file(key, asio::ssl::context::pem, ec);
      if (ec) return absl::InternalError("TLS files: " + ec.message());
    }
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(64, ec);
    if (ec) return absl::InternalError("listen: " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  int port() const { return port_; }
  bool tls() const { return tls_; }
  int connections() const {
    absl::MutexLock lock(&mu_);
    return connections_;
  }

  std::optional<int> NextClientClose(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !closes_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
      return std::nullopt;
    }
    const int code = closes_.front();
    closes_.pop_front();
    return code;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      absl::MutexLock lock(&mu_);
      if (ec || stopping_) return;
      ++connections_;
      fds_.insert(socket.native_handle());
      threads_.emplace_back(
          [this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  void Serve(tcp::socket socket) {
    const int fd = socket.native_handle();
    int code = 1006;
    if (tls_) {
      websocket::stream<asio::ssl::stream<tcp::socket>> ws(std::move(socket),
                                                           ssl_);
      error_code ec;
      ws.next_layer().handshake(asio::ssl::stream_base::server, ec);
      if (!ec) code = Session(ws, ws.next_layer());
    } else {
      websocket::stream<tcp::socket> ws(std::move(socket));
      code = Session(ws, ws.next_layer());
    }
    absl::MutexLock lock(&mu_);
    fds_.erase(fd);
    closes_.push_back(code);
  }

  // The route's behaviour; returns the client's close code.
  template <typename Ws, typename Next>
  int Session(Ws& ws, Next& next) {
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    error_code ec;
    http::read(next, buffer, req, ec);
    if (ec) return 1006;
    const std::string path(req.target());
    if (path == "/reject" || !websocket::is_upgrade(req)) {
      http::response<http::string_body> res(http::status::forbidden,
                                            req.version());
      res.set(http::field::content_type, "text/plain");
      res.body() = "forbidden";
      res.prepare_payload();
      http::write(next, res, ec);
      return 1006;
    }
    const std::string offered(req[http::field::sec_websocket_protocol]);
    const bool echo_v1 = offered.find("echo.v1") != std::string::npos;
    ws.set_option(websocket::stream_base::decorator(
        [echo_v1](websocket::response_type& res) {
          if (echo_v1) res.set(http::field::sec_websocket_protocol, "echo.v1");
        }));
    ws.read_message_max(64 << 20);
    ws.accept(req, ec);
    if (ec) return 1006;
    for (;;) {
      beast::flat_buffer message;
      ws.read(message, ec);
      if (ec == websocket::error::closed) return ws.reason().code;
      if (ec) return 1006;
      if (path == "/echo") {
        ws.binary(ws.got_binary());
        ws.write(message.data(), ec);
      } else if (path == "/close") {
        ws.close(websocket::close_reason(
                     static_cast<websocket::close_code>(4000), "bye"),
                 ec);
        // Read until the client's answer ends the connection.
        beast::flat_buffer rest;
        ws.read(rest, ec);
        return 4000;
      } else if (path == "/big") {
        size_t n = 0;
        if (!absl::SimpleAtoi(beast::buffers_to_string(message.data()), &n)) {
          n = 0;
        }
        ws.binary(true);
        ws.write(asio::buffer(std::string(n, 'b')), ec);
      }
      if (ec) return 1006;
    }
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::ssl::context ssl_;
  bool tls_ = false;
  int port_ = 0;
  std::thread accept_thread_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int connections_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::deque<int> closes_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<WsEchoServer>> WsEchoServer::Start(
    const std::string& cert_file, const std::string& key_file) {
  auto impl = std::make_unique<Impl>();
  if (absl::Status s = impl->Listen(cert_file, key_file); !s.ok()) return s;
  return std::unique_ptr<WsEchoServer>(new WsEchoServer(std::move(impl)));
}

WsEchoServer::WsEchoServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
WsEchoServer::~WsEchoServer() = default;

int WsEchoServer::port() const { return impl_->port(); }
std::string WsEchoServer::base_url() const {
  return absl::StrCat(impl_->tls() ? "wss" : "ws",
                      "://127.0.0.1:", impl_->port());
}
int WsEchoServer::connections() const { return impl_->connections(); }
std::optional<int> WsEchoServer::NextClientClose(absl::Duration timeout) {
  return impl_->NextClientClose(timeout);
}

}  // namespace fetchd::testing
