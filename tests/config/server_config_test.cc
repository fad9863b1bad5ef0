#include "service/config/server_config.h"

#include <fstream>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/common/proto_duration.h"

namespace fetchd::config {
namespace {

using fetch::v1::ServerConfig;
using google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

// `config` with `json` laid over it; the merge must succeed.
ServerConfig MustMerge(const ServerConfig& config, const std::string& json) {
  absl::StatusOr<ServerConfig> merged = MergeJsonConfig(config, json);
  EXPECT_TRUE(merged.ok()) << merged.status();
  return merged.ok() ? *merged : config;
}

std::string WriteTempFile(const std::string& name,
                          const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << contents;
  return path;
}

TEST(ServerConfigTest, DefaultsAreValid) {
  const ServerConfig config = DefaultServerConfig();
  EXPECT_TRUE(ValidateServerConfig(config).ok())
      << ValidateServerConfig(config);
  EXPECT_EQ(config.listen(), "127.0.0.1:50051");
  EXPECT_EQ(config.workers(), 0u);  // automatic
  ServerConfig resolved = config;
  ResolveAutoValues(&resolved);
  EXPECT_GE(resolved.workers(), 1u);
  EXPECT_LE(resolved.workers(), 256u);
  EXPECT_EQ(config.limits().max_per_host(), 16u);
  EXPECT_EQ(config.limits().max_in_flight(), 1024u);
  EXPECT_EQ(FromProto(config.request_defaults().timeouts().total()),
            absl::Seconds(30));
  EXPECT_EQ(config.request_defaults().retry().max_attempts(), 3u);
  EXPECT_EQ(FromProto(config.request_bounds().max_total_timeout()),
            absl::Seconds(300));
}

TEST(ServerConfigTest, JsonOverridesOnlyTheFieldsItNames) {
  const ServerConfig base = DefaultServerConfig();
  const struct {
    std::string name;
    std::string json;
  } kCases[] = {
      {"snake_case",
       R"({"listen": "0.0.0.0:9000",
           "limits": {"max_per_host": 4},
           "request_defaults": {"timeouts": {"total": "12s"},
                                "retry": {"max_attempts": 5}}})"},
      {"camelCase",
       R"({"listen": "0.0.0.0:9000",
           "limits": {"maxPerHost": 4},
           "requestDefaults": {"timeouts": {"total": "12s"},
                               "retry": {"maxAttempts": 5}}})"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const ServerConfig merged = MustMerge(base, c.json);
    EXPECT_EQ(merged.listen(), "0.0.0.0:9000");
    EXPECT_EQ(merged.limits().max_per_host(), 4u);
    EXPECT_EQ(FromProto(merged.request_defaults().timeouts().total()),
              absl::Seconds(12));
    EXPECT_EQ(merged.request_defaults().retry().max_attempts(), 5u);

    // Everything else is the base's.
    ServerConfig expected = base;
    expected.set_listen("0.0.0.0:9000");
    expected.mutable_limits()->set_max_per_host(4);
    *expected.mutable_request_defaults()->mutable_timeouts()->mutable_total() =
        ToProto(absl::Seconds(12));
    expected.mutable_request_defaults()->mutable_retry()->set_max_attempts(5);
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(expected, merged)) << diff;
  }
}

TEST(ServerConfigTest, EmptyJsonObjectChangesNothing) {
  const ServerConfig base = DefaultServerConfig();
  EXPECT_TRUE(MessageDifferencer::Equals(MustMerge(base, "{}"), base));
}

// A duration in the file replaces the default as a whole: "0.5s" over the
// default 30s is 500ms, not 30.5s.
TEST(ServerConfigTest, JsonDurationsReplaceTheDefault) {
  const ServerConfig merged = MustMerge(DefaultServerConfig(), R"({
      "request_defaults": {"timeouts": {"total": "0.5s"},
                           "retry": {"base_backoff": "2s"}},
      "request_bounds": {"max_total_timeout": "120.250s"}})");
  EXPECT_EQ(FromProto(merged.request_defaults().timeouts().total()),
            absl::Milliseconds(500));
  EXPECT_EQ(FromProto(merged.request_defaults().retry().base_backoff()),
            absl::Seconds(2));
  EXPECT_EQ(FromProto(merged.request_bounds().max_total_timeout()),
            absl::Milliseconds(120250));
}

