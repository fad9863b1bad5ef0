#include "service/ws/beast_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fetchd::ws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using beast::error_code;
using fetch::v1::ErrorKind;

using PlainStream = websocket::stream<beast::tcp_stream>;
using TlsStream = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

// Beast's own keep-alive: a ping after half of this without data from the
// target, the connection dropped after all of it.
constexpr auto kKeepAlive = std::chrono::seconds(30);

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

std::string AddressText(const tcp::endpoint& endpoint) {
  const asio::ip::address a = endpoint.address();
  return a.is_v6() ? absl::StrCat("[", a.to_string(), "]:", endpoint.port())
                   : absl::StrCat(a.to_string(), ":", endpoint.port());
}

bool IsTlsError(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec.category() == asio::ssl::error::get_stream_category();
}

class Transport;

// One WebSocket, confined to the transport's thread (every method runs
// there, except the WsHandle ones, which post).
class Session final : public WsHandle,
                      public std::enable_shared_from_this<Session> {
 public:
  Session(Transport* transport, asio::io_context& ioc, WsOpenParams params,
          std::shared_ptr<WsSink> sink)
      : transport_(transport),
        ioc_(ioc),
        params_(std::move(params)),
        sink_(std::move(sink)),
        resolver_(ioc),
        handshake_timer_(ioc),
        idle_timer_(ioc) {}

  // WsHandle.
  void Send(WsMessage message,
            absl::AnyInvocable<void(bool ok)> sent) override {
    asio::post(ioc_, [self = shared_from_this(), m = std::move(message),
                      sent = std::move(sent)]() mutable {
      self->DoSend(std::move(m), std::move(sent));
    });
  }
  void ReadMore() override {
    asio::post(ioc_, [self = shared_from_this()] { self->DoReadMore(); });
  }
  void Close(int code, std::string reason, std::string initiator,
             ErrorKind error, std::string error_message) override {
    asio::post(ioc_, [self = shared_from_this(), code, r = std::move(reason),
                      i = std::move(initiator), error,
                      m = std::move(error_message)]() mutable {
      self->DoClose(code, std::move(r), std::move(i), error, std::move(m));
    });
  }

  const std::string& host_key() const { return params_.target.host_key; }
  bool done() const { return state_ == State::kDone; }

  // Transport thread: starts waiting for a host slot (the transport calls
  // Begin() when there is one).
  void Start();
  // Transport thread: a host slot is ours.
  void Begin();
  // Transport thread: Stop() gives up on a graceful close.
  void Abort() {
    if (state_ == State::kDone) return;
    close_ = CloseInfo{1001, "fetchd stopping", "fetchd",
                       fetch::v1::ERROR_KIND_CANCELLED, "fetchd stopped"};
    if (state_ != State::kOpen) {
      FailHandshake(fetch::v1::ERROR_KIND_CANCELLED, "fetchd stopped");
      return;
    }
    CloseSocket();
    // A pending read, write or close now fails and ends it; else:
    if (!read_pending_) read_done_ = true;
    MaybeFinish();
  }

 private:
  enum class State { kWaiting, kConnecting, kOpen, kDone };
  struct CloseInfo {
    int code = 1000;
    std::string reason;
    std::string initiator;
    ErrorKind error = fetch::v1::ERROR_KIND_NONE;
    std::string error_message;
  };
  struct Outgoing {
    WsMessage message;
    absl::AnyInvocable<void(bool)> sent;
  };

  template <typename F>
  void WithStream(F&& f) {
    if (tls_ != nullptr) {
      f(*tls_);
    } else if (plain_ != nullptr) {
      f(*plain_);
    }
  }

  void OnResolved(const error_code& ec,
                  const tcp::resolver::results_type& results);
  void OnConnected(const error_code& ec, const tcp::endpoint& endpoint);
  void StartUpgrade();
  void OnUpgraded(const error_code& ec);
  void FailHandshake(ErrorKind kind, std::string message, int status = 0);
  void DoSend(WsMessage message, absl::AnyInvocable<void(bool)> sent);
  void DoReadMore();
  void DoClose(int code, std::string reason, std::string initiator,
               ErrorKind error, std::string error_message);
  void MaybeRead();
  void OnRead(const error_code& ec);
  void MaybeWrite();
  void OnWritten(const error_code& ec);
  void StartCloseFrame();
  void ArmIdle();
  void CloseSocket();
  void MaybeFinish();

  Transport* const transport_;
  asio::io_context& ioc_;
  const WsOpenParams params_;
  std::shared_ptr<WsSink> sink_;
  tcp::resolver resolver_;
  asio::steady_timer handshake_timer_;
  asio::steady_timer idle_timer_;
  std::unique_ptr<asio::ssl::context> ssl_ctx_;
  std::unique_ptr<PlainStream> plain_;
  std::unique_ptr<TlsStream> tls_;
  websocket::response_type response_;
  std::string remote_address_;
  std::string denied_category_;

  State state_ = State::kWaiting;
  bool holds_slot_ = false;
  // Reads the service asked for and not yet delivered.
  int read_credit_ = 1;
  bool read_pending_ = false;
  bool read_done_ = false;
  beast::flat_buffer read_buffer_;
  std::deque<Outgoing> outgoing_;
  bool write_pending_ = false;
  // Set once a close was asked for (by the client, fetchd, or seen from
  // the target); the close frame goes out after the queued messages.
  std::optional<CloseInfo> close_;
  bool close_frame_started_ = false;
  bool close_pending_ = false;
  // The target's close frame was read.
  bool peer_closed_ = false;
  uint64_t idle_generation_ = 0;
};

