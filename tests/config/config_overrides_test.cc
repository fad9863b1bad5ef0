#include "service/config/config_overrides.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_duration.h"
#include "service/config/server_config.h"
#include "tests/testing/test_pki.h"

namespace fetchd::config {
namespace {

using fetch::v1::ServerConfig;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;

std::string WriteTempFile(const std::string& name,
                          const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << contents;
  return path;
}

// BuildServerConfig() that must succeed.
ServerConfig MustBuild(const ValueMap& env, const ValueMap& flags) {
  absl::StatusOr<ServerConfig> config = BuildServerConfig({env, flags});
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ServerConfig();
}

// The message of a BuildServerConfig() that must fail with `code`
// (InvalidArgument for a bad value, FailedPrecondition for a file that
// can't be read).
std::string BuildError(
    const ValueMap& env, const ValueMap& flags,
    absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  absl::StatusOr<ServerConfig> config = BuildServerConfig({env, flags});
  EXPECT_FALSE(config.ok());
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), code) << config.status();
  return std::string(config.status().message());
}

TEST(ConfigOverridesTest, EnvVarNameIsPrefixedUpperCase) {
  EXPECT_EQ(EnvVarName("max_per_host"), "FETCHD_MAX_PER_HOST");
  EXPECT_EQ(EnvVarName("listen"), "FETCHD_LISTEN");
}

// A value each override accepts, by its name; every override is listed.
TEST(ConfigOverridesTest, EveryOverrideSetsItsField) {
  // The auth overrides name real files, as the server would read them.
  const std::string pki_dir = ::testing::TempDir() + "overrides_pki";
  std::filesystem::create_directories(pki_dir);
  absl::StatusOr<testing::TestPki> pki = testing::TestPki::Create(pki_dir, {});
  ASSERT_TRUE(pki.ok()) << pki.status();
  const std::string tokens =
      WriteTempFile("overrides_tokens", "alice alice-token-0123456789\n");
  const ValueMap valid_values = {
      {"listen", "0.0.0.0:7000"},
      {"workers", "3"},
      {"max_in_flight", "500"},
      {"max_per_host", "8"},
      {"max_batch_size", "50"},
      {"max_pending", "5000"},
      {"stream_window", "32"},
      {"default_timeout", "15s"},
      {"default_connect_timeout", "1.5s"},
      {"default_max_attempts", "2"},
      {"max_attempts", "4"},
      {"log_level", "debug"},
      {"metrics_listen", "0.0.0.0:9100"},
      {"policy_allow", "10.1.0.0/16, fd00::/8"},
      {"tls_cert_file", pki->server_cert},
      {"tls_key_file", pki->server_key},
      {"client_ca_file", pki->ca_cert},
      {"require_client_cert", "true"},
      {"token_file", tokens},
  };
  ASSERT_EQ(ConfigOverrides().size(), valid_values.size());
  for (const ConfigOverride& entry : ConfigOverrides()) {
    EXPECT_TRUE(valid_values.count(entry.name)) << entry.name;
  }

  const ServerConfig from_flags = MustBuild({}, valid_values);
  ValueMap env;
  for (const auto& [name, value] : valid_values) {
    env[EnvVarName(name)] = value;
  }
  const ServerConfig from_env = MustBuild(env, {});

  for (const ServerConfig& config : {from_flags, from_env}) {
    EXPECT_EQ(config.listen(), "0.0.0.0:7000");
    EXPECT_EQ(config.workers(), 3u);
    EXPECT_EQ(config.limits().max_in_flight(), 500u);
    EXPECT_EQ(config.limits().max_per_host(), 8u);
    EXPECT_EQ(config.limits().max_batch_size(), 50u);
    EXPECT_EQ(config.limits().max_pending(), 5000u);
    EXPECT_EQ(config.limits().stream_window(), 32u);
    EXPECT_EQ(FromProto(config.request_defaults().timeouts().total()),
              absl::Seconds(15));
    EXPECT_EQ(FromProto(config.request_defaults().timeouts().connect()),
              absl::Milliseconds(1500));
    EXPECT_EQ(config.request_defaults().retry().max_attempts(), 2u);
    EXPECT_EQ(config.request_bounds().max_attempts(), 4u);
    EXPECT_EQ(config.log_level(), "debug");
    ASSERT_EQ(config.policy().allow_size(), 2);
    EXPECT_EQ(config.policy().allow(0).cidr(), "10.1.0.0/16");
    EXPECT_EQ(config.policy().allow(1).cidr(), "fd00::/8");
    EXPECT_TRUE(config.policy().allow(0).ports().empty());
    EXPECT_EQ(config.metrics().listen(), "0.0.0.0:9100");
    EXPECT_EQ(config.auth().tls_cert_file(), pki->server_cert);
    EXPECT_EQ(config.auth().tls_key_file(), pki->server_key);
    EXPECT_EQ(config.auth().client_ca_file(), pki->ca_cert);
    EXPECT_TRUE(config.auth().require_client_cert());
    EXPECT_EQ(config.auth().token_file(), tokens);
  }
}

