// The WebSocket bridge through the real service: WebSocketServiceImpl on a
// gRPC server on 127.0.0.1:0, the Beast transport, FetchMetrics, and
// FetchClient::OpenWebSocket, against a real WebSocket server (ws and wss
// with a test CA).
#include "service/ws/ws_service.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "client/fetch_client.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/websocket.pb.h"
#include "gtest/gtest.h"
#include "service/config/server_config.h"
#include "service/server/fetchd_server.h"
#include "tests/metrics/exposition.h"
#include "tests/testing/test_pki.h"
#include "tests/ws/ws_echo_server.h"

namespace fetchd::ws {
namespace {

using fetch::v1::WsOpen;
using fetch::v1::WsServerMessage;
using fetchd::testing::ParseExposition;
using fetchd::testing::Sum;
using fetchd::testing::WsEchoServer;

constexpr absl::Duration kWait = absl::Seconds(10);

class WsServiceTest : public ::testing::Test {
 protected:
  WsServiceTest() : config_(config::DefaultServerConfig()) {
    config_.set_listen("127.0.0.1:0");
    config_.mutable_policy()->add_allow()->set_cidr("127.0.0.0/8");
    config_.mutable_policy()->add_allow()->set_cidr("::1");
  }
  ~WsServiceTest() override { Stop(); }

  // The production wiring (server::FetchdServer), WebSockets included.
  void Start() {
    ASSERT_TRUE(config::ValidateServerConfig(config_).ok())
        << config::ValidateServerConfig(config_);
    server::FetchdServer::Options options;
    options.serve_metrics = false;
    auto server = server::FetchdServer::Start(config_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto client = client::FetchClient::Connect(server_->address());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void Stop() {
    client_.reset();
    server_.reset();
  }

  std::unique_ptr<client::WebSocketStream> Open(const WsOpen& open) {
    auto ws = client_->OpenWebSocket(open, absl::Now() + absl::Seconds(30));
    EXPECT_TRUE(ws.ok()) << ws.status();
    return ws.ok() ? *std::move(ws) : nullptr;
  }

  static WsOpen OpenOf(const std::string& url) {
    WsOpen open;
    open.set_url(url);
    return open;
  }

  // The next message, which must be a frame.
  static WsServerMessage ReadFrame(client::WebSocketStream& ws) {
    WsServerMessage m;
    EXPECT_TRUE(ws.Read(&m));
    EXPECT_TRUE(m.has_frame()) << m.DebugString();
    return m;
  }

  // Reads to the end: the close, then the stream's end with OK.
  static fetch::v1::WsClose ReadClose(client::WebSocketStream& ws) {
    WsServerMessage m;
    EXPECT_TRUE(ws.Read(&m));
    EXPECT_TRUE(m.has_close()) << m.DebugString();
    WsServerMessage extra;
    EXPECT_FALSE(ws.Read(&extra)) << extra.DebugString();
    EXPECT_TRUE(ws.Finish().ok());
    return m.close();
  }

  double Metric(const std::string& name,
                const std::map<std::string, std::string>& labels = {}) {
    return Sum(ParseExposition(server_->metrics().Render()), name, labels);
  }

  void ExpectEcho(const std::string& base_url, WsOpen open) {
    open.set_url(base_url + "/echo");
    open.add_subprotocols("echo.v1");
    auto ws = Open(open);
    ASSERT_NE(ws, nullptr);
    ASSERT_TRUE(ws->handshake().ok()) << ws->handshake().DebugString();
    EXPECT_EQ(ws->handshake().status(), 101u);
    EXPECT_EQ(ws->handshake().subprotocol(), "echo.v1");
    EXPECT_EQ(ws->handshake().remote_address().rfind("127.0.0.1:", 0), 0u);

    ASSERT_TRUE(ws->SendText("hello").ok());
    EXPECT_EQ(ReadFrame(*ws).frame().text(), "hello");
    const std::string binary("\0\1\2\xff", 4);
    ASSERT_TRUE(ws->SendBinary(binary).ok());
    EXPECT_EQ(ReadFrame(*ws).frame().binary(), binary);
    std::string big(1 << 20, 'x');
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i);
    ASSERT_TRUE(ws->SendBinary(big).ok());
    const WsServerMessage echoed = ReadFrame(*ws);
    EXPECT_TRUE(echoed.frame().has_binary());
    EXPECT_EQ(echoed.frame().binary(), big);

    ASSERT_TRUE(ws->Close(1000, "done").ok());
    const fetch::v1::WsClose close = ReadClose(*ws);
    EXPECT_EQ(close.code(), 1000u);
    EXPECT_EQ(close.initiator(), "client");
    EXPECT_EQ(close.error(), fetch::v1::ERROR_KIND_NONE);
  }

  fetch::v1::ServerConfig config_;
  std::unique_ptr<server::FetchdServer> server_;
  std::unique_ptr<client::FetchClient> client_;
};

TEST_F(WsServiceTest, EchoesTextAndBinaryOverWs) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  Start();
  ExpectEcho((*server)->base_url(), WsOpen());
  EXPECT_EQ((*server)->NextClientClose(kWait), 1000);