class Transport final : public WsTransport {
 public:
  explicit Transport(Options options)
      : options_(std::move(options)), work_(asio::make_work_guard(ioc_)) {}
  ~Transport() override { Stop(); }

  void StartThread() {
    // asio reports errors through error_codes on every path used here.
    thread_ = std::thread([this] { ioc_.run(); });
  }

  std::shared_ptr<WsHandle> Open(WsOpenParams params,
                                 std::shared_ptr<WsSink> sink) override {
    auto session = std::make_shared<Session>(this, ioc_, std::move(params),
                                             std::move(sink));
    asio::post(ioc_, [this, session] {
      if (stopped_) {
        session->Abort();
        return;
      }
      sessions_.insert(session);
      session->Start();
    });
    return session;
  }

  void Stop() override {
    if (!thread_.joinable()) return;
    asio::post(ioc_, [this] {
      stopped_ = true;
      for (const auto& s : sessions_) {
        s->Close(1001, "fetchd stopping", "fetchd",
                 fetch::v1::ERROR_KIND_CANCELLED, "fetchd stopped");
      }
      DrainStep(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    });
    thread_.join();
  }

  // Transport thread: waits (in 10 ms steps) until every session is done
  // or `deadline` passes, then aborts the rest and lets the loop end.
  void DrainStep(std::chrono::steady_clock::time_point deadline) {
    if (sessions_.empty() || std::chrono::steady_clock::now() >= deadline) {
      const auto left = sessions_;
      for (const auto& s : left) s->Abort();
      work_.reset();
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(
        ioc_, std::chrono::milliseconds(10));
    timer->async_wait(
        [this, timer, deadline](const error_code&) { DrainStep(deadline); });
  }

  const Options& options() const { return options_; }

  // Session thread: a slot of `host_key` for `session`, now or later
  // (then Begin() is called).
  void AcquireSlot(const std::shared_ptr<Session>& session) {
    Host& host = hosts_[session->host_key()];
    if (host.open < options_.max_per_host) {
      ++host.open;
      session->Begin();
      return;
    }
    host.waiting.push_back(session);
  }
  void ReleaseSlot(const std::string& host_key) {
    auto it = hosts_.find(host_key);
    if (it == hosts_.end()) return;
    Host& host = it->second;
    --host.open;
    while (!host.waiting.empty()) {
      std::shared_ptr<Session> next = host.waiting.front().lock();
      host.waiting.pop_front();
      if (next == nullptr || next->done()) continue;
      ++host.open;
      next->Begin();
      return;
    }
    if (host.open == 0) hosts_.erase(it);
  }
  void Done(const std::shared_ptr<Session>& session) {
    sessions_.erase(session);
  }

 private:
  struct Host {
    int open = 0;
    std::deque<std::weak_ptr<Session>> waiting;
  };

  const Options options_;
  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  // Transport thread only.
  bool stopped_ = false;
  std::set<std::shared_ptr<Session>> sessions_;
  std::map<std::string, Host> hosts_;
};

void Session::Start() {
  handshake_timer_.expires_after(ToSteady(params_.handshake_timeout));
  handshake_timer_.async_wait([self =
                                   shared_from_this()](const error_code& ec) {
    if (ec || self->state_ == State::kOpen || self->state_ == State::kDone) {
      return;
    }
    const std::string limit =
        absl::FormatDuration(self->params_.handshake_timeout);
    if (self->state_ == State::kWaiting) {
      self->FailHandshake(
          fetch::v1::ERROR_KIND_QUEUE_TIMEOUT,
          absl::StrCat("no free connection slot for ",
                       self->params_.target.host_key, " within ", limit,
                       " (limits.max_per_host)"));
    } else {
      self->FailHandshake(
          fetch::v1::ERROR_KIND_CONNECT_TIMEOUT,
          absl::StrCat("WebSocket handshake timed out after ", limit));
    }
  });
  transport_->AcquireSlot(shared_from_this());
}

void Session::Begin() {
  holds_slot_ = true;
  state_ = State::kConnecting;
  resolver_.async_resolve(
      params_.target.host, std::to_string(params_.target.port),
      tcp::resolver::numeric_service,
      [self = shared_from_this()](const error_code& ec,
                                  const tcp::resolver::results_type& results) {
        self->OnResolved(ec, results);
      });
}

void Session::OnResolved(const error_code& ec,
                         const tcp::resolver::results_type& results) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    FailHandshake(fetch::v1::ERROR_KIND_DNS,
                  absl::StrCat("cannot resolve ", params_.target.host, ": ",
                               ec.message()));
    return;
  }
  // Only addresses the policy allows are ever dialled.
  std::vector<tcp::endpoint> allowed;
  std::optional<policy::Denial> first_denial;
  for (const auto& entry : results) {
    const tcp::endpoint endpoint = entry.endpoint();
    const std::optional<policy::IpAddress> ip =
        policy::IpAddress::Parse(endpoint.address().to_string());
    if (!ip.has_value()) continue;
    std::optional<policy::Denial> denial =
        transport_->options().address_check(*ip, endpoint.port());
    if (!denial.has_value()) {
      allowed.push_back(endpoint);
    } else if (!first_denial.has_value()) {
      first_denial = std::move(denial);
    }
  }
  if (allowed.empty()) {
    if (first_denial.has_value()) {
      denied_category_ = first_denial->category;
      FailHandshake(fetch::v1::ERROR_KIND_DENIED, first_denial->message);
    } else {
      FailHandshake(fetch::v1::ERROR_KIND_DNS,
                    absl::StrCat("no address for ", params_.target.host));
    }
    return;
  }
  if (params_.target.tls) {
    ssl_ctx_ =
        std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    error_code tls_ec;
    if (params_.insecure_skip_verify) {
      ssl_ctx_->set_verify_mode(asio::ssl::verify_none, tls_ec);
    } else {
      ssl_ctx_->set_verify_mode(asio::ssl::verify_peer, tls_ec);
      if (params_.ca_cert_pem.empty()) {
        ssl_ctx_->set_default_verify_paths(tls_ec);
      } else {
        ssl_ctx_->add_certificate_authority(asio::buffer(params_.ca_cert_pem),
                                            tls_ec);
      }
    }
    if (!tls_ec && !params_.client_cert_pem.empty()) {
      ssl_ctx_->use_certificate_chain(asio::buffer(params_.client_cert_pem),
                                      tls_ec);
      if (!tls_ec) {
        ssl_ctx_->use_private_key(asio::buffer(params_.client_key_pem),
                                  asio::ssl::context::pem, tls_ec);
      }
    }
    if (tls_ec) {
      FailHandshake(fetch::v1::ERROR_KIND_TLS,
                    absl::StrCat("TLS options: ", tls_ec.message()));
      return;
    }
    tls_ = std::make_unique<TlsStream>(ioc_, *ssl_ctx_);
  } else {
    plain_ = std::make_unique<PlainStream>(ioc_);
  }
  WithStream([&](auto& ws) {
    beast::get_lowest_layer(ws).async_connect(
        allowed, [self = shared_from_this()](const error_code& connect_ec,
                                             const tcp::endpoint& endpoint) {
          self->OnConnected(connect_ec, endpoint);
        });
  });
}

