// FetchClient: a synchronous C++ client for the fetch.v1.FetchService API.
//
// A FetchClient owns one gRPC channel to one fetchd server. All methods are
// thread-safe: several threads may run RPCs on the same client at once (each
// call has its own grpc::ClientContext). The client must outlive every RPC
// started on it, including RPCs started on stub() by the caller.
//
// Security: plaintext by default; TLS or mTLS and a bearer token per
// ClientOptions (see fetchd's auth config). The token is never part of an
// error message.
//
// Errors: every method returns absl::Status; a gRPC status is converted with
// its code and message unchanged. A failed URL is not an RPC error: it arrives
// as a FetchResult whose `error` is set (see fetch.proto).
#ifndef FETCHD_CLIENT_FETCH_CLIENT_H_
#define FETCHD_CLIENT_FETCH_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "fetch/v1/websocket.grpc.pb.h"
#include "fetch/v1/websocket.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/channel.h"

namespace fetchd::client {

// The service name under which fetchd reports FetchService's health
// (grpc.health.v1); "" is the whole server.
inline constexpr char kFetchServiceHealthName[] = "fetch.v1.FetchService";

struct ClientOptions {
  // TLS to fetchd. Off: plaintext (the default). On: the server's
  // certificate is verified against `ca_cert_pem`, or the system's roots
  // when it is empty.
  bool tls = false;
  // PEM CA certificates for the server's certificate. Implies tls.
  std::string ca_cert_pem;
  // PEM client certificate chain and private key, for an mTLS server. Both
  // or neither. Imply tls.
  std::string client_cert_pem;
  std::string client_key_pem;
  // Name to verify the server's certificate against instead of the
  // target's host (gRPC's ssl_target_name_override); for tests and
  // addresses the certificate doesn't list.
  std::string tls_server_name;
  // Bearer token sent with every call as "authorization: Bearer TOKEN".
  // Empty: none. Sent over plaintext too when tls is off (then anyone on
  // the path can read it).
  std::string bearer_token;
  // Longest time Connect() waits for the channel to become ready.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Largest response message accepted from the server (gRPC's default is
  // 4 MiB; a FetchResult carries a whole response body).
  int max_receive_message_bytes = 64 << 20;
};

// One WebSocket through fetchd (fetch.v1.WebSocketService), made by
// FetchClient::OpenWebSocket(). One thread may Read() while another sends
// (Send*, Close); no two threads may send at once, nor read at once.
// Destroying it before Finish() cancels the call, and fetchd then closes
// the WebSocket with 1001.
class WebSocketStream {
 public:
  ~WebSocketStream();
  WebSocketStream(const WebSocketStream&) = delete;
  WebSocketStream& operator=(const WebSocketStream&) = delete;

  // fetchd's handshake answer; when !handshake().ok() the stream is over
  // (Read() returns false, Finish() is OK).
  const fetch::v1::WsHandshake& handshake() const { return handshake_; }

  // Errors: UNAVAILABLE when the stream is broken or closed for writes.
  absl::Status SendText(std::string text);
  absl::Status SendBinary(std::string data);
  // Starts the closing handshake; the target's close then arrives as the
  // last message. `code` 0 means 1000.
  absl::Status Close(uint32_t code = 1000, std::string reason = "");
  absl::Status Send(const fetch::v1::WsClientMessage& message);
  // Tells fetchd nothing more will be sent (a 1000 close, unless one was
  // sent).
  void WritesDone();

  // The next frame, or the close (the last message). False at the end of
  // the stream.
  bool Read(fetch::v1::WsServerMessage* message);
  // Cancels the call (from any thread).
  void Cancel();
  // The call's status, once Read() returned false.
  absl::Status Finish();

