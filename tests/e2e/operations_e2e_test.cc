// End-to-end tests of what an operator sees, through the real binaries:
// config from FETCHD_* variables, JSON logs on stdout, grpc.health.v1 (also
// while draining), server reflection, fetchctl health and the gRPC server
// settings.
#include <signal.h>

#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/fetch_client.h"
#include "fetch/v1/config.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/e2e/subprocess.h"

namespace fetchd::testing {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Deadline of one RPC made by a test.
constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

class OperationsE2eTest : public FetchdE2eTest {
 protected:
  // A client connected to our fetchd.
  std::unique_ptr<client::FetchClient> Connect() {
    absl::StatusOr<std::unique_ptr<client::FetchClient>> client =
        client::FetchClient::Connect(fetchd_address_);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Sends SIGTERM to fetchd and waits for it to end. Call with
  // ASSERT_NO_FATAL_FAILURE.
  void StopFetchd(ExitInfo* info) {
    ASSERT_TRUE(fetchd_->Signal(SIGTERM));
    *info = fetchd_->Wait(kProcessTimeout);
    EXPECT_EQ(info->exit_code, 0) << Describe(*info);
  }
};

// Parses `text` as one JSON object; fails the test if it is not one.
google::protobuf::Struct ParseJsonObject(absl::string_view text) {
  google::protobuf::Struct parsed;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &parsed);
  EXPECT_TRUE(status.ok()) << status.ToString() << ": " << text;
  return parsed;
}

std::string StringField(const google::protobuf::Struct& object,
                        const std::string& key) {
  const auto it = object.fields().find(key);
  return it == object.fields().end() ? "" : it->second.string_value();
}

// The "msg" of every line of fetchd's stdout, each of which must be a JSON
// log line.
std::vector<std::string> LogMessages(const std::string& stdout_text) {
  std::vector<std::string> messages;
  for (absl::string_view line :
       absl::StrSplit(stdout_text, '\n', absl::SkipEmpty())) {
    const google::protobuf::Struct object = ParseJsonObject(line);
    for (const char* key : {"ts", "level", "logger", "msg"}) {
      EXPECT_FALSE(StringField(object, key).empty())
          << "no \"" << key << "\" in " << line;
    }
    EXPECT_EQ(StringField(object, "logger"), "fetchd") << line;
    messages.push_back(StringField(object, "msg"));
  }
  return messages;
}

TEST_F(OperationsE2eTest, PrintConfigReflectsEnvOverridesBelowFlags) {
  const std::string path = WriteFile(
      "config.json",
      R"({"workers": 5, "limits": {"maxPerHost": 5, "streamWindow": 100}})");

  const ExitInfo info = RunFetchd(
      {"--print_config", "--workers=2"},
      {"FETCHD_CONFIG=" + path, "FETCHD_MAX_PER_HOST=7", "FETCHD_WORKERS=3",
       "FETCHD_LOG_LEVEL=debug", "FETCHD_DEFAULT_TIMEOUT=1.5s"});

  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  fetch::v1::ServerConfig config;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(info.stdout_text, &config)
          .ok())
      << info.stdout_text;
  EXPECT_EQ(config.workers(), 2u);                   // Flag over env.
  EXPECT_EQ(config.limits().max_per_host(), 7u);     // Env over file.
  EXPECT_EQ(config.limits().stream_window(), 100u);  // File.
  EXPECT_EQ(config.log_level(), "debug");
  EXPECT_EQ(config.request_defaults().timeouts().total().seconds(), 1);
  EXPECT_EQ(config.request_defaults().timeouts().total().nanos(), 500000000);
  EXPECT_EQ(config.grpc().max_message_bytes(), 64u << 20);  // Default.
}