TEST(ServerConfigTest, BadJsonIsRejected) {
  const struct {
    std::string name;
    std::string json;
  } kCases[] = {
      {"unknown top-level field", R"({"listen": "a:1", "bogus": 1})"},
      {"unknown nested field", R"({"limits": {"max_per_hots": 4}})"},
      {"malformed", R"({"listen": )"},
      {"not an object", "[]"},
      {"wrong type", R"({"workers": "many"})"},
      {"bad duration", R"({"request_bounds": {"max_backoff": "ten"}})"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<ServerConfig> merged =
        MergeJsonConfig(DefaultServerConfig(), c.json);
    ASSERT_FALSE(merged.ok());
    EXPECT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(merged.status().message().empty());
  }
}

TEST(ServerConfigTest, UnknownFieldErrorNamesTheField) {
  const absl::StatusOr<ServerConfig> merged =
      MergeJsonConfig(DefaultServerConfig(), R"({"max_per_hots": 4})");
  ASSERT_FALSE(merged.ok());
  EXPECT_THAT(Message(merged.status()), HasSubstr("max_per_hots"));
}

TEST(ServerConfigTest, LoadConfigFileReadsAndMerges) {
  const std::string path =
      WriteTempFile("server_config_test_good.json",
                    R"({"workers": 3, "limits": {"stream_window": 8}})");
  const absl::StatusOr<ServerConfig> loaded =
      LoadConfigFile(DefaultServerConfig(), path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->workers(), 3u);
  EXPECT_EQ(loaded->limits().stream_window(), 8u);
  EXPECT_EQ(loaded->limits().max_per_host(), 16u);
}

TEST(ServerConfigTest, LoadConfigFileErrorsNameThePath) {
  const std::string missing =
      ::testing::TempDir() + "server_config_test_does_not_exist.json";
  absl::StatusOr<ServerConfig> loaded =
      LoadConfigFile(DefaultServerConfig(), missing);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(loaded.status()), StartsWith(missing));

  const std::string bad =
      WriteTempFile("server_config_test_bad.json", R"({"nope": true})");
  loaded = LoadConfigFile(DefaultServerConfig(), bad);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(loaded.status()),
              AllOf(StartsWith(bad + ": "), HasSubstr("nope")));
}