 private:
  friend class FetchClient;
  WebSocketStream() = default;

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<fetch::v1::WsClientMessage,
                                           fetch::v1::WsServerMessage>>
      stream_;
  fetch::v1::WsHandshake handshake_;
  bool writes_done_ = false;
  bool finished_ = false;
};

// One FetchStream call, made by FetchClient::OpenFetchStream(): a writer
// the caller pushes requests into and a reader of results. Send() blocks
// while fetchd has no room for more (gRPC flow control: fetchd reads only
// while fewer than limits.stream_window of the stream's requests are
// without a written result), so a fast producer is held back, not
// buffered. Typically one thread sends then calls WritesDone() while
// another reads until Read() returns false, then calls Finish(). No two
// threads may send at once, nor read at once. Destroying it before
// Finish() cancels the call.
class FetchStreamCall {
 public:
  ~FetchStreamCall();
  FetchStreamCall(const FetchStreamCall&) = delete;
  FetchStreamCall& operator=(const FetchStreamCall&) = delete;

  // Sends `requests` as one message; they are numbered on from the
  // previous ones (FetchResult.index). Errors: UNAVAILABLE when the stream
  // is closed for writes or broken (Finish() then says why).
  absl::Status Send(std::vector<fetch::v1::FetchRequest> requests);
  absl::Status Send(const fetch::v1::FetchStreamRequest& message);
  // No more requests; fetchd ends the stream after their results.
  void WritesDone();

  // The next event (results, streamed bodies); false at the end of the
  // stream.
  bool Read(fetch::v1::FetchEvent* event);
  // Cancels the call (from any thread).
  void Cancel();
  // The call's status, once Read() returned false: OK when every request
  // sent has its result; errors as for FetchClient::FetchBatch().
  absl::Status Finish();

 private:
  friend class FetchClient;
  FetchStreamCall() = default;

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<fetch::v1::FetchStreamRequest,
                                           fetch::v1::FetchEvent>>
      stream_;
  // The first message carries the options.
  fetch::v1::BatchRequest options_;
  bool sent_first_ = false;
  bool writes_done_ = false;
  bool finished_ = false;
};

class FetchClient {
 public:
  // Opens a channel to `target` ("host:port" or any gRPC target URI),
  // plaintext or TLS as `options` say, and waits up to
  // options.connect_timeout for it to be ready. A TLS handshake that fails
  // (untrusted server, no or a rejected client certificate) leaves the
  // channel not ready.
  //
  // Errors: INVALID_ARGUMENT if `target` is empty or the options are out of
  // range (a client certificate without its key or the reverse);
  // UNAVAILABLE, naming the target, if the channel is not ready in time.
  static absl::StatusOr<std::unique_ptr<FetchClient>> Connect(
      const std::string& target, const ClientOptions& options = {});

  // Connect(), waiting no later than `deadline` either (the deadline of
  // the call the caller is about to make, so that it bounds connecting
  // too). Errors as for Connect(), plus DEADLINE_EXCEEDED, naming the
  // target, if `deadline` passes before the channel is ready (and before
  // options.connect_timeout does).
  static absl::StatusOr<std::unique_ptr<FetchClient>> Connect(
      const std::string& target, const ClientOptions& options,
      absl::Time deadline);

  FetchClient(const FetchClient&) = delete;
  FetchClient& operator=(const FetchClient&) = delete;
  ~FetchClient();

  // Runs the FetchBatch RPC and calls `on_event` for every event as it
  // arrives, on the calling thread, before returning. `on_event` must not
  // call back into this RPC; the event it receives is valid only during the
  // call.
  //
  // Returns the RPC's final status: OK once every request has its result
  // (whatever those results are), otherwise the server's or the transport's
  // status with its code and message. When the server sends a
  // "retry-after-ms" trailer (RESOURCE_EXHAUSTED), its value is appended to
  // the message as "(retry-after-ms: N)". Events delivered before a failure
  // remain valid results.
  absl::Status FetchBatch(
      const fetch::v1::BatchRequest& request,
      absl::FunctionRef<void(const fetch::v1::FetchEvent&)> on_event,
      absl::Time deadline = absl::InfiniteFuture());