void Session::OnConnected(const error_code& ec, const tcp::endpoint& endpoint) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    FailHandshake(fetch::v1::ERROR_KIND_CONNECT,
                  absl::StrCat("cannot connect to ", params_.target.host_key,
                               ": ", ec.message()));
    return;
  }
  remote_address_ = AddressText(endpoint);
  if (tls_ == nullptr) {
    StartUpgrade();
    return;
  }
  SSL* ssl = tls_->next_layer().native_handle();
  const std::string& host = params_.target.host;
  const bool is_ip = policy::IpAddress::Parse(host).has_value();
  if (!is_ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!params_.insecure_skip_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set =
        is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
              : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) {
      FailHandshake(fetch::v1::ERROR_KIND_TLS,
                    absl::StrCat("cannot verify the name ", host));
      return;
    }
  }
  tls_->next_layer().async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const error_code& tls_ec) {
        if (self->state_ != State::kConnecting) return;
        if (tls_ec) {
          self->FailHandshake(
              fetch::v1::ERROR_KIND_TLS,
              absl::StrCat("TLS handshake with ", self->params_.target.host_key,
                           ": ", tls_ec.message()));
          return;
        }
        self->StartUpgrade();
      });
}

void Session::StartUpgrade() {
  const WsTarget& t = params_.target;
  const bool default_port =
      (t.tls && t.port == 443) || (!t.tls && t.port == 80);
  const bool v6 = t.host.find(':') != std::string::npos;
  std::string host_header = v6 ? absl::StrCat("[", t.host, "]") : t.host;
  if (!default_port) absl::StrAppend(&host_header, ":", t.port);
  WithStream([&](auto& ws) {
    // The whole handshake is bounded by handshake_timer_.
    beast::get_lowest_layer(ws).expires_never();
    ws.set_option(websocket::stream_base::decorator(
        [headers = params_.headers,
         protocols = params_.subprotocols](websocket::request_type& req) {
          req.set(http::field::user_agent, "fetchd");
          if (!protocols.empty()) {
            req.set(http::field::sec_websocket_protocol,
                    absl::StrJoin(protocols, ", "));
          }
          for (const auto& [name, value] : headers) req.insert(name, value);
        }));
    ws.read_message_max(params_.max_message_bytes);
    ws.async_handshake(response_, host_header, t.target,
                       [self = shared_from_this()](const error_code& ec) {
                         self->OnUpgraded(ec);
                       });
  });
}

