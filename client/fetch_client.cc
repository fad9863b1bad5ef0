#include "client/fetch_client.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/string_ref.h"

namespace fetchd::client {
namespace {

// Trailer in which fetchd tells a RESOURCE_EXHAUSTED caller when to retry.
constexpr absl::string_view kRetryAfterTrailer = "retry-after-ms";

absl::string_view ChannelStateName(grpc_connectivity_state state) {
  switch (state) {
    case GRPC_CHANNEL_IDLE:
      return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
      return "CONNECTING";
    case GRPC_CHANNEL_READY:
      return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
      return "SHUTDOWN";
  }
  return "UNKNOWN";
}

// The one place where a grpc::Status becomes an absl::Status. Both use the
// canonical status codes, so the code converts by value.
absl::Status FromGrpcStatus(
    const grpc::Status& status,
    const std::multimap<grpc::string_ref, grpc::string_ref>& trailers) {
  if (status.ok()) {
    return absl::OkStatus();
  }
  std::string message = status.error_message();
  auto retry_after = trailers.find(
      grpc::string_ref(kRetryAfterTrailer.data(), kRetryAfterTrailer.size()));
  if (retry_after != trailers.end()) {
    absl::StrAppend(&message, message.empty() ? "" : " ", "(",
                    kRetryAfterTrailer, ": ",
                    absl::string_view(retry_after->second.data(),
                                      retry_after->second.size()),
                    ")");
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      message);
}

void SetDeadline(absl::Time deadline, grpc::ClientContext& context) {
  // No deadline is gRPC's default; an infinite absl::Time does not convert.
  if (deadline == absl::InfiniteFuture()) {
    return;
  }
  context.set_deadline(absl::ToChronoTime(deadline));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FetchClient>> FetchClient::Connect(
    const std::string& target, const ClientOptions& options) {
  return Connect(target, options, absl::InfiniteFuture());
}

absl::StatusOr<std::unique_ptr<FetchClient>> FetchClient::Connect(
    const std::string& target, const ClientOptions& options,
    absl::Time deadline) {
  if (target.empty()) {
    return absl::InvalidArgumentError("fetchd target is empty");
  }
  if (options.max_receive_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_receive_message_bytes must be positive, got ",
                     options.max_receive_message_bytes));
  }
  if (options.client_cert_pem.empty() != options.client_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its private key must be given together");
  }
  if (options.bearer_token.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("the bearer token holds a line break");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  const bool tls = options.tls || !options.ca_cert_pem.empty() ||
                   !options.client_cert_pem.empty();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_cert_pem;
    ssl.pem_cert_chain = options.client_cert_pem;
    ssl.pem_private_key = options.client_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, credentials, args);

  // ChannelInterface::WaitForConnected(), but keeping the last state for the
  // error message.
  const absl::Time timeout_at = absl::Now() + options.connect_timeout;
  const bool deadline_first = deadline < timeout_at;
  const std::chrono::system_clock::time_point wait_until =
      absl::ToChronoTime(deadline_first ? deadline : timeout_at);
  grpc_connectivity_state state;
  while ((state = channel->GetState(/*try_to_connect=*/true)) !=
         GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_SHUTDOWN ||
        !channel->WaitForStateChange(state, wait_until)) {
      if (deadline_first && state != GRPC_CHANNEL_SHUTDOWN) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the deadline passed before fetchd at ", target,
            " could be reached (channel state: ", ChannelStateName(state),
            ")"));
      }
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to fetchd at ", target, " within ",
          absl::FormatDuration(options.connect_timeout),
          " (channel state: ", ChannelStateName(state), ")",
          tls ? "; with TLS, check the server's CA and name and the client "
                "certificate"
              : ""));
    }
  }
  return std::unique_ptr<FetchClient>(
      new FetchClient(std::move(channel), options.bearer_token));
}

FetchClient::FetchClient(std::shared_ptr<grpc::Channel> channel,
                         std::string bearer_token)
    : channel_(std::move(channel)),
      authorization_(bearer_token.empty()
                         ? std::string()
                         : absl::StrCat("Bearer ", bearer_token)),
      stub_(fetch::v1::FetchService::NewStub(channel_)),
      health_stub_(grpc::health::v1::Health::NewStub(channel_)),
      ws_stub_(fetch::v1::WebSocketService::NewStub(channel_)) {}

void FetchClient::Prepare(absl::Time deadline,
                          grpc::ClientContext& context) const {
  SetDeadline(deadline, context);
  // Metadata rather than call credentials: gRPC sends call credentials over
  // TLS only, and fetchd may take tokens over plaintext on loopback.
  if (!authorization_.empty()) {
    context.AddMetadata("authorization", authorization_);
  }
}

FetchClient::~FetchClient() = default;

