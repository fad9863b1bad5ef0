#include "service/ws/ws_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/auth_context.h"
#include "service/ws/ws_open.h"

namespace fetchd::ws {

using fetch::v1::WsClientMessage;
using fetch::v1::WsServerMessage;
using Reactor = grpc::ServerBidiReactor<WsClientMessage, WsServerMessage>;
using Ticket = api::CallGate::Ticket;

namespace {

using api::ToGrpc;

// Codes a client may put in its close frame (RFC 6455 7.4).
bool SendableCloseCode(uint32_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

// config.websocket, with max_message_bytes capped so that a message still
// fits in one gRPC message (grpc.max_message_bytes, less room for framing).
fetch::v1::WebSocketLimits EffectiveLimits(
    const fetch::v1::ServerConfig& config) {
  fetch::v1::WebSocketLimits limits = config.websocket();
  const uint64_t grpc_cap = config.grpc().max_message_bytes() > 1024
                                ? config.grpc().max_message_bytes() - 1024
                                : 1;
  limits.set_max_message_bytes(std::min(limits.max_message_bytes(), grpc_cap));
  return limits;
}

class RejectedCall final : public Reactor {
 public:
  explicit RejectedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One WebSocket call: the transport's sink and the reactor's state. Lives
// until both gRPC (OnDone) and the transport (OnClosed or a failed
// OnHandshake) are done with it.
class WsCall final : public WsSink,
                     public api::CancellableCall,
                     public std::enable_shared_from_this<WsCall> {
 public:
  WsCall(WebSocketServiceImpl* service,
         const fetch::v1::WebSocketLimits& limits,
         const WebSocketServiceImpl::Deps& deps,
         const policy::DestinationGate& destinations, auth::Caller caller,
         std::unique_ptr<Ticket> ticket)
      : service_(service),
        limits_(limits),
        deps_(deps),
        destinations_(destinations),
        caller_(std::move(caller)),
        ticket_(std::move(ticket)) {}

  // The call's admission (to register the call for CancelAll()).
  Ticket& ticket() { return *ticket_; }

  void Attach(Reactor* reactor, grpc::CallbackServerContext* context) {
    absl::MutexLock lock(&mu_);
    reactor_ = reactor;
    context_ = context;
    reactor_->StartRead(&in_);
  }

  // gRPC: a client message arrived (ok), or the client is done sending.
  void OnReadDone(bool ok) {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) return;
    if (!ok) {
      if (handle_ == nullptr) {
        FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "the stream ended before its open message"));
      } else if (!close_sent_ && !context_->IsCancelled()) {
        // Half-close without a close message: a normal close. (A
        // cancelled call's failed read is followed by OnCancel: 1001.)
        close_sent_ = true;
        handle_->Close(1000, "", "client");
      }
      return;
    }
    if (handle_ == nullptr && !refused_) {
      OpenLocked();
      return;
    }
    switch (in_.kind_case()) {
      case WsClientMessage::kOpen:
        CloseAndFail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "open: sent twice"));
        return;
      case WsClientMessage::kFrame:
        SendFrameLocked();
        return;
      case WsClientMessage::kClose: {
        const uint32_t code =
            in_.close().code() == 0 ? 1000 : in_.close().code();
        if (!SendableCloseCode(code)) {
          CloseAndFail(grpc::Status(
              grpc::StatusCode::INVALID_ARGUMENT,
              absl::StrCat("close.code: ", code,
                           " can't be sent (1000-1003, 1007-1011 or "
                           "3000-4999)")));
          return;
        }
        if (in_.close().reason().size() > 123) {
          CloseAndFail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "close.reason: longer than 123 bytes"));
          return;
        }
        if (!close_sent_) {
          close_sent_ = true;
          handle_->Close(static_cast<int>(code), in_.close().reason(),
                         "client");
        }
        reactor_->StartRead(&in_);
        return;
      }
      case WsClientMessage::KIND_NOT_SET:
        CloseAndFail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "message: one of open, frame, close must be "
                                  "set"));
        return;
    }
  }

  void OnWriteDone(bool ok) {
    bool read_more = false;
    std::shared_ptr<WsHandle> handle;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      read_more = writing_frame_;
      writing_frame_ = false;
      handle = handle_;
      if (!ok) {
        if (handle_ != nullptr && !close_sent_) {
          close_sent_ = true;
          handle_->Close(1001, "caller went away", "fetchd",
                         fetch::v1::ERROR_KIND_CANCELLED,
                         "the call's stream broke");
        }
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
        return;
      }
      MaybeWriteLocked();
    }
    if (read_more && handle != nullptr) handle->ReadMore();
  }

  // gRPC: the client cancelled, the deadline passed or the stream broke.
  void OnCancel() {
    absl::MutexLock lock(&mu_);
    if (handle_ != nullptr && !close_sent_) {
      close_sent_ = true;
      handle_->Close(1001, "caller went away", "fetchd",
                     fetch::v1::ERROR_KIND_CANCELLED, "the call was cancelled");
    }
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() {
    std::shared_ptr<WsHandle> handle;
    int frames = 0;
    {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
      // Messages never written: let the transport go on reading.
      for (const WsServerMessage& m : out_) {
        if (m.has_frame()) ++frames;
      }
      if (writing_frame_) ++frames;
      out_.clear();
      handle = handle_;
    }
    if (handle != nullptr) {
      for (int i = 0; i < frames; ++i) handle->ReadMore();
    }
  }

  // The end of a drain: a going-away close.
  void CancelForShutdown() override {
    absl::MutexLock lock(&mu_);
    if (handle_ != nullptr && !close_sent_) {
      close_sent_ = true;
      handle_->Close(1001, "fetchd is shutting down", "fetchd",
                     fetch::v1::ERROR_KIND_CANCELLED, "fetchd is draining");
    }
  }

  // WsSink (transport thread).
  void OnHandshake(const WsHandshakeResult& r) override {
    if (deps_.observer != nullptr) {
      if (r.ok) {
        deps_.observer->OnWsOpened();
      } else {
        if (r.error == fetch::v1::ERROR_KIND_DENIED) {
          deps_.observer->OnWsDenied(r.denied_category);
        }
        deps_.observer->OnWsHandshakeFailed(r.error);
      }
    }
    if (r.ok) service_->OnOpened();
    WsServerMessage m;
    auto* h = m.mutable_handshake();
    h->set_ok(r.ok);
    h->set_status(static_cast<uint32_t>(r.status));
    for (const auto& [name, value] : r.headers) {
      auto* header = h->add_headers();
      header->set_name(name);
      header->set_value(value);
    }
    h->set_subprotocol(r.subprotocol);
    h->set_error(r.error);
    h->set_error_message(r.error_message);
    h->set_remote_address(r.remote_address);
    absl::MutexLock lock(&mu_);
    if (!r.ok) finish_when_written_ = true;
    EnqueueLocked(std::move(m));
  }

  void OnMessage(WsMessage message) override {
    WsServerMessage m;
    if (message.binary) {
      m.mutable_frame()->set_binary(std::move(message.data));
    } else {
      m.mutable_frame()->set_text(std::move(message.data));
    }
    std::shared_ptr<WsHandle> handle;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ != nullptr && !finished_) {
        EnqueueLocked(std::move(m));
        return;
      }
      handle = handle_;
    }
    // Nobody to write to: keep the transport reading until it closes.
    if (handle != nullptr) handle->ReadMore();
  }

  void OnClosed(const WsCloseResult& r) override {
    if (deps_.observer != nullptr) deps_.observer->OnWsClosed(r.code);
    service_->OnClosed();
    WsServerMessage m;
    auto* c = m.mutable_close();
    c->set_code(static_cast<uint32_t>(r.code));
    c->set_reason(r.reason);
    c->set_initiator(r.initiator);
    c->set_error(r.error);
    c->set_error_message(r.error_message);
    absl::MutexLock lock(&mu_);
    finish_when_written_ = true;
    EnqueueLocked(std::move(m));
  }

 private:
  void OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!in_.has_open()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "the first message must be open"));
      return;
    }
    std::string category;
    const policy::HostRule caller_rule =
        [this](absl::string_view host) -> std::optional<std::string> {
      const absl::string_view h(host.data(), host.size());
      if (caller_.rules->allowed_hosts.Allows(h)) return std::nullopt;
      return absl::StrCat("caller \"", caller_.DisplayName(),
                          "\" may not connect to host \"", h, "\": not in ",
                          caller_.rules->field, ".allowed_hosts");
    };
    absl::StatusOr<WsOpenParams> params = CheckOpen(
        in_.open(), limits_, destinations_,
        caller_.rules->allowed_hosts.allows_all() ? nullptr : &caller_rule,
        &category);
    if (!params.ok() &&
        params.status().code() != absl::StatusCode::kPermissionDenied) {
      FinishLocked(ToGrpc(params.status()));
      return;
    }
    const std::string denied =
        params.ok() ? "" : std::string(params.status().message());
    if (!denied.empty()) {
      if (deps_.observer != nullptr) {
        deps_.observer->OnWsDenied(category);
        deps_.observer->OnWsHandshakeFailed(fetch::v1::ERROR_KIND_DENIED);
      }
      refused_ = true;
      WsServerMessage m;
      m.mutable_handshake()->set_error(fetch::v1::ERROR_KIND_DENIED);
      m.mutable_handshake()->set_error_message(denied);
      finish_when_written_ = true;
      EnqueueLocked(std::move(m));
      return;
    }
    max_message_bytes_ = params->max_message_bytes;
    handle_ = deps_.transport->Open(*std::move(params), shared_from_this());
    reactor_->StartRead(&in_);
  }

  void SendFrameLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    WsMessage message;
    const auto& frame = in_.frame();
    if (frame.has_binary()) {
      message.binary = true;
      message.data = frame.binary();
    } else {
      message.data = frame.text();
    }
    if (message.data.size() > max_message_bytes_) {
      if (!close_sent_) {
        close_sent_ = true;
        handle_->Close(1009, "message too big", "fetchd",
                       fetch::v1::ERROR_KIND_INVALID_REQUEST,
                       "the caller sent a message over max_message_bytes");
      }
      FinishLocked(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("frame: ", message.data.size(),
                       " bytes, over max_message_bytes ", max_message_bytes_)));
      return;
    }
    // The next client message is read once this one is written.
    handle_->Send(std::move(message), [self = shared_from_this()](bool) {
      absl::MutexLock lock(&self->mu_);
      if (self->reactor_ != nullptr && !self->finished_) {
        self->reactor_->StartRead(&self->in_);
      }
    });
  }

  // An error from the client after open: close the WebSocket, end the call.
  void CloseAndFail(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (handle_ != nullptr && !close_sent_) {
      close_sent_ = true;
      handle_->Close(1008, "policy violation", "fetchd",
                     fetch::v1::ERROR_KIND_INVALID_REQUEST,
                     std::string(status.error_message()));
    }
    FinishLocked(status);
  }

  void EnqueueLocked(WsServerMessage m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || finished_) return;
    out_.push_back(std::move(m));
    MaybeWriteLocked();
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (write_in_flight_ || finished_ || reactor_ == nullptr) return;
    if (out_.empty()) {
      if (finish_when_written_) FinishLocked(grpc::Status::OK);
      return;
    }
    writing_ = std::move(out_.front());
    out_.pop_front();
    writing_frame_ = writing_.has_frame();
    write_in_flight_ = true;
    // OnWriteDone never runs inline from StartWrite (gRPC 1.51).
    reactor_->StartWrite(&writing_);
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || reactor_ == nullptr) return;
    finished_ = true;
    reactor_->Finish(status);
  }

  WebSocketServiceImpl* const service_;
  const fetch::v1::WebSocketLimits& limits_;
  const WebSocketServiceImpl::Deps& deps_;
  const policy::DestinationGate& destinations_;
  const auth::Caller caller_;
  // The call's admission (one pending request while it is open).
  const std::unique_ptr<Ticket> ticket_;

  absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::CallbackServerContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  WsClientMessage in_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WsHandle> handle_ ABSL_GUARDED_BY(mu_);
  uint64_t max_message_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool refused_ ABSL_GUARDED_BY(mu_) = false;
  bool close_sent_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<WsServerMessage> out_ ABSL_GUARDED_BY(mu_);
  WsServerMessage writing_ ABSL_GUARDED_BY(mu_);
  bool writing_frame_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_when_written_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