void Session::OnUpgraded(const error_code& ec) {
  if (state_ != State::kConnecting) return;
  const int status = static_cast<int>(response_.result_int());
  if (ec) {
    if (status != 0 && status != 101) {
      FailHandshake(fetch::v1::ERROR_KIND_HTTP_STATUS,
                    absl::StrCat("the target answered HTTP ", status,
                                 " instead of upgrading to a WebSocket"),
                    status);
    } else {
      FailHandshake(IsTlsError(ec) ? fetch::v1::ERROR_KIND_TLS
                                   : fetch::v1::ERROR_KIND_PROTOCOL,
                    absl::StrCat("WebSocket handshake failed: ", ec.message()),
                    status);
    }
    return;
  }
  handshake_timer_.cancel();
  state_ = State::kOpen;
  WithStream([&](auto& ws) {
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = ToSteady(params_.handshake_timeout);
    timeout.idle_timeout = kKeepAlive;
    timeout.keep_alive_pings = true;
    ws.set_option(timeout);
  });
  WsHandshakeResult result;
  result.ok = true;
  result.status = status;
  for (const auto& field : response_) {
    result.headers.emplace_back(std::string(field.name_string()),
                                std::string(field.value()));
  }
  result.subprotocol =
      std::string(response_[http::field::sec_websocket_protocol]);
  result.remote_address = remote_address_;
  sink_->OnHandshake(result);
  ArmIdle();
  if (close_.has_value()) {
    StartCloseFrame();
  } else {
    MaybeWrite();
  }
  MaybeRead();
}

void Session::FailHandshake(ErrorKind kind, std::string message, int status) {
  if (state_ == State::kDone || state_ == State::kOpen) return;
  state_ = State::kDone;
  handshake_timer_.cancel();
  resolver_.cancel();
  CloseSocket();
  WsHandshakeResult result;
  result.error = kind;
  result.error_message = std::move(message);
  result.status = status;
  if (status != 0) {
    for (const auto& field : response_) {
      result.headers.emplace_back(std::string(field.name_string()),
                                  std::string(field.value()));
    }
  }
  result.denied_category = denied_category_;
  result.remote_address = remote_address_;
  for (Outgoing& o : outgoing_) o.sent(false);
  outgoing_.clear();
  if (holds_slot_) {
    holds_slot_ = false;
    transport_->ReleaseSlot(params_.target.host_key);
  }
  std::shared_ptr<WsSink> sink = std::move(sink_);
  sink->OnHandshake(result);
  transport_->Done(shared_from_this());
}