  EXPECT_EQ(Metric("fetch_websocket_frames_total", {{"direction", "sent"}}), 3);
  EXPECT_EQ(Metric("fetch_websocket_frames_total", {{"direction", "received"}}),
            3);
  EXPECT_EQ(Metric("fetch_websocket_bytes_total", {{"direction", "sent"}}),
            5 + 4 + (1 << 20));
  EXPECT_EQ(Metric("fetch_websocket_closes_total", {{"code", "1000"}}), 1);
  EXPECT_EQ(Metric("fetch_websockets_open"), 0);
}

TEST_F(WsServiceTest, EchoesOverWssWithATestCa) {
  std::string dir =
      (std::filesystem::temp_directory_path() / "ws_tls.XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto pki = fetchd::testing::TestPki::Create(dir, {});
  ASSERT_TRUE(pki.ok()) << pki.status();
  auto server = WsEchoServer::Start(pki->server_cert, pki->server_key);
  ASSERT_TRUE(server.ok()) << server.status();
  Start();
  WsOpen open;
  open.mutable_tls()->set_ca_cert_pem(
      fetchd::testing::ReadTextFile(pki->ca_cert));
  ExpectEcho((*server)->base_url(), open);
  EXPECT_EQ((*server)->NextClientClose(kWait), 1000);

  // Without the test CA the target's certificate is not trusted.
  auto ws = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(ws, nullptr);
  EXPECT_FALSE(ws->handshake().ok());
  EXPECT_EQ(ws->handshake().error(), fetch::v1::ERROR_KIND_TLS)
      << ws->handshake().DebugString();
  EXPECT_EQ(
      Metric("fetch_websocket_handshake_failures_total", {{"kind", "tls"}}), 1);
  std::filesystem::remove_all(dir);
}

TEST_F(WsServiceTest, ServerInitiatedClose) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  auto ws = Open(OpenOf((*server)->base_url() + "/close"));
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->handshake().ok());
  ASSERT_TRUE(ws->SendText("x").ok());
  const fetch::v1::WsClose close = ReadClose(*ws);
  EXPECT_EQ(close.code(), 4000u);
  EXPECT_EQ(close.reason(), "bye");
  EXPECT_EQ(close.initiator(), "target");
  EXPECT_EQ(Metric("fetch_websocket_closes_total", {{"code", "4xxx"}}), 1);
}

TEST_F(WsServiceTest, HandshakeRejectedWith403) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  auto ws = Open(OpenOf((*server)->base_url() + "/reject"));
  ASSERT_NE(ws, nullptr);
  EXPECT_FALSE(ws->handshake().ok());
  EXPECT_EQ(ws->handshake().status(), 403u);
  EXPECT_EQ(ws->handshake().error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  WsServerMessage m;
  EXPECT_FALSE(ws->Read(&m));
  EXPECT_TRUE(ws->Finish().ok());
  EXPECT_EQ(Metric("fetch_websocket_handshake_failures_total",
                   {{"kind", "http_status"}}),
            1);
}

TEST_F(WsServiceTest, DestinationDeniedByPolicy) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  config_.mutable_policy()->clear_allow();  // loopback denied, the default
  Start();
  for (const std::string& url :
       {(*server)->base_url() + "/echo",
        "ws://localhost:" + std::to_string((*server)->port()) + "/echo",
        "http://127.0.0.1:" + std::to_string((*server)->port()) + "/echo"}) {
    auto ws = Open(OpenOf(url));
    ASSERT_NE(ws, nullptr);
    EXPECT_FALSE(ws->handshake().ok()) << url;
    EXPECT_EQ(ws->handshake().error(), fetch::v1::ERROR_KIND_DENIED) << url;
    EXPECT_TRUE(ws->Finish().ok());
  }
  EXPECT_EQ((*server)->connections(), 0);
  EXPECT_EQ(Metric("fetch_denied_total", {{"rule", "loopback"}}), 1);
  EXPECT_EQ(Metric("fetch_denied_total", {{"rule", "scheme"}}), 1);
  EXPECT_EQ(
      Metric("fetch_websocket_handshake_failures_total", {{"kind", "denied"}}),
      3);
}