TEST(ServerConfigTest, ValidationNamesTheFieldAndTheRule) {
  const struct {
    std::string name;
    std::function<void(ServerConfig&)> mutate;
    std::string message;  // Empty: valid.
  } kCases[] = {
      {"workers 0 (automatic)", [](ServerConfig& c) { c.set_workers(0); }, ""},
      {"workers 1", [](ServerConfig& c) { c.set_workers(1); }, ""},
      {"workers 256", [](ServerConfig& c) { c.set_workers(256); }, ""},
      {"workers 1000", [](ServerConfig& c) { c.set_workers(1000); },
       "workers: must be between 0 and 256, got 1000"},
      {"max_per_host 0",
       [](ServerConfig& c) { c.mutable_limits()->set_max_per_host(0); },
       "limits.max_per_host: must be between 1 and 100000, got 0"},
      {"max_in_flight 0",
       [](ServerConfig& c) { c.mutable_limits()->set_max_in_flight(0); },
       "limits.max_in_flight: must be between 1 and 1000000, got 0"},
      {"stream_window 0",
       [](ServerConfig& c) { c.mutable_limits()->set_stream_window(0); },
       "limits.stream_window: must be between 1 and 1000000, got 0"},
      {"listen nonsense", [](ServerConfig& c) { c.set_listen("nonsense"); },
       "listen: must be host:port, got \"nonsense\""},
      {"listen empty", [](ServerConfig& c) { c.set_listen(""); },
       "listen: must be host:port, got \"\""},
      {"listen without port", [](ServerConfig& c) { c.set_listen("host:"); },
       "listen: must be host:port, got \"host:\""},
      {"listen without host", [](ServerConfig& c) { c.set_listen(":80"); },
       "listen: must be host:port, got \":80\""},
      {"listen port 0", [](ServerConfig& c) { c.set_listen("127.0.0.1:0"); },
       ""},
      {"listen IPv6", [](ServerConfig& c) { c.set_listen("[::1]:50051"); }, ""},
      {"max_batch_size over max_pending",
       [](ServerConfig& c) {
         c.mutable_limits()->set_max_pending(100);
         c.mutable_limits()->set_max_batch_size(101);
       },
       "limits.max_batch_size: must not exceed limits.max_pending"},
      {"max_batch_size equal to max_pending",
       [](ServerConfig& c) {
         c.mutable_limits()->set_max_pending(100);
         c.mutable_limits()->set_max_batch_size(100);
       },
       ""},
      {"zero max_total_timeout",
       [](ServerConfig& c) {
         *c.mutable_request_bounds()->mutable_max_total_timeout() =
             ToProto(absl::ZeroDuration());
       },
       "request_bounds.max_total_timeout: must be a positive duration"},
      {"missing max_retry_after",
       [](ServerConfig& c) {
         c.mutable_request_bounds()->clear_max_retry_after();
       },
       "request_bounds.max_retry_after: must be a positive duration"},
      {"negative max_backoff",
       [](ServerConfig& c) {
         *c.mutable_request_bounds()->mutable_max_backoff() =
             ToProto(absl::Seconds(-1));
       },
       "request_bounds.max_backoff: must be a positive duration"},
      {"max_attempts 0",
       [](ServerConfig& c) { c.mutable_request_bounds()->set_max_attempts(0); },
       "request_bounds.max_attempts: must be between 1 and 100, got 0"},
      {"max_url_bytes 15",
       [](ServerConfig& c) {
         c.mutable_request_bounds()->set_max_url_bytes(15);
       },
       "request_bounds.max_url_bytes: must be between 16 and 1048576, got 15"},
      {"request_defaults with a url",
       [](ServerConfig& c) {
         c.mutable_request_defaults()->set_url("http://a.test/");
       },
       "request_defaults: id and url must be empty"},
      {"max_chunk_bytes over 3 MiB",
       [](ServerConfig& c) {
         c.mutable_request_bounds()->set_max_chunk_bytes((3 << 20) + 1);
       },
       "request_bounds.max_chunk_bytes: must be between 1024 and 3145728, "
       "got 3145729"},
      {"stream buffer below a chunk",
       [](ServerConfig& c) {
         c.mutable_limits()->set_max_stream_buffer_bytes(1000);
       },
       "limits.max_stream_buffer_bytes: must be between 1048576 and "
       "4294967296, got 1000"},
      {"streaming by server default",
       [](ServerConfig& c) {
         c.mutable_request_defaults()->set_stream_body(true);
       },
       "request_defaults.stream_body: must not be set: callers ask for a "
       "streamed body per request or batch (the unary Fetch can't stream)"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    ServerConfig config = DefaultServerConfig();
    c.mutate(config);
    const absl::Status status = ValidateServerConfig(config);
    if (c.message.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Message(status), c.message);
    }
  }
}

TEST(ServerConfigTest, JsonRoundTrips) {
  ServerConfig config = DefaultServerConfig();
  config.set_workers(3);
  config.mutable_limits()->set_max_per_host(7);
  *config.mutable_request_defaults()->mutable_timeouts()->mutable_connect() =
      ToProto(absl::Milliseconds(1500));
  fetch::v1::Header* header = config.mutable_request_defaults()->add_headers();
  header->set_name("User-Agent");
  header->set_value("fetchd-test");
  config.mutable_request_defaults()->mutable_retry()->add_retry_on(
      fetch::v1::ERROR_KIND_TLS);
  config.mutable_request_defaults()->set_fail_on_http_error(false);

  const std::string json = ConfigToJson(config);
  // Field names as in the proto, which the documentation uses.
  EXPECT_THAT(
      json, AllOf(HasSubstr("\"max_per_host\""),
                  HasSubstr("\"request_defaults\""), HasSubstr("\"1.500s\"")));

  const absl::StatusOr<ServerConfig> parsed =
      MergeJsonConfig(ServerConfig(), json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(config, *parsed)) << diff;
  // An explicit false survives (optional field presence).
  EXPECT_TRUE(parsed->request_defaults().has_fail_on_http_error());
}