TEST(ConfigOverridesTest, BooleanOverrideRejectsOtherWords) {
  const std::string message =
      BuildError({{"FETCHD_REQUIRE_CLIENT_CERT", "maybe"}}, {});
  EXPECT_THAT(message, HasSubstr("FETCHD_REQUIRE_CLIENT_CERT: \"maybe\" is "
                                 "not a boolean"));
}

TEST(ConfigOverridesTest, AuthErrorsNameTheirSource) {
  EXPECT_THAT(BuildError({{"FETCHD_REQUIRE_CLIENT_CERT", "true"}}, {}),
              AllOf(StartsWith("auth.require_client_cert: needs "
                               "auth.client_ca_file"),
                    HasSubstr("(from FETCHD_REQUIRE_CLIENT_CERT=true)")));
  // The files are read once, by the server; its error (auth::CallerAuth's)
  // still names the flag that set the file.
  const std::string missing = ::testing::TempDir() + "no_such_tokens";
  const ConfigSources sources{{}, {{"token_file", missing}}};
  absl::StatusOr<ServerConfig> config = BuildServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  const absl::Status read_error = absl::FailedPreconditionError(
      "auth.token_file: cannot read \"" + missing + "\"");
  const absl::Status named = WithProvenance(read_error, sources);
  EXPECT_EQ(named.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(named.message(), "auth.token_file: cannot read \"" + missing +
                                 "\" (from --token_file=" + missing + ")");
  EXPECT_EQ(WithProvenance(absl::OkStatus(), sources), absl::OkStatus());
  EXPECT_EQ(WithProvenance(absl::InternalError("other"), sources).message(),
            "other");
}

TEST(ConfigOverridesTest, FetchctlTokenVariableIsNotReportedUnknown) {
  EXPECT_THAT(UnknownFetchdVariables({{"FETCHD_TOKEN", "x"}}), IsEmpty());
}

TEST(ConfigOverridesTest, NoSourcesGiveTheDefaults) {
  ServerConfig expected = DefaultServerConfig();
  ResolveAutoValues(&expected);
  const ServerConfig config = MustBuild({{"PATH", "/bin"}}, {});
  EXPECT_EQ(config.SerializeAsString(), expected.SerializeAsString());
}

TEST(ConfigOverridesTest, PrecedenceIsDefaultsFileEnvFlags) {
  const std::string path = WriteTempFile(
      "precedence.json",
      R"({"workers": 3, "limits": {"maxPerHost": 5, "maxInFlight": 100}})");
  const ValueMap env = {{"FETCHD_MAX_PER_HOST", "7"},
                        {"FETCHD_MAX_IN_FLIGHT", "200"}};
  const ValueMap flags = {{"config", path}, {"max_per_host", "9"}};

  const ServerConfig all = MustBuild(env, flags);
  EXPECT_EQ(all.limits().max_per_host(), 9u);     // Flag over env.
  EXPECT_EQ(all.limits().max_in_flight(), 200u);  // Env over file.
  EXPECT_EQ(all.workers(), 3u);                   // File over default.
  EXPECT_EQ(all.limits().stream_window(), 256u);  // Default.

  const ServerConfig no_flag = MustBuild(env, {{"config", path}});
  EXPECT_EQ(no_flag.limits().max_per_host(), 7u);

  const ServerConfig file_only = MustBuild({}, {{"config", path}});
  EXPECT_EQ(file_only.limits().max_per_host(), 5u);
  EXPECT_EQ(file_only.limits().max_in_flight(), 100u);
}

TEST(ConfigOverridesTest, ConfigFileFromEnvUnlessTheFlagNamesOne) {
  const std::string env_file =
      WriteTempFile("env_file.json", R"({"workers": 3})");
  const std::string flag_file =
      WriteTempFile("flag_file.json", R"({"workers": 4})");
  const ValueMap env = {{"FETCHD_CONFIG", env_file}};

  EXPECT_EQ(MustBuild(env, {}).workers(), 3u);
  EXPECT_EQ(MustBuild(env, {{"config", flag_file}}).workers(), 4u);
  const absl::StatusOr<ServerConfig> missing =
      BuildServerConfig({{{"FETCHD_CONFIG", "/no/such/file.json"}}, {}});
  EXPECT_THAT(missing.status().message(), HasSubstr("/no/such/file.json"));
}

TEST(ConfigOverridesTest, EmptyVariableIsUnset) {
  const ServerConfig config =
      MustBuild({{"FETCHD_LISTEN", ""}, {"FETCHD_WORKERS", ""}}, {});
  EXPECT_EQ(config.listen(), "127.0.0.1:50051");
  EXPECT_GE(config.workers(), 1u);
}

TEST(ConfigOverridesTest, OnlyFetchdVariablesAreRead) {
  const ServerConfig config =
      MustBuild({{"WORKERS", "3"}, {"fetchd_workers", "3"}}, {});
  ServerConfig expected = DefaultServerConfig();
  ResolveAutoValues(&expected);
  EXPECT_EQ(config.workers(), expected.workers());
}

TEST(ConfigOverridesTest, BadEnvValuesNameTheVariable) {
  struct Case {
    std::string variable;
    std::string value;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"FETCHD_WORKERS", "four", "is not an integer"},
      {"FETCHD_WORKERS", "-1", "is not an integer"},
      {"FETCHD_WORKERS", "2.5", "is not an integer"},
      {"FETCHD_MAX_PER_HOST", "99999999999", "is not an integer"},
      {"FETCHD_DEFAULT_TIMEOUT", "15", "is not a positive duration"},
      {"FETCHD_DEFAULT_TIMEOUT", "-1s", "is not a positive duration"},
      {"FETCHD_DEFAULT_TIMEOUT", "0s", "is not a positive duration"},
      {"FETCHD_DEFAULT_CONNECT_TIMEOUT", "inf", "is not a positive duration"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.variable + "=" + c.value);
    EXPECT_THAT(BuildError({{c.variable, c.value}}, {}),
                AllOf(StartsWith(c.variable + ": \"" + c.value + "\""),
                      HasSubstr(c.expected)));
  }
}