TEST_F(WsServiceTest, CallerOffItsAllowedHostsIsDenied) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  config_.mutable_auth()->mutable_default_caller()->add_allowed_hosts(
      "example.org");
  Start();
  auto ws = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ(ws->handshake().error(), fetch::v1::ERROR_KIND_DENIED);
  EXPECT_NE(ws->handshake().error_message().find("allowed_hosts"),
            std::string::npos);
  EXPECT_EQ((*server)->connections(), 0);
}

TEST_F(WsServiceTest, CallerCancelClosesTheUpstreamSocket) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  auto ws = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->handshake().ok());
  ASSERT_TRUE(ws->SendText("ping").ok());
  EXPECT_EQ(ReadFrame(*ws).frame().text(), "ping");
  ws->Cancel();
  EXPECT_EQ((*server)->NextClientClose(kWait), 1001);
  EXPECT_EQ(ws->Finish().code(), absl::StatusCode::kCancelled);
}

TEST_F(WsServiceTest, IdleTimeoutClosesWith1001) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  WsOpen open = OpenOf((*server)->base_url() + "/silent");
  open.mutable_idle_timeout()->set_nanos(200'000'000);
  auto ws = Open(open);
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->handshake().ok());
  const fetch::v1::WsClose close = ReadClose(*ws);
  EXPECT_EQ(close.code(), 1001u);
  EXPECT_EQ(close.initiator(), "fetchd");
  EXPECT_EQ(close.error(), fetch::v1::ERROR_KIND_READ_TIMEOUT);
  EXPECT_EQ((*server)->NextClientClose(kWait), 1001);
}

TEST_F(WsServiceTest, MessageOverTheLimitFromTheTargetCloses1009) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  WsOpen open = OpenOf((*server)->base_url() + "/big");
  open.set_max_message_bytes(1000);
  auto ws = Open(open);
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->SendText("1000").ok());
  EXPECT_EQ(ReadFrame(*ws).frame().binary().size(), 1000u);
  ASSERT_TRUE(ws->SendText("1001").ok());
  const fetch::v1::WsClose close = ReadClose(*ws);
  EXPECT_EQ(close.code(), 1009u);
  EXPECT_EQ(close.error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
}

TEST_F(WsServiceTest, InvalidOpenIsInvalidArgument) {
  Start();
  WsOpen open = OpenOf("ws://127.0.0.1:1/echo");
  auto* header = open.add_headers();
  header->set_name("Upgrade");
  header->set_value("h2c");
  auto ws = client_->OpenWebSocket(open);
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ws.status().message().find("open.headers[0]"), std::string::npos)
      << ws.status();
}

TEST_F(WsServiceTest, CallerQuotaIsResourceExhausted) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  config_.mutable_auth()->mutable_default_caller()->set_max_active_calls(1);
  Start();
  auto first = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->handshake().ok());
  auto second = client_->OpenWebSocket(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(WsServiceTest, PerHostLimitMakesTheNextOneWait) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  config_.mutable_limits()->set_max_per_host(1);
  Start();
  auto first = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->handshake().ok());
  WsOpen open = OpenOf((*server)->base_url() + "/echo");
  open.mutable_handshake_timeout()->set_nanos(300'000'000);
  auto second = Open(open);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->handshake().error(), fetch::v1::ERROR_KIND_QUEUE_TIMEOUT)
      << second->handshake().DebugString();
  EXPECT_EQ((*server)->connections(), 1);
}

TEST_F(WsServiceTest, DrainRefusesNewCallsAndClosesOpenOnesWith1001) {
  auto server = WsEchoServer::Start();
  ASSERT_TRUE(server.ok());
  Start();
  auto ws = Open(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->handshake().ok());
  server_->gate().StartDraining();
  auto refused =
      client_->OpenWebSocket(OpenOf((*server)->base_url() + "/echo"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  // Still open while draining.
  ASSERT_TRUE(ws->SendText("still").ok());
  EXPECT_EQ(ReadFrame(*ws).frame().text(), "still");
  server_->gate().CancelAll();
  const fetch::v1::WsClose close = ReadClose(*ws);
  EXPECT_EQ(close.code(), 1001u);
  EXPECT_EQ(close.error(), fetch::v1::ERROR_KIND_CANCELLED);
  EXPECT_EQ((*server)->NextClientClose(kWait), 1001);
}

}  // namespace
}  // namespace fetchd::ws