void Session::DoSend(WsMessage message, absl::AnyInvocable<void(bool)> sent) {
  if (state_ == State::kDone || close_.has_value()) {
    sent(false);
    return;
  }
  outgoing_.push_back(Outgoing{std::move(message), std::move(sent)});
  if (state_ == State::kOpen) MaybeWrite();
}

void Session::DoReadMore() {
  ++read_credit_;
  MaybeRead();
}

void Session::DoClose(int code, std::string reason, std::string initiator,
                      ErrorKind error, std::string error_message) {
  if (state_ == State::kDone || close_.has_value()) return;
  close_ = CloseInfo{code, std::move(reason), std::move(initiator), error,
                     std::move(error_message)};
  if (state_ != State::kOpen) {
    FailHandshake(fetch::v1::ERROR_KIND_CANCELLED,
                  "the WebSocket was closed before its handshake ended");
    return;
  }
  if (!write_pending_) StartCloseFrame();
}

void Session::MaybeRead() {
  if (state_ != State::kOpen || read_pending_ || read_done_ ||
      read_credit_ <= 0) {
    return;
  }
  read_pending_ = true;
  --read_credit_;
  WithStream([&](auto& ws) {
    ws.async_read(read_buffer_,
                  [self = shared_from_this()](
                      const error_code& ec, std::size_t) { self->OnRead(ec); });
  });
}

void Session::OnRead(const error_code& ec) {
  read_pending_ = false;
  if (!ec) {
    WsMessage message;
    WithStream([&](auto& ws) { message.binary = ws.got_binary(); });
    message.data = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    if (transport_->options().observer != nullptr) {
      transport_->options().observer->OnWsMessage(false, message.data.size());
    }
    if (state_ == State::kOpen && sink_ != nullptr) {
      ArmIdle();
      sink_->OnMessage(std::move(message));
    }
    MaybeRead();
    return;
  }
  read_done_ = true;
  websocket::close_reason reason;
  WithStream([&](auto& ws) { reason = ws.reason(); });
  if (ec == websocket::error::closed) {
    peer_closed_ = true;
    if (!close_.has_value()) {
      // The target closed first; Beast has answered its close frame.
      close_ = CloseInfo{static_cast<int>(reason.code),
                         std::string(reason.reason.c_str()), "target",
                         fetch::v1::ERROR_KIND_NONE, ""};
    } else if (close_->error == fetch::v1::ERROR_KIND_NONE) {
      // Our close, echoed.
      close_->code = static_cast<int>(reason.code);
      close_->reason = std::string(reason.reason.c_str());
    }
  } else if (ec == websocket::error::message_too_big) {
    if (!close_.has_value() || close_->error == fetch::v1::ERROR_KIND_NONE) {
      close_ = CloseInfo{1009, "message too big", "fetchd",
                         fetch::v1::ERROR_KIND_BODY_TOO_LARGE,
                         absl::StrCat("the target sent a message over ",
                                      params_.max_message_bytes, " bytes")};
    }
  } else if (!close_.has_value()) {
    close_ =
        CloseInfo{1006, "", "fetchd", fetch::v1::ERROR_KIND_PROTOCOL,
                  absl::StrCat("WebSocket connection lost: ", ec.message())};
  } else if (close_->error == fetch::v1::ERROR_KIND_NONE && !close_pending_) {
    close_->code = 1006;
  }
  if (close_pending_) return;  // the close op ends it
  CloseSocket();
  MaybeFinish();
}

void Session::MaybeWrite() {
  if (state_ != State::kOpen || write_pending_ || close_frame_started_) return;
  if (outgoing_.empty()) {
    if (close_.has_value()) StartCloseFrame();
    return;
  }
  write_pending_ = true;
  const Outgoing& next = outgoing_.front();
  WithStream([&](auto& ws) {
    ws.binary(next.message.binary);
    ws.async_write(
        asio::buffer(next.message.data),
        [self = shared_from_this()](const error_code& ec, std::size_t) {
          self->OnWritten(ec);
        });
  });
}