TEST(ServerConfigTest, LogLevelAndGrpcDefaultsAndValidation) {
  const ServerConfig defaults = DefaultServerConfig();
  EXPECT_EQ(defaults.log_level(), "info");
  EXPECT_EQ(FromProto(defaults.grpc().keepalive_time()), absl::Seconds(30));
  EXPECT_EQ(FromProto(defaults.grpc().keepalive_timeout()), absl::Seconds(10));
  EXPECT_FALSE(defaults.grpc().has_max_connection_age());  // Never.
  EXPECT_EQ(defaults.grpc().max_message_bytes(), 64u << 20);

  const struct {
    std::string name;
    std::function<void(ServerConfig&)> mutate;
    std::string message;  // Empty: valid.
  } kCases[] = {
      {"every log level",
       [](ServerConfig& c) {
         for (const char* level :
              {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
           c.set_log_level(level);
           EXPECT_TRUE(ValidateServerConfig(c).ok()) << level;
         }
       },
       ""},
      {"log level warning", [](ServerConfig& c) { c.set_log_level("warning"); },
       "log_level: must be one of trace, debug, info, warn, error, critical, "
       "off; got \"warning\""},
      {"log level empty", [](ServerConfig& c) { c.set_log_level(""); },
       "log_level: must be one of trace, debug, info, warn, error, critical, "
       "off; got \"\""},
      {"keepalive_time missing",
       [](ServerConfig& c) { c.mutable_grpc()->clear_keepalive_time(); },
       "grpc.keepalive_time: must be between 1ms and 596h31m23.647s, got 0"},
      {"keepalive_timeout negative",
       [](ServerConfig& c) {
         *c.mutable_grpc()->mutable_keepalive_timeout() =
             ToProto(absl::Seconds(-1));
       },
       "grpc.keepalive_timeout: must be between 1ms and 596h31m23.647s, got "
       "-1s"},
      {"keepalive_time too long for an int of ms",
       [](ServerConfig& c) {
         *c.mutable_grpc()->mutable_keepalive_time() =
             ToProto(absl::Hours(24 * 30));
       },
       "grpc.keepalive_time: must be between 1ms and 596h31m23.647s, got "
       "720h"},
      {"max_connection_age 5m",
       [](ServerConfig& c) {
         *c.mutable_grpc()->mutable_max_connection_age() =
             ToProto(absl::Minutes(5));
       },
       ""},
      {"max_connection_age sub-millisecond",
       [](ServerConfig& c) {
         *c.mutable_grpc()->mutable_max_connection_age() =
             ToProto(absl::Microseconds(10));
       },
       "grpc.max_connection_age: must be between 1ms and 596h31m23.647s, got "
       "10us"},
      {"max_message_bytes too small",
       [](ServerConfig& c) { c.mutable_grpc()->set_max_message_bytes(100); },
       "grpc.max_message_bytes: must be between 4096 and 2147483647, got 100"},
      {"max_message_bytes above INT32_MAX",
       [](ServerConfig& c) {
         c.mutable_grpc()->set_max_message_bytes(3000000000u);
       },
       "grpc.max_message_bytes: must be between 4096 and 2147483647, got "
       "3000000000"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    ServerConfig config = DefaultServerConfig();
    c.mutate(config);
    const absl::Status status = ValidateServerConfig(config);
    if (c.message.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Message(status), c.message);
    }
  }
}

TEST(ServerConfigTest, GrpcSettingsMergeFromJson) {
  const ServerConfig merged = MustMerge(DefaultServerConfig(), R"({
    "logLevel": "debug",
    "grpc": {"keepaliveTime": "60s", "maxConnectionAge": "300s",
             "maxMessageBytes": 1048576}})");
  EXPECT_EQ(merged.log_level(), "debug");
  EXPECT_EQ(FromProto(merged.grpc().keepalive_time()), absl::Seconds(60));
  EXPECT_EQ(FromProto(merged.grpc().keepalive_timeout()), absl::Seconds(10));
  EXPECT_EQ(FromProto(merged.grpc().max_connection_age()), absl::Minutes(5));
  EXPECT_EQ(merged.grpc().max_message_bytes(), 1048576u);
  EXPECT_TRUE(ValidateServerConfig(merged).ok());
}

