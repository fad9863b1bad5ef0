// CheckOpen (the `open` message's rules) and the websocket config's
// validation: tables, no I/O.
#include "service/ws/ws_open.h"

#include <string>

#include "fetch/v1/config.pb.h"
#include "gtest/gtest.h"
#include "service/config/server_config.h"
#include "service/policy/policy_config.h"

namespace fetchd::ws {
namespace {

class WsOpenTest : public ::testing::Test {
 protected:
  WsOpenTest() : config_(config::DefaultServerConfig()) {
    config_.mutable_policy()->add_allow()->set_cidr("127.0.0.0/8");
  }
  absl::StatusOr<WsOpenParams> Check(const fetch::v1::WsOpen& open,
                                     std::string* category = nullptr) {
    auto gate = policy::DestinationGateFromConfig(config_.policy());
    EXPECT_TRUE(gate.ok()) << gate.status();
    return CheckOpen(open, config_.websocket(), **gate, nullptr, category);
  }
  fetch::v1::ServerConfig config_;
};

TEST_F(WsOpenTest, ParsesTargetAndAppliesDefaults) {
  fetch::v1::WsOpen open;
  open.set_url("WSS://Example.ORG/chat?room=1#frag");
  auto params = Check(open);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_TRUE(params->target.tls);
  EXPECT_EQ(params->target.host, "example.org");
  EXPECT_EQ(params->target.port, 443);
  EXPECT_EQ(params->target.target, "/chat?room=1");
  EXPECT_EQ(params->target.host_key, "wss://example.org:443");
  EXPECT_EQ(params->idle_timeout, absl::Minutes(5));
  EXPECT_EQ(params->max_message_bytes, 16u << 20);

  open.set_url("ws://[::1]:8080");
  config_.mutable_policy()->add_allow()->set_cidr("::1");
  params = Check(open);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->target.host, "::1");
  EXPECT_EQ(params->target.target, "/");
}

TEST_F(WsOpenTest, RejectsBadFieldsNamingThem) {
  struct Case {
    std::string url;
    std::string header;
    int64_t idle_seconds;
    std::string expected;
  } cases[] = {
      {"", "", 0, "open.url: is required"},
      {"ws://a b/", "", 0, "open.url:"},
      {"ws://u:p@example.org/", "", 0, "open.url:"},
      {"ws://example.org/", "Sec-WebSocket-Key", 0, "open.headers[0]"},
      {"ws://example.org/", "Bad Name", 0, "open.headers[0]"},
      {"ws://example.org/", "", 7200, "open.idle_timeout: must be at most"},
  };
  for (const Case& c : cases) {
    fetch::v1::WsOpen open;
    open.set_url(c.url);
    if (!c.header.empty()) {
      open.add_headers()->set_name(c.header);
    }
    open.mutable_idle_timeout()->set_seconds(c.idle_seconds);
    auto params = Check(open);
    ASSERT_FALSE(params.ok()) << c.url;
    EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(params.status().message().find(c.expected), std::string::npos)
        << params.status();
  }
}

TEST_F(WsOpenTest, SchemeAndPolicyDenialsCarryTheCategory) {
  config_.mutable_policy()->clear_allow();
  for (const auto& [url, category] :
       std::vector<std::pair<std::string, std::string>>{
           {"https://example.org/", "scheme"},
           {"ws://127.0.0.1:9/", "loopback"},
           {"ws://2130706433/", "loopback"},
           {"ws://localhost/", "host"}}) {
    fetch::v1::WsOpen open;
    open.set_url(url);
    std::string got;
    auto params = Check(open, &got);
    ASSERT_FALSE(params.ok()) << url;
    EXPECT_EQ(params.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(got, category) << url;
  }
}

TEST(WsConfigTest, ValidationNamesTheField) {
  fetch::v1::ServerConfig c = config::DefaultServerConfig();
  c.mutable_websocket()->set_max_open(0);
  EXPECT_NE(config::ValidateServerConfig(c).message().find(
                "websocket.max_open: must be between 1"),
            std::string::npos);
  c = config::DefaultServerConfig();
  c.mutable_websocket()->mutable_default_idle_timeout()->set_seconds(7200);
  EXPECT_NE(config::ValidateServerConfig(c).message().find(
                "websocket.default_idle_timeout: must not exceed"),
            std::string::npos);
  c = config::DefaultServerConfig();
  c.mutable_websocket()->set_max_message_bytes(0);
  EXPECT_NE(config::ValidateServerConfig(c).message().find(
                "websocket.max_message_bytes"),
            std::string::npos);
}

}  // namespace
}  // namespace fetchd::ws