absl::Status FetchClient::FetchBatch(
    const fetch::v1::BatchRequest& request,
    absl::FunctionRef<void(const fetch::v1::FetchEvent&)> on_event,
    absl::Time deadline) {
  grpc::ClientContext context;
  Prepare(deadline, context);
  std::unique_ptr<grpc::ClientReader<fetch::v1::FetchEvent>> reader =
      stub_->FetchBatch(&context, request);
  fetch::v1::FetchEvent event;
  while (reader->Read(&event)) {
    on_event(event);
  }
  const grpc::Status status = reader->Finish();
  return FromGrpcStatus(status, context.GetServerTrailingMetadata());
}

absl::StatusOr<fetch::v1::FetchResult> FetchClient::FetchStreamed(
    const fetch::v1::FetchRequest& request,
    absl::FunctionRef<void(const fetch::v1::BodyHead&)> on_head,
    absl::FunctionRef<absl::Status(absl::string_view data)> on_data,
    absl::Time deadline) {
  fetch::v1::BatchRequest batch;
  *batch.add_requests() = request;
  return FetchStreamed(batch, on_head, on_data, deadline);
}

absl::StatusOr<fetch::v1::FetchResult> FetchClient::FetchStreamed(
    const fetch::v1::BatchRequest& one_request,
    absl::FunctionRef<void(const fetch::v1::BodyHead&)> on_head,
    absl::FunctionRef<absl::Status(absl::string_view data)> on_data,
    absl::Time deadline) {
  if (one_request.requests_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("FetchStreamed needs a batch of one request, got ",
                     one_request.requests_size()));
  }
  fetch::v1::BatchRequest batch = one_request;
  batch.mutable_requests(0)->set_stream_body(true);

  grpc::ClientContext context;
  Prepare(deadline, context);
  std::unique_ptr<grpc::ClientReader<fetch::v1::FetchEvent>> reader =
      stub_->FetchBatch(&context, batch);
  fetch::v1::FetchEvent event;
  bool have_head = false;
  uint64_t offset = 0;
  std::optional<fetch::v1::FetchResult> result;
  // The first problem seen; the RPC is cancelled and drained after it.
  absl::Status failed;
  const auto fail = [&](absl::Status status) {
    failed = std::move(status);
    context.TryCancel();
  };
  while (reader->Read(&event)) {
    if (!failed.ok()) continue;
    // Heads, then chunks, then results: the order fetchd promises for
    // each request within an event.
    for (const fetch::v1::BodyHead& head : event.heads()) {
      if (have_head) {
        fail(absl::InternalError("fetchd sent a second BodyHead"));
        break;
      }
      have_head = true;
      on_head(head);
    }
    for (const fetch::v1::BodyChunk& chunk : event.chunks()) {
      if (!failed.ok()) break;
      if (!have_head || chunk.offset() != offset || result.has_value()) {
        fail(absl::InternalError(absl::StrCat(
            "fetchd sent a body chunk out of order (offset ", chunk.offset(),
            ", expected ", offset, have_head ? "" : ", before the head", ")")));
        break;
      }
      offset += chunk.data().size();
      if (absl::Status s = on_data(chunk.data()); !s.ok()) fail(std::move(s));
    }
    for (const fetch::v1::FetchResult& r : event.results()) {
      if (failed.ok()) result = r;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!failed.ok()) return failed;
  absl::Status converted =
      FromGrpcStatus(status, context.GetServerTrailingMetadata());
  if (!converted.ok()) return converted;
  if (!result.has_value()) {
    return absl::InternalError("fetchd ended the stream without a result");
  }
  return *std::move(result);
}