TEST(ServerConfigTest, AuthSectionIsReadFromJsonAndValidated) {
  const std::string tokens =
      WriteTempFile("server_config_tokens", "svc-a svc-a-token-0123456789\n");
  const ServerConfig config = MustMerge(
      DefaultServerConfig(), R"({"auth": {"tokenFile": ")" + tokens + R"(",
                   "callers": [{"name": "svc-a", "maxPending": 100,
                                "maxActiveCalls": 4,
                                "allowedHosts": ["*.example.org"]}],
                   "defaultCaller": {"maxPending": 10}}})");
  EXPECT_TRUE(ValidateServerConfig(config).ok())
      << ValidateServerConfig(config);
  EXPECT_EQ(config.auth().callers(0).allowed_hosts(0), "*.example.org");
  EXPECT_EQ(config.auth().default_caller().max_pending(), 10u);

  ServerConfig bad = config;
  bad.mutable_auth()->mutable_callers(0)->add_allowed_hosts("a/b");
  EXPECT_THAT(Message(ValidateServerConfig(bad)),
              StartsWith("auth.callers[0].allowed_hosts[1]: "));
  bad = config;
  bad.mutable_auth()->set_tls_key_file("/nonexistent/key.pem");
  EXPECT_THAT(Message(ValidateServerConfig(bad)),
              StartsWith("auth.tls_cert_file: "));
}

}  // namespace
}  // namespace fetchd::config

namespace fetchd::config {
namespace {

// Each bad transport or policy setting is rejected naming the field.
TEST(ServerConfigTransportTest, BadSettingsNameTheField) {
  const struct {
    const char* json;
    const char* message;
  } kCases[] = {
      {R"({"transport": {"ipVersion": "ipv5"}})",
       "transport.ip_version: must be any, ipv4 or ipv6"},
      {R"({"transport": {"dnsCacheTtl": "100000s"}})",
       "transport.dns_cache_ttl: must be between 0 and 24h"},
      {R"({"transport": {"idleConnectionTimeout": "0s"}})",
       "transport.idle_connection_timeout"},
      {R"({"transport": {"proxy": {"url": "ftp://p:21"}}})",
       "transport.proxy.url: proxy URL scheme \"ftp\""},
      {R"({"transport": {"proxy": {"url": "http://u:p@proxy:3128"}}})",
       "transport.proxy.url: proxy URL has credentials"},
      {R"({"transport": {"proxy": {"username": "u"}}})",
       "transport.proxy: credentials without a url"},
      {R"({"transport": {"useEnvProxy": true, "proxy": {"url": "http://p:1"}}})",
       "transport.use_env_proxy"},
      {R"({"policy": {"allow": [{"cidr": "10.0.0.0/8", "ports": [70000]}]}})",
       "policy.allow[0].ports[0]: 70000 is not a port"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<fetch::v1::ServerConfig> merged =
        MergeJsonConfig(DefaultServerConfig(), c.json);
    ASSERT_TRUE(merged.ok()) << merged.status();
    const absl::Status status = ValidateServerConfig(*merged);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(c.message));
  }
  absl::StatusOr<fetch::v1::ServerConfig> good = MergeJsonConfig(
      DefaultServerConfig(),
      R"({"transport": {"ipVersion": "ipv4", "dnsCacheTtl": "0s",
                        "proxy": {"url": "socks5h://127.0.0.1:1080"}}})");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(ValidateServerConfig(*good).ok());
}

}  // namespace
}  // namespace fetchd::config