TEST(ConfigOverridesTest, BadFlagValuesNameTheFlag) {
  EXPECT_THAT(BuildError({}, {{"workers", "four"}}),
              StartsWith("--workers: \"four\" is not an integer"));
  EXPECT_THAT(BuildError({}, {{"default_timeout", "10"}}),
              StartsWith("--default_timeout: \"10\" is not a positive"));
  EXPECT_THAT(BuildError({}, {{"no_such_flag", "1"}}),
              HasSubstr("--no_such_flag: not a config override"));
}

TEST(ConfigOverridesTest, ValidationErrorsSayWhichSourceSetTheField) {
  EXPECT_EQ(BuildError({{"FETCHD_MAX_PER_HOST", "0"}}, {}),
            "limits.max_per_host: must be between 1 and 100000, got 0 (from "
            "FETCHD_MAX_PER_HOST=0)");
  EXPECT_THAT(
      BuildError({{"FETCHD_MAX_PER_HOST", "0"}}, {{"max_per_host", "0"}}),
      HasSubstr("(from --max_per_host=0)"));
  EXPECT_THAT(BuildError({{"FETCHD_LOG_LEVEL", "loud"}}, {}),
              AllOf(StartsWith("log_level: "), HasSubstr("\"loud\""),
                    HasSubstr("FETCHD_LOG_LEVEL=loud")));
  EXPECT_THAT(BuildError({{"FETCHD_LISTEN", "nocolon"}}, {}),
              AllOf(StartsWith("listen: "), HasSubstr("FETCHD_LISTEN")));

  // A field the file set is not blamed on the environment.
  const std::string path =
      WriteTempFile("bad_workers.json", R"({"workers": 1000})");
  EXPECT_EQ(BuildError({{"FETCHD_CONFIG", path}}, {}),
            "workers: must be between 0 and 256, got 1000");
}

TEST(ConfigOverridesTest, UnknownFetchdVariablesAreListed) {
  const ValueMap env = {
      {"FETCHD_WORKRES", "2"},  {"FETCHD_WORKERS", "2"}, {"FETCHD_CONFIG", "x"},
      {"FETCHD_SERVER", "h:1"}, {"FETCHD_ZZZ", ""},      {"HOME", "/root"},
  };
  EXPECT_THAT(UnknownFetchdVariables(env),
              ElementsAre("FETCHD_WORKRES", "FETCHD_ZZZ"));
  EXPECT_THAT(UnknownFetchdVariables({}), IsEmpty());
}

TEST(ConfigOverridesTest, EnvironmentMapSplitsAtTheFirstEquals) {
  const char* const environment[] = {"A=1", "B=",    "NOEQUALS",
                                     "A=2", "C=x=y", nullptr};
  EXPECT_THAT(EnvironmentMap(environment),
              ElementsAre(Pair("A", "1"), Pair("B", ""), Pair("C", "x=y")));
  EXPECT_THAT(EnvironmentMap(nullptr), IsEmpty());
}

}  // namespace
}  // namespace fetchd::config