absl::StatusOr<fetch::v1::FetchResult> FetchClient::Fetch(
    const fetch::v1::FetchRequest& request, absl::Time deadline) {
  grpc::ClientContext context;
  Prepare(deadline, context);
  fetch::v1::FetchResult result;
  const grpc::Status status = stub_->Fetch(&context, request, &result);
  absl::Status converted =
      FromGrpcStatus(status, context.GetServerTrailingMetadata());
  if (!converted.ok()) {
    return converted;
  }
  return result;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
FetchClient::CheckHealth(const std::string& service, absl::Time deadline) {
  grpc::ClientContext context;
  Prepare(deadline, context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health_stub_->Check(&context, request, &response);
  absl::Status converted =
      FromGrpcStatus(status, context.GetServerTrailingMetadata());
  if (!converted.ok()) {
    return converted;
  }
  return response.status();
}

absl::StatusOr<std::unique_ptr<WebSocketStream>> FetchClient::OpenWebSocket(
    const fetch::v1::WsOpen& open, absl::Time deadline) {
  std::unique_ptr<WebSocketStream> ws(new WebSocketStream());
  ws->context_ = std::make_unique<grpc::ClientContext>();
  Prepare(deadline, *ws->context_);
  ws->stream_ = ws_stub_->WebSocket(ws->context_.get());
  fetch::v1::WsClientMessage first;
  *first.mutable_open() = open;
  fetch::v1::WsServerMessage answer;
  if (!ws->stream_->Write(first) || !ws->stream_->Read(&answer) ||
      !answer.has_handshake()) {
    absl::Status status = ws->Finish();
    if (status.ok()) {
      status = absl::InternalError("fetchd sent no handshake result");
    }
    return status;
  }
  ws->handshake_ = answer.handshake();
  return ws;
}

std::unique_ptr<FetchStreamCall> FetchClient::OpenFetchStream(
    const fetch::v1::BatchRequest& options, absl::Time deadline) {
  std::unique_ptr<FetchStreamCall> call(new FetchStreamCall());
  call->context_ = std::make_unique<grpc::ClientContext>();
  Prepare(deadline, *call->context_);
  call->options_ = options;
  call->stream_ = stub_->FetchStream(call->context_.get());
  return call;
}

FetchStreamCall::~FetchStreamCall() {
  if (!finished_ && context_ != nullptr) {
    context_->TryCancel();
    stream_->Finish();
  }
}

absl::Status FetchStreamCall::Send(
    std::vector<fetch::v1::FetchRequest> requests) {
  fetch::v1::FetchStreamRequest message;
  message.mutable_requests()->Reserve(static_cast<int>(requests.size()));
  for (fetch::v1::FetchRequest& request : requests) {
    *message.add_requests() = std::move(request);
  }
  return Send(message);
}

absl::Status FetchStreamCall::Send(
    const fetch::v1::FetchStreamRequest& message) {
  if (writes_done_) {
    return absl::UnavailableError("the FetchStream is closed for writes");
  }
  bool ok = false;
  if (!sent_first_ && !message.has_options()) {
    fetch::v1::FetchStreamRequest first = message;
    *first.mutable_options() = options_;
    ok = stream_->Write(first);
  } else {
    ok = stream_->Write(message);
  }
  sent_first_ = true;
  if (!ok) {
    return absl::UnavailableError(
        "the FetchStream is broken (Finish() says why)");
  }
  return absl::OkStatus();
}

void FetchStreamCall::WritesDone() {
  if (writes_done_) return;
  if (!sent_first_) {
    // The options still go, with no requests.
    fetch::v1::FetchStreamRequest first;
    *first.mutable_options() = options_;
    sent_first_ = true;
    stream_->Write(first);
  }
  writes_done_ = true;
  stream_->WritesDone();
}

bool FetchStreamCall::Read(fetch::v1::FetchEvent* event) {
  return stream_->Read(event);
}

void FetchStreamCall::Cancel() { context_->TryCancel(); }

absl::Status FetchStreamCall::Finish() {
  if (finished_) return absl::FailedPreconditionError("already finished");
  finished_ = true;
  return FromGrpcStatus(stream_->Finish(),
                        context_->GetServerTrailingMetadata());
}

WebSocketStream::~WebSocketStream() {
  if (!finished_ && context_ != nullptr) {
    context_->TryCancel();
    stream_->Finish();
  }
}

absl::Status WebSocketStream::Send(const fetch::v1::WsClientMessage& message) {
  if (writes_done_ || !stream_->Write(message)) {
    return absl::UnavailableError("the WebSocket stream is closed for writes");
  }
  return absl::OkStatus();
}

absl::Status WebSocketStream::SendText(std::string text) {
  fetch::v1::WsClientMessage m;
  m.mutable_frame()->set_text(std::move(text));
  return Send(m);
}

absl::Status WebSocketStream::SendBinary(std::string data) {
  fetch::v1::WsClientMessage m;
  m.mutable_frame()->set_binary(std::move(data));
  return Send(m);
}

absl::Status WebSocketStream::Close(uint32_t code, std::string reason) {
  fetch::v1::WsClientMessage m;
  m.mutable_close()->set_code(code);
  m.mutable_close()->set_reason(std::move(reason));
  return Send(m);
}

void WebSocketStream::WritesDone() {
  if (writes_done_) return;
  writes_done_ = true;
  stream_->WritesDone();
}

bool WebSocketStream::Read(fetch::v1::WsServerMessage* message) {
  return stream_->Read(message);
}

void WebSocketStream::Cancel() { context_->TryCancel(); }

absl::Status WebSocketStream::Finish() {
  if (finished_) return absl::FailedPreconditionError("already finished");
  finished_ = true;
  return FromGrpcStatus(stream_->Finish(),
                        context_->GetServerTrailingMetadata());
}

}  // namespace fetchd::client