TEST_F(OperationsE2eTest, BadEnvValueIsAnErrorNamingTheVariable) {
  const ExitInfo bad_number =
      RunFetchd({"--check_config"}, {"FETCHD_WORKERS=four"});
  EXPECT_EQ(bad_number.exit_code, 2) << Describe(bad_number);
  EXPECT_THAT(bad_number.stderr_text,
              AllOf(HasSubstr("FETCHD_WORKERS"), HasSubstr("four")));

  const ExitInfo out_of_range =
      RunFetchd({"--check_config"}, {"FETCHD_MAX_PER_HOST=0"});
  EXPECT_EQ(out_of_range.exit_code, 2) << Describe(out_of_range);
  EXPECT_THAT(out_of_range.stderr_text,
              AllOf(HasSubstr("limits.max_per_host"),
                    HasSubstr("FETCHD_MAX_PER_HOST=0")));

  const ExitInfo bad_level =
      RunFetchd({"--check_config"}, {"FETCHD_LOG_LEVEL=loud"});
  EXPECT_EQ(bad_level.exit_code, 2) << Describe(bad_level);
  EXPECT_THAT(bad_level.stderr_text, HasSubstr("FETCHD_LOG_LEVEL"));
}

// A bad politeness rule stops fetchd at start with exit 2 and an error
// naming the rule and the field; a good one passes --check_config.
TEST_F(OperationsE2eTest, BadPolitenessRuleIsAStartUpErrorNamingIt) {
  const std::string bad = WriteFile("bad_rule.json", R"({"politeness": {
      "rules": [{"name": "api", "hosts": ["api.example.com"], "rate": 10,
                 "burst": 0}]}})");
  const ExitInfo burst = RunFetchd({"--check_config", "--config=" + bad});
  EXPECT_EQ(burst.exit_code, 2) << Describe(burst);
  EXPECT_THAT(burst.stderr_text,
              HasSubstr("politeness.rules[0] \"api\": burst:"));

  const std::string overlap = WriteFile("overlap.json", R"({"politeness": {
      "rules": [{"name": "all", "hosts": ["*.example.com"]},
                {"name": "api", "hosts": ["api.example.com"]}]}})");
  const ExitInfo shadowed =
      RunFetchd({"--check_config", "--config=" + overlap});
  EXPECT_EQ(shadowed.exit_code, 2) << Describe(shadowed);
  EXPECT_THAT(shadowed.stderr_text,
              AllOf(HasSubstr("politeness.rules[1] \"api\": hosts[0]"),
                    HasSubstr("never matches")));

  const std::string good = WriteFile("good_rule.json", R"({"politeness": {
      "rules": [{"name": "api", "hosts": ["api.example.com"], "rate": 10,
                 "burst": 1, "min_delay": "0.2s",
                 "breaker": {"consecutive_failures": 3,
                             "base_open_time": "5s"}}]}})");
  const ExitInfo ok = RunFetchd({"--check_config", "--config=" + good});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
}

TEST_F(OperationsE2eTest, LogsAreJsonLinesOnStdout) {
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=2"}, {"FETCHD_NO_SUCH_SETTING=1"}));
  ExitInfo info;
  ASSERT_NO_FATAL_FAILURE(StopFetchd(&info));

  const std::vector<std::string> messages = LogMessages(info.stdout_text);
  EXPECT_THAT(messages, Contains(absl::StrCat("fetchd listening on ",
                                              fetchd_address_, ", 2 workers")));
  EXPECT_THAT(messages, Contains(HasSubstr("draining for up to 10s")));
  EXPECT_THAT(messages, Contains("fetchd stopped"));
  EXPECT_THAT(messages, Contains(HasSubstr("FETCHD_NO_SUCH_SETTING")));
  EXPECT_THAT(info.stderr_text, Not(HasSubstr("listening")));
  // The listening line carries its values as fields too.
  EXPECT_THAT(info.stdout_text,
              HasSubstr(absl::StrCat("\"address\":\"", fetchd_address_,
                                     "\",\"port\":")));
}

TEST_F(OperationsE2eTest, LogLevelComesFromEnvUnlessTheFlagSetsIt) {
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=1"}, {"FETCHD_LOG_LEVEL=warn"}));
  ExitInfo quiet;
  ASSERT_NO_FATAL_FAILURE(StopFetchd(&quiet));
  EXPECT_THAT(LogMessages(quiet.stdout_text), IsEmpty());

  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1", "--log_level=info"},
                                      {"FETCHD_LOG_LEVEL=off"}));
  ExitInfo verbose;
  ASSERT_NO_FATAL_FAILURE(StopFetchd(&verbose));
  EXPECT_THAT(LogMessages(verbose.stdout_text),
              Contains(HasSubstr("listening")));
}