  // Fetches one request with its body streamed (FetchRequest.stream_body is
  // set on a copy of `request`): `on_head` gets the response's BodyHead
  // (when a response came), then `on_data` every piece of the body in
  // order, as they arrive; both run on the calling thread. Returns the
  // final FetchResult, without a body; a failed URL is a result with its
  // error set, and the data received before the failure has been passed to
  // `on_data`. fetchd reads the body only as fast as the callbacks return,
  // so a slow consumer holds a bounded amount of it in fetchd.
  //
  // An error returned by `on_data` cancels the RPC and is returned as is.
  // Errors otherwise as for FetchBatch(), plus INTERNAL if fetchd's events
  // are out of order (a chunk before the head, a gap or overlap in offsets,
  // no result).
  absl::StatusOr<fetch::v1::FetchResult> FetchStreamed(
      const fetch::v1::FetchRequest& request,
      absl::FunctionRef<void(const fetch::v1::BodyHead&)> on_head,
      absl::FunctionRef<absl::Status(absl::string_view data)> on_data,
      absl::Time deadline = absl::InfiniteFuture());

  // FetchStreamed() of the one request of `one_request`, with the batch's
  // defaults and options (cookies, cookie jar, ...) applied as fetchd
  // applies them to any batch. Errors as for FetchStreamed(), plus
  // INVALID_ARGUMENT if `one_request` holds no request or more than one.
  absl::StatusOr<fetch::v1::FetchResult> FetchStreamed(
      const fetch::v1::BatchRequest& one_request,
      absl::FunctionRef<void(const fetch::v1::BodyHead&)> on_head,
      absl::FunctionRef<absl::Status(absl::string_view data)> on_data,
      absl::Time deadline = absl::InfiniteFuture());

  // Runs the unary Fetch RPC. A failed URL is an OK status with
  // FetchResult.error set; errors are as for FetchBatch().
  absl::StatusOr<fetch::v1::FetchResult> Fetch(
      const fetch::v1::FetchRequest& request,
      absl::Time deadline = absl::InfiniteFuture());

  // Runs grpc.health.v1.Health/Check for `service` and returns its serving
  // status: SERVING, or NOT_SERVING while fetchd drains. Errors as for
  // FetchBatch(); the server answers NOT_FOUND for a service it does not
  // know.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
  CheckHealth(const std::string& service,
              absl::Time deadline = absl::InfiniteFuture());

  // Opens a WebSocket through fetchd: sends `open` and waits for the
  // handshake result, which may be a failure (then handshake().ok() is
  // false and error says why: DENIED, CONNECT, TLS, HTTP_STATUS, ...).
  // Errors: the RPC's status when fetchd refuses the call itself
  // (UNAUTHENTICATED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE).
  absl::StatusOr<std::unique_ptr<WebSocketStream>> OpenWebSocket(
      const fetch::v1::WsOpen& open,
      absl::Time deadline = absl::InfiniteFuture());

  // Opens a FetchStream: `options` (a BatchRequest's defaults, ordered,
  // fail_fast, max_concurrency, cookie_jar, cookies, politeness; its
  // requests must be empty) go with the first message. The call starts at
  // once; refusals (UNAUTHENTICATED, RESOURCE_EXHAUSTED, UNAVAILABLE,
  // INVALID_ARGUMENT for bad options) come from Finish().
  std::unique_ptr<FetchStreamCall> OpenFetchStream(
      const fetch::v1::BatchRequest& options = {},
      absl::Time deadline = absl::InfiniteFuture());

  // The generated stub, for callers that need the async or callback API.
  // Owned by this client; thread-safe.
  fetch::v1::FetchService::Stub& stub() { return *stub_; }

 private:
  FetchClient(std::shared_ptr<grpc::Channel> channel, std::string bearer_token);
  // Deadline and credentials of one call.
  void Prepare(absl::Time deadline, grpc::ClientContext& context) const;

  std::shared_ptr<grpc::Channel> channel_;
  // "Bearer TOKEN", or empty.
  const std::string authorization_;
  std::unique_ptr<fetch::v1::FetchService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
  std::unique_ptr<fetch::v1::WebSocketService::Stub> ws_stub_;
};

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCH_CLIENT_H_