void Session::OnWritten(const error_code& ec) {
  write_pending_ = false;
  Outgoing done = std::move(outgoing_.front());
  outgoing_.pop_front();
  if (!ec) {
    ArmIdle();
    if (transport_->options().observer != nullptr) {
      transport_->options().observer->OnWsMessage(true,
                                                  done.message.data.size());
    }
  }
  done.sent(!ec);
  if (ec) {
    for (Outgoing& o : outgoing_) o.sent(false);
    outgoing_.clear();
    MaybeFinish();
    return;
  }
  MaybeWrite();
  MaybeFinish();
}

void Session::StartCloseFrame() {
  if (close_frame_started_ || state_ != State::kOpen) return;
  if (write_pending_ || !outgoing_.empty()) return;  // after the queue
  close_frame_started_ = true;
  if (read_done_) {
    MaybeFinish();
    return;
  }
  close_pending_ = true;
  websocket::close_reason reason(
      static_cast<websocket::close_code>(close_->code), close_->reason);
  WithStream([&](auto& ws) {
    ws.async_close(reason, [self = shared_from_this()](const error_code& ec) {
      self->close_pending_ = false;
      if (!ec) {
        // The handshake completed: the target's close frame was read.
        self->peer_closed_ = true;
        if (self->close_->error == fetch::v1::ERROR_KIND_NONE) {
          self->WithStream([&](auto& s) {
            self->close_->code = static_cast<int>(s.reason().code);
            self->close_->reason = std::string(s.reason().reason.c_str());
          });
        }
      }
      if (ec && !self->peer_closed_ &&
          self->close_->error == fetch::v1::ERROR_KIND_NONE &&
          ec != websocket::error::closed) {
        self->close_->code = 1006;
      }
      self->read_done_ = true;
      self->CloseSocket();
      self->MaybeFinish();
    });
  });
}

void Session::ArmIdle() {
  const uint64_t generation = ++idle_generation_;
  idle_timer_.expires_after(ToSteady(params_.idle_timeout));
  idle_timer_.async_wait(
      [self = shared_from_this(), generation](const error_code& ec) {
        if (ec || generation != self->idle_generation_) return;
        self->DoClose(
            1001, "idle timeout", "fetchd", fetch::v1::ERROR_KIND_READ_TIMEOUT,
            absl::StrCat("no message either way for ",
                         absl::FormatDuration(self->params_.idle_timeout)));
      });
}

void Session::CloseSocket() {
  error_code ignored;
  WithStream([&](auto& ws) {
    beast::get_lowest_layer(ws).socket().shutdown(tcp::socket::shutdown_both,
                                                  ignored);
    beast::get_lowest_layer(ws).socket().close(ignored);
  });
}

void Session::MaybeFinish() {
  if (state_ != State::kOpen || read_pending_ || write_pending_ ||
      close_pending_ || !read_done_) {
    return;
  }
  state_ = State::kDone;
  handshake_timer_.cancel();
  idle_timer_.cancel();
  for (Outgoing& o : outgoing_) o.sent(false);
  outgoing_.clear();
  if (holds_slot_) {
    holds_slot_ = false;
    transport_->ReleaseSlot(params_.target.host_key);
  }
  if (close_.has_value() && close_->error == fetch::v1::ERROR_KIND_NONE) {
    // A clean close: the code is the target's close frame's (its own, or
    // its echo of ours), 1006 when none was read.
    WithStream([&](auto& ws) {
      const websocket::close_reason& r = ws.reason();
      close_->code = r.code == websocket::close_code::none
                         ? 1006
                         : static_cast<int>(r.code);
      close_->reason = std::string(r.reason.c_str());
    });
  }
  WsCloseResult result;
  if (close_.has_value()) {
    result.code = close_->code;
    result.reason = close_->reason;
    result.initiator = close_->initiator;
    result.error = close_->error;
    result.error_message = close_->error_message;
  }
  std::shared_ptr<WsSink> sink = std::move(sink_);
  if (sink != nullptr) sink->OnClosed(result);
  transport_->Done(shared_from_this());
}

}  // namespace

absl::StatusOr<std::unique_ptr<WsTransport>> NewBeastTransport(
    WsTransport::Options options) {
  if (!options.address_check) {
    return absl::InvalidArgumentError("WsTransport: address_check is required");
  }
  if (options.max_per_host < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("WsTransport: max_per_host must be at least 1, got ",
                     options.max_per_host));
  }
  auto transport = std::make_unique<Transport>(std::move(options));
  transport->StartThread();
  return transport;
}

}  // namespace fetchd::ws