TEST_F(OperationsE2eTest, HealthIsServingAfterStart) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  std::unique_ptr<client::FetchClient> client = Connect();
  ASSERT_NE(client, nullptr);

  for (const std::string service : {"", client::kFetchServiceHealthName}) {
    SCOPED_TRACE(service);
    absl::StatusOr<HealthCheckResponse::ServingStatus> status =
        client->CheckHealth(service, absl::Now() + kRpcTimeout);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, HealthCheckResponse::SERVING);
  }
  absl::StatusOr<HealthCheckResponse::ServingStatus> unknown =
      client->CheckHealth("no.such.Service", absl::Now() + kRpcTimeout);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound)
      << unknown.status();
}

TEST_F(OperationsE2eTest, HealthIsNotServingWhileDraining) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2", "--drain_seconds=20"}));
  // A transfer of about 3 s keeps fetchd draining.
  const std::string path =
      WriteFile("drip.txt", http_.Url("/drip?bytes=300&interval_ms=10") + "\n");
  absl::StatusOr<std::unique_ptr<Subprocess>> batch =
      Subprocess::Start(FetchctlArgv({"batch", "-f", path}));
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_TRUE(
      PollUntil([&] { return http_.ActiveStreams() == 1; }, absl::Seconds(10)))
      << "streams started: " << http_.ActiveStreams();
  // Shutdown closes the listener, so connect (and call once) before SIGTERM.
  std::unique_ptr<client::FetchClient> client = Connect();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HealthCheckResponse::ServingStatus> before =
      client->CheckHealth(client::kFetchServiceHealthName,
                          absl::Now() + kRpcTimeout);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(*before, HealthCheckResponse::SERVING);

  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  ASSERT_TRUE(fetchd_->AwaitStdout("draining", absl::Seconds(10)))
      << Describe(fetchd_->Wait(absl::ZeroDuration()));
  for (const std::string service : {"", client::kFetchServiceHealthName}) {
    SCOPED_TRACE(service);
    absl::StatusOr<HealthCheckResponse::ServingStatus> during =
        client->CheckHealth(service, absl::Now() + kRpcTimeout);
    ASSERT_TRUE(during.ok()) << during.status();
    EXPECT_EQ(*during, HealthCheckResponse::NOT_SERVING);
  }
  EXPECT_FALSE(fetchd_->HasExited());  // Still draining the batch.

  const ExitInfo batch_info = (*batch)->Wait(kProcessTimeout);
  EXPECT_EQ(batch_info.exit_code, 0) << Describe(batch_info);
  const ExitInfo fetchd_info = fetchd_->Wait(kProcessTimeout);
  EXPECT_EQ(fetchd_info.exit_code, 0) << Describe(fetchd_info);
}

// With nothing running, a drain ends at once, however many idle client
// connections are open: the grace period is for running calls, not for
// clients to hang up (it took ~5 s with three idle channels).
TEST_F(OperationsE2eTest, DrainWithIdleConnectionsEndsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--drain_seconds=60"}));
  std::vector<std::unique_ptr<client::FetchClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_NE(clients.back(), nullptr);
    ASSERT_TRUE(clients.back()
                    ->CheckHealth(client::kFetchServiceHealthName,
                                  absl::Now() + kRpcTimeout)
                    .ok());
  }
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  // Far below the grace period and the ~5 s it used to take, far above the
  // milliseconds it takes.
  const ExitInfo info = fetchd_->Wait(absl::Seconds(3));
  EXPECT_FALSE(info.timed_out) << Describe(info);
  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_THAT(LogMessages(info.stdout_text), Contains("fetchd stopped"));
  EXPECT_THAT(info.stdout_text, Not(HasSubstr("grace period over")));
}