class CallReactor final : public Reactor {
 public:
  CallReactor(grpc::CallbackServerContext* context,
              std::shared_ptr<WsCall> call)
      : call_(std::move(call)) {
    call_->Attach(this, context);
  }
  void OnReadDone(bool ok) override { call_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { call_->OnWriteDone(ok); }
  void OnCancel() override { call_->OnCancel(); }
  void OnDone() override {
    call_->OnDone();
    delete this;
  }

 private:
  const std::shared_ptr<WsCall> call_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WebSocketServiceImpl>>
WebSocketServiceImpl::Create(const fetch::v1::ServerConfig& config,
                             const Deps& deps) {
  if (deps.gate == nullptr || deps.destinations == nullptr ||
      deps.transport == nullptr) {
    return absl::InvalidArgumentError(
        "WebSocketServiceImpl: the call gate and the transport are required");
  }
  return std::unique_ptr<WebSocketServiceImpl>(
      new WebSocketServiceImpl(config, deps));
}

WebSocketServiceImpl::WebSocketServiceImpl(
    const fetch::v1::ServerConfig& config, const Deps& deps)
    : limits_(EffectiveLimits(config)),
      deps_(deps),
      destinations_(*deps.destinations) {}

Reactor* WebSocketServiceImpl::WebSocket(grpc::CallbackServerContext* context) {
  absl::StatusOr<auth::Caller> caller = deps_.gate->Identify(*context);
  if (!caller.ok()) return new RejectedCall(ToGrpc(caller.status()));
  absl::StatusOr<std::unique_ptr<Ticket>> ticket =
      deps_.gate->Admit(*context, api::CallKind::kWebSocket, 1, *caller);
  if (!ticket.ok()) return new RejectedCall(ToGrpc(ticket.status()));
  auto call = std::make_shared<WsCall>(this, limits_, deps_, destinations_,
                                       *std::move(caller), *std::move(ticket));
  call->ticket().Register(call);
  return new CallReactor(context, std::move(call));
}

}  // namespace fetchd::ws