// A second fetchd on a port the first holds is a start-up error naming the
// address (gRPC's SO_REUSEPORT would otherwise let both serve it and split
// the calls), and so is a metrics port in use; nothing is announced.
TEST_F(OperationsE2eTest, PortInUseIsAStartupError) {
  const std::string metrics_port_file = WriteFile("metrics_port", "");
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--metrics_port_file=" + metrics_port_file}));
  std::string metrics_port;
  std::ifstream(metrics_port_file) >> metrics_port;
  ASSERT_FALSE(metrics_port.empty());

  const ExitInfo grpc_clash = RunFetchd({"--listen=" + fetchd_address_});
  EXPECT_EQ(grpc_clash.exit_code, 1) << Describe(grpc_clash);
  EXPECT_THAT(grpc_clash.stderr_text,
              HasSubstr("cannot start: cannot listen on " + fetchd_address_));
  EXPECT_THAT(grpc_clash.stdout_text, Not(HasSubstr("listening")));

  const ExitInfo metrics_clash = RunFetchd(
      {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:" + metrics_port});
  EXPECT_EQ(metrics_clash.exit_code, 1) << Describe(metrics_clash);
  EXPECT_THAT(metrics_clash.stderr_text,
              HasSubstr("127.0.0.1:" + metrics_port));
  EXPECT_THAT(metrics_clash.stdout_text, Not(HasSubstr("listening")));
  EXPECT_FALSE(fetchd_->HasExited());
}

// A file fetchd can't read is an I/O failure, said as such (exit 1), not
// an invalid config (exit 2).
TEST_F(OperationsE2eTest, UnreadableAuthFileSaysSo) {
  const std::string missing = WriteFile("dir_only", "") + ".missing";
  const ExitInfo info =
      RunFetchd({"--listen=127.0.0.1:0", "--token_file=" + missing});
  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  EXPECT_THAT(
      info.stderr_text,
      HasSubstr("fetchd: cannot start: auth.token_file: cannot read \"" +
                missing + "\""));
  // Read once, by the server, and still named by the flag that set it.
  EXPECT_THAT(info.stderr_text,
              HasSubstr("(from --token_file=" + missing + ")"));
  EXPECT_THAT(info.stderr_text, Not(HasSubstr("invalid config")));
}

TEST_F(OperationsE2eTest, HelpAndVersion) {
  const ExitInfo help = RunFetchd({"--help"});
  EXPECT_EQ(help.exit_code, 0) << Describe(help);
  EXPECT_THAT(help.stdout_text, HasSubstr("Usage: fetchd"));
  EXPECT_THAT(help.stdout_text, HasSubstr("--listen (FETCHD_LISTEN)"));
  EXPECT_THAT(help.stdout_text, Not(HasSubstr("fetchd: fetchd:")));
  EXPECT_THAT(RunFetchd({"-h"}).stdout_text, HasSubstr("Usage: fetchd"));

  const ExitInfo version = RunFetchd({"--version"});
  EXPECT_EQ(version.exit_code, 0) << Describe(version);
  EXPECT_THAT(version.stdout_text, HasSubstr("fetchd 0."));
  EXPECT_THAT(version.stdout_text, HasSubstr(" build, "));
  EXPECT_THAT(version.stdout_text, Not(HasSubstr("Debug build (NDEBUG")));
}

TEST_F(OperationsE2eTest, StrayArgumentsAndUnknownFlagsAreUsageErrors) {
  const ExitInfo stray = RunFetchd({"extra", "--check_config"});
  EXPECT_EQ(stray.exit_code, 2) << Describe(stray);
  EXPECT_THAT(stray.stderr_text, HasSubstr("unexpected argument \"extra\""));
  EXPECT_THAT(stray.stdout_text, Not(HasSubstr("config OK")));

  const ExitInfo unknown = RunFetchd({"--no_such_flag=1"});
  EXPECT_EQ(unknown.exit_code, 2) << Describe(unknown);
  EXPECT_THAT(unknown.stderr_text, HasSubstr("unknown flag --no_such_flag"));

  const ExitInfo bad_value = RunFetchd({"--workers=four", "--check_config"});
  EXPECT_EQ(bad_value.exit_code, 2) << Describe(bad_value);
  EXPECT_THAT(bad_value.stderr_text, HasSubstr("--workers=four"));
}

TEST_F(OperationsE2eTest, ReflectionListsTheServices) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  namespace reflection = ::grpc::reflection::v1alpha;
  std::unique_ptr<reflection::ServerReflection::Stub> stub =
      reflection::ServerReflection::NewStub(grpc::CreateChannel(
          fetchd_address_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
  std::unique_ptr<
      grpc::ClientReaderWriter<reflection::ServerReflectionRequest,
                               reflection::ServerReflectionResponse>>
      stream = stub->ServerReflectionInfo(&context);

  reflection::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  reflection::ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::set<std::string> services;
  for (const reflection::ServiceResponse& service :
       listed.list_services_response().service()) {
    services.insert(service.name());
  }
  EXPECT_THAT(services, Contains("fetch.v1.FetchService"));
  EXPECT_THAT(services, Contains("grpc.health.v1.Health"));
  EXPECT_THAT(services, Contains("grpc.reflection.v1alpha.ServerReflection"));

  // What grpcurl asks next: the file that defines the service.
  reflection::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("fetch.v1.FetchService");
  ASSERT_TRUE(stream->Write(symbol));
  reflection::ServerReflectionResponse file;
  ASSERT_TRUE(stream->Read(&file));
  EXPECT_GT(file.file_descriptor_response().file_descriptor_proto_size(), 0)
      << file.error_response().error_message();

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(OperationsE2eTest, FetchctlHealth) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));

  const ExitInfo serving = RunFetchctl({"health"});
  EXPECT_EQ(serving.exit_code, 0) << Describe(serving);
  EXPECT_EQ(serving.stdout_text, "SERVING\n");

  const absl::StatusOr<ExitInfo> unreachable = RunSubprocess(
      {FETCHCTL_BIN, "--server",
       absl::StrCat("127.0.0.1:", UnusedLoopbackPort()), "health"},
      kProcessTimeout);
  ASSERT_TRUE(unreachable.ok()) << unreachable.status();
  EXPECT_EQ(unreachable->exit_code, 3) << Describe(*unreachable);
  EXPECT_EQ(unreachable->stdout_text, "");
  EXPECT_THAT(unreachable->stderr_text, HasSubstr("UNAVAILABLE"));
}

TEST_F(OperationsE2eTest, MaxMessageBytesFromConfigLimitsRequests) {
  const std::string config =
      WriteFile("grpc.json", R"({"grpc": {"maxMessageBytes": 4096}})");
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1", "--config=" + config}));
  const std::string body = WriteFile("body.bin", std::string(8192, 'b'));

  const ExitInfo small = RunFetchctl({"get", http_.Url("/ok")});
  EXPECT_EQ(small.exit_code, 0) << Describe(small);
  const ExitInfo large =
      RunFetchctl({"-d", "@" + body, "get", http_.Url("/echo")});
  EXPECT_EQ(large.exit_code, 3) << Describe(large);
  EXPECT_THAT(large.stderr_text, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_EQ(http_.RequestCount("/echo", "POST"), 0);
}

TEST_F(OperationsE2eTest, MaxConnectionAgeFromConfigClosesConnections) {
  const std::string config =
      WriteFile("age.json", R"({"grpc": {"maxConnectionAge": "0.5s"}})");
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1", "--config=" + config}));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(fetchd_address_, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(
      channel->WaitForConnected(absl::ToChronoTime(absl::Now() + kRpcTimeout)));

  // The server's GOAWAY (after 0.5 s, give or take 10% jitter) leaves the
  // channel without a connection.
  EXPECT_TRUE(channel->WaitForStateChange(
      GRPC_CHANNEL_READY, absl::ToChronoTime(absl::Now() + kRpcTimeout)));
  EXPECT_NE(channel->GetState(/*try_to_connect=*/false), GRPC_CHANNEL_READY);
}

}  // namespace
}  // namespace fetchd::testing
