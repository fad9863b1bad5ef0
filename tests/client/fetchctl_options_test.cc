#include "client/fetchctl_options.h"

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::client {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<FetchctlOptions> Parse(std::vector<std::string> args,
                                      absl::string_view env_server = "") {
  args.insert(args.begin(), "fetchctl");
  return ParseFetchctlArgs(args, env_server);
}

// The error message of a parse that must fail.
std::string ParseError(std::vector<std::string> args) {
  absl::StatusOr<FetchctlOptions> options = Parse(std::move(args));
  EXPECT_FALSE(options.ok());
  if (options.ok()) {
    return "";
  }
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(options.status().message());
}

absl::Duration FromProto(const google::protobuf::Duration& proto) {
  return absl::Seconds(proto.seconds()) + absl::Nanoseconds(proto.nanos());
}

std::vector<std::string> HeaderLines(const fetch::v1::FetchRequest& request) {
  std::vector<std::string> lines;
  for (const fetch::v1::Header& header : request.headers()) {
    lines.push_back(header.name() + "=" + header.value());
  }
  return lines;
}

std::string WriteTempFile(absl::string_view name, absl::string_view contents) {
  std::string path = ::testing::TempDir() + std::string(name);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << contents;
  return path;
}

TEST(ParseFetchctlArgsTest, GetWithSeveralUrlsAndDefaults) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"get", "http://a.test/", "https://b.test/x?y=1"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kGet);
  EXPECT_THAT(options->urls,
              ElementsAre("http://a.test/", "https://b.test/x?y=1"));
  EXPECT_EQ(options->server, "127.0.0.1:50051");
  EXPECT_EQ(options->rpc_deadline, absl::InfiniteDuration());
  EXPECT_FALSE(options->quiet);
  EXPECT_FALSE(options->include_body);
  EXPECT_EQ(options->progress, ProgressMode::kAuto);

  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_EQ(defaults.method(), "");
  EXPECT_EQ(defaults.headers_size(), 0);
  EXPECT_FALSE(defaults.has_timeouts());
  EXPECT_FALSE(defaults.has_retry());
  EXPECT_FALSE(defaults.has_follow_redirects());
  EXPECT_FALSE(defaults.has_max_redirects());
  EXPECT_FALSE(defaults.has_max_body_bytes());
  EXPECT_FALSE(defaults.has_fail_on_http_error());
  EXPECT_EQ(options->batch_template.requests_size(), 0);
}

TEST(ParseFetchctlArgsTest, ServerFromFlagThenEnvironmentThenDefault) {
  absl::StatusOr<FetchctlOptions> from_env =
      Parse({"get", "http://a.test/"}, "fetchd.test:7000");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->server, "fetchd.test:7000");

  absl::StatusOr<FetchctlOptions> from_flag = Parse(
      {"--server", "127.0.0.1:9", "get", "http://a.test/"}, "fetchd.test:7000");
  ASSERT_TRUE(from_flag.ok()) << from_flag.status();
  EXPECT_EQ(from_flag->server, "127.0.0.1:9");

  absl::StatusOr<FetchctlOptions> equals_form =
      Parse({"--server=[::1]:9", "get", "http://a.test/"});
  ASSERT_TRUE(equals_form.ok()) << equals_form.status();
  EXPECT_EQ(equals_form->server, "[::1]:9");
}

TEST(ParseFetchctlArgsTest, HeadersKeepTheirOrder) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-H", "X-B: 2", "--header", "Accept:  text/html ", "get",
             "http://a.test/", "-H", "X-A:1", "--header=X-Empty:"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(HeaderLines(options->batch_template.defaults()),
              ElementsAre("X-B=2", "Accept=text/html", "X-A=1", "X-Empty="));
}

TEST(ParseFetchctlArgsTest, HeaderWithoutColonIsAUsageError) {
  const std::string error = ParseError({"-H", "NoColon", "get", "http://a/"});
  EXPECT_THAT(error, HasSubstr("-H/--header"));
  EXPECT_THAT(error, HasSubstr("NoColon"));
  EXPECT_THAT(ParseError({"-H", ": value", "get", "http://a/"}),
              HasSubstr("-H/--header"));
}

TEST(ParseFetchctlArgsTest, DataImpliesPost) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-d", "a=1&b=2", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().method(), "POST");
  EXPECT_EQ(options->batch_template.defaults().body(), "a=1&b=2");
}

TEST(ParseFetchctlArgsTest, ExplicitMethodWinsOverData) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-X", "PUT", "-d", "x", "get", "http://a/"},
        std::vector<std::string>{"--data", "x", "--request", "PUT", "get",
                                 "http://a/"}}) {
    absl::StatusOr<FetchctlOptions> options = Parse(args);
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->batch_template.defaults().method(), "PUT");
    EXPECT_EQ(options->batch_template.defaults().body(), "x");
  }
}

TEST(ParseFetchctlArgsTest, DataFromFileIsReadVerbatim) {
  const std::string body("line 1\nline 2\n\0binary", 21);
  const std::string path = WriteTempFile("fetchctl_body.bin", body);
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-d", "@" + path, "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().body(), body);
  EXPECT_EQ(options->batch_template.defaults().method(), "POST");
}

TEST(ParseFetchctlArgsTest, UnreadableDataFileIsAUsageError) {
  const std::string error =
      ParseError({"-d", "@/nonexistent/fetchctl/body", "get", "http://a/"});
  EXPECT_THAT(error, HasSubstr("-d/--data"));
  EXPECT_THAT(error, HasSubstr("/nonexistent/fetchctl/body"));
  EXPECT_THAT(ParseError({"-d", "x", "-d", "y", "get", "http://a/"}),
              HasSubstr("-d/--data"));
}

TEST(ParseFetchctlArgsTest, RetriesCountTheFirstAttempt) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--retries", "2", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().retry().max_attempts(), 3u);

  absl::StatusOr<FetchctlOptions> no_retries =
      Parse({"--retries=0", "get", "http://a/"});
  ASSERT_TRUE(no_retries.ok()) << no_retries.status();
  EXPECT_EQ(no_retries->batch_template.defaults().retry().max_attempts(), 1u);

  EXPECT_THAT(ParseError({"--retries", "-1", "get", "http://a/"}),
              HasSubstr("--retries"));
  EXPECT_THAT(ParseError({"--retries", "two", "get", "http://a/"}),
              HasSubstr("--retries"));
}

TEST(ParseFetchctlArgsTest, TimeoutsAreDurations) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--timeout", "1.5", "--connect-timeout", "2", "--read-timeout",
             "0.25", "--deadline", "30", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::Timeouts& timeouts =
      options->batch_template.defaults().timeouts();
  EXPECT_EQ(timeouts.total().seconds(), 1);
  EXPECT_EQ(timeouts.total().nanos(), 500000000);
  EXPECT_EQ(FromProto(timeouts.connect()), absl::Seconds(2));
  EXPECT_EQ(FromProto(timeouts.read_idle()), absl::Milliseconds(250));
  EXPECT_FALSE(timeouts.has_queue());
  EXPECT_EQ(options->rpc_deadline, absl::Seconds(30));
}

TEST(ParseFetchctlArgsTest, BadTimeoutsNameTheFlag) {
  EXPECT_THAT(ParseError({"--timeout", "soon", "get", "http://a/"}),
              HasSubstr("--timeout"));
  EXPECT_THAT(ParseError({"--timeout", "0", "get", "http://a/"}),
              HasSubstr("--timeout"));
  EXPECT_THAT(ParseError({"--connect-timeout", "-1", "get", "http://a/"}),
              HasSubstr("--connect-timeout"));
  EXPECT_THAT(ParseError({"--read-timeout", "inf", "get", "http://a/"}),
              HasSubstr("--read-timeout"));
  EXPECT_THAT(ParseError({"--deadline", "nan", "get", "http://a/"}),
              HasSubstr("--deadline"));
}

TEST(ParseFetchctlArgsTest, RedirectAndLimitFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-L", "--max-redirs", "3", "--max-filesize", "1048576", "--fail",
             "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_TRUE(defaults.has_follow_redirects());
  EXPECT_TRUE(defaults.follow_redirects());
  EXPECT_EQ(defaults.max_redirects(), 3u);
  EXPECT_EQ(defaults.max_body_bytes(), 1048576u);
  EXPECT_TRUE(defaults.fail_on_http_error());

  absl::StatusOr<FetchctlOptions> no_location =
      Parse({"--location", "--no-location", "get", "http://a/"});
  ASSERT_TRUE(no_location.ok()) << no_location.status();
  EXPECT_TRUE(no_location->batch_template.defaults().has_follow_redirects());
  EXPECT_FALSE(no_location->batch_template.defaults().follow_redirects());

  EXPECT_THAT(ParseError({"--max-filesize", "1k", "get", "http://a/"}),
              HasSubstr("--max-filesize"));
}

TEST(ParseFetchctlArgsTest, BatchAndOutputFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"batch", "-f", "urls.txt", "--max-concurrency", "8", "--ordered",
             "--fail-fast", "-q", "--body", "--no-progress"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kBatch);
  EXPECT_EQ(options->input_path, "urls.txt");
  EXPECT_EQ(options->batch_template.max_concurrency(), 8u);
  EXPECT_TRUE(options->batch_template.ordered());
  EXPECT_TRUE(options->batch_template.fail_fast());
  EXPECT_TRUE(options->quiet);
  EXPECT_TRUE(options->include_body);
  EXPECT_EQ(options->progress, ProgressMode::kOff);

  absl::StatusOr<FetchctlOptions> stdin_batch = Parse({"--progress", "batch"});
  ASSERT_TRUE(stdin_batch.ok()) << stdin_batch.status();
  EXPECT_EQ(stdin_batch->input_path, "-");
  EXPECT_EQ(stdin_batch->progress, ProgressMode::kOn);
}

TEST(ParseFetchctlArgsTest, ShortFlagsCombine) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-qLXHEAD", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->quiet);
  EXPECT_TRUE(options->batch_template.defaults().follow_redirects());
  EXPECT_EQ(options->batch_template.defaults().method(), "HEAD");
}

TEST(ParseFetchctlArgsTest, DoubleDashEndsTheFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-q", "get", "--", "-not-a-flag", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->urls, ElementsAre("-not-a-flag", "http://a/"));
}

TEST(ParseFetchctlArgsTest, HelpWins) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-h"}, std::vector<std::string>{"--help"},
        std::vector<std::string>{"get", "http://a/", "--help"}}) {
    absl::StatusOr<FetchctlOptions> options = Parse(args);
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->command, Command::kHelp);
  }
}

TEST(ParseFetchctlArgsTest, FlagErrorsNameTheFlag) {
  EXPECT_THAT(ParseError({"--bogus", "get", "http://a/"}),
              HasSubstr("'--bogus'"));
  EXPECT_THAT(ParseError({"-Z", "get", "http://a/"}), HasSubstr("'-Z'"));
  EXPECT_THAT(ParseError({"get", "http://a/", "--timeout"}),
              HasSubstr("--timeout: missing value"));
  EXPECT_THAT(ParseError({"get", "http://a/", "-H"}),
              HasSubstr("-H/--header: missing value"));
  EXPECT_THAT(ParseError({"--ordered=yes", "get", "http://a/"}),
              HasSubstr("--ordered: takes no value"));
  EXPECT_THAT(ParseError({"--server", "", "get", "http://a/"}),
              HasSubstr("--server"));
  EXPECT_THAT(ParseError({"-f", "x", "get", "http://a/"}),
              HasSubstr("-f/--file"));
}

TEST(ParseFetchctlArgsTest, Health) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--server", "10.0.0.1:1", "--deadline", "2", "health"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kHealth);
  EXPECT_EQ(options->server, "10.0.0.1:1");
  EXPECT_EQ(options->rpc_deadline, absl::Seconds(2));
  EXPECT_TRUE(options->urls.empty());

  absl::StatusOr<FetchctlOptions> from_env = Parse({"health"}, "10.0.0.2:2");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->server, "10.0.0.2:2");

  EXPECT_THAT(ParseError({"health", "fetch.v1.FetchService"}),
              HasSubstr("health: unexpected argument 'fetch.v1.FetchService'"));
  EXPECT_THAT(ParseError({"-f", "x", "health"}), HasSubstr("-f/--file"));
  EXPECT_FALSE(BuildBatchRequest(*options).ok());
}

TEST(ParseFetchctlArgsTest, CommandErrors) {
  EXPECT_THAT(ParseError({}), HasSubstr("missing command"));
  EXPECT_THAT(ParseError({"-q"}), HasSubstr("missing command"));
  EXPECT_THAT(
      ParseError({"fetch", "http://a/"}),
      AllOf(HasSubstr("unknown command 'fetch'"), HasSubstr("'health'")));
  EXPECT_THAT(ParseError({"get"}), HasSubstr("missing URL"));
  EXPECT_THAT(ParseError({"batch", "urls.txt"}), HasSubstr("'urls.txt'"));
}

TEST(FetchctlUsageTest, ListsEveryFlagAndExitStatus) {
  const std::string usage = FetchctlUsage();
  for (absl::string_view flag :
       {"--server",       "-X, --request", "-H, --header",
        "-d, --data",     "--timeout",     "--connect-timeout",
        "--read-timeout", "--retries",     "-L, --location",
        "--no-location",  "--max-redirs",  "--max-filesize",
        "--fail",         "-f, --file",    "--max-concurrency",
        "--ordered",      "--fail-fast",   "--deadline",
        "--body",         "-q, --quiet",   "--progress",
        "--no-progress",  "-h, --help",    "FETCHD_SERVER"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
  for (absl::string_view code : {"  0  ", "  1  ", "  2  ", "  3  "}) {
    EXPECT_THAT(usage, HasSubstr(code));
  }
  EXPECT_THAT(usage, AllOf(HasSubstr("fetchctl [--server HOST:PORT]"),
                           HasSubstr("health"), HasSubstr("NOT_SERVING")));
}

TEST(ParseBatchInputTest, UrlAndJsonLinesSkippingCommentsAndBlanks) {
  std::istringstream input(
      "# a comment\n"
      "http://a.test/\n"
      "\n"
      "   \t\n"
      "  https://b.test/x  \r\n"
      R"({"id": "c", "url": "http://c.test/", "method": "POST", )"
      R"("headers": [{"name": "X-A", "value": "1"}], "maxRedirects": 2, )"
      R"("timeouts": {"total": "1.5s"}})"
      "\n"
      "#http://skipped.test/\n"
      "http://d.test/");  // No final newline.
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 4u);
  EXPECT_EQ((*requests)[0].url(), "http://a.test/");
  EXPECT_EQ((*requests)[1].url(), "https://b.test/x");
  const fetch::v1::FetchRequest& json = (*requests)[2];
  EXPECT_EQ(json.id(), "c");
  EXPECT_EQ(json.url(), "http://c.test/");
  EXPECT_EQ(json.method(), "POST");
  EXPECT_THAT(HeaderLines(json), ElementsAre("X-A=1"));
  EXPECT_EQ(json.max_redirects(), 2u);
  EXPECT_EQ(FromProto(json.timeouts().total()), absl::Milliseconds(1500));
  EXPECT_EQ((*requests)[3].url(), "http://d.test/");
}

TEST(ParseBatchInputTest, BadJsonNamesTheLine) {
  std::istringstream input(
      "http://a.test/\n"
      "# comment\n"
      "{\"url\": \"http://b.test/\"\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_FALSE(requests.ok());
  EXPECT_EQ(requests.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(requests.status().message(), HasSubstr("line 3"));
}

TEST(ParseBatchInputTest, UnknownJsonFieldIsAnError) {
  std::istringstream input("{\"url\": \"http://a/\", \"methd\": \"GET\"}\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_FALSE(requests.ok());
  EXPECT_THAT(requests.status().message(), HasSubstr("line 1"));
}

TEST(ParseBatchInputTest, EmptyInputHasNoRequests) {
  std::istringstream input("# nothing\n\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_TRUE(requests.ok()) << requests.status();
  EXPECT_TRUE(requests->empty());
}

TEST(BuildBatchRequestTest, GetSendsOneRequestPerUrlWithTheDefaults) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-H", "X-A: 1", "--ordered", "get", "http://a/", "http://b/"});
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->requests_size(), 2);
  EXPECT_EQ(batch->requests(0).url(), "http://a/");
  EXPECT_EQ(batch->requests(1).url(), "http://b/");
  EXPECT_EQ(batch->requests(0).headers_size(), 0);
  EXPECT_THAT(HeaderLines(batch->defaults()), ElementsAre("X-A=1"));
  EXPECT_EQ(batch->defaults().url(), "");
  EXPECT_TRUE(batch->ordered());
}

TEST(BuildBatchRequestTest, BatchReadsTheInputFile) {
  const std::string path =
      WriteTempFile("fetchctl_batch.txt",
                    "http://a/\n{\"url\": \"http://b/\", \"id\": \"b\"}\n");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"batch", "-f", path, "--fail-fast"});
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->requests_size(), 2);
  EXPECT_EQ(batch->requests(0).url(), "http://a/");
  EXPECT_EQ(batch->requests(1).id(), "b");
  EXPECT_TRUE(batch->fail_fast());
}

TEST(BuildBatchRequestTest, InputFileErrorsNameTheFile) {
  absl::StatusOr<FetchctlOptions> missing =
      Parse({"batch", "-f", "/nonexistent/fetchctl/urls"});
  ASSERT_TRUE(missing.ok()) << missing.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*missing);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(),
              HasSubstr("/nonexistent/fetchctl/urls"));

  const std::string bad_path =
      WriteTempFile("fetchctl_bad.txt", "http://a/\n{not json}\n");
  absl::StatusOr<FetchctlOptions> bad = Parse({"batch", "-f", bad_path});
  ASSERT_TRUE(bad.ok()) << bad.status();
  batch = BuildBatchRequest(*bad);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr(bad_path + ": line 2"));

  const std::string empty_path =
      WriteTempFile("fetchctl_empty.txt", "# no requests\n");
  absl::StatusOr<FetchctlOptions> empty = Parse({"batch", "-f", empty_path});
  ASSERT_TRUE(empty.ok()) << empty.status();
  batch = BuildBatchRequest(*empty);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr("no requests"));
}

TEST(ParseFetchctlArgsTest, PlaintextAndNoTokenByDefault) {
  absl::StatusOr<FetchctlOptions> options = Parse({"health"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_FALSE(options->connection.tls);
  EXPECT_EQ(options->connection.bearer_token, "");
}

TEST(ParseFetchctlArgsTest, ServerCertificatesAreReadAndImplyTls) {
  const std::string ca =
      WriteTempFile("fetchctl_ca.pem", "-----BEGIN CERTIFICATE-----\nca\n");
  const std::string cert =
      WriteTempFile("fetchctl_cert.pem", "-----BEGIN CERTIFICATE-----\ncert\n");
  const std::string key =
      WriteTempFile("fetchctl_key.pem", "-----BEGIN PRIVATE KEY-----\nkey\n");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--server-cacert", ca, "--server-cert=" + cert, "--server-key",
             key, "--tls-server-name", "fetchd.internal", "health"});
  ASSERT_TRUE(options.ok()) << options.status();
  const ServerConnection& c = options->connection;
  EXPECT_TRUE(c.tls);
  EXPECT_EQ(c.ca_cert_pem, "-----BEGIN CERTIFICATE-----\nca\n");
  EXPECT_EQ(c.client_cert_pem, "-----BEGIN CERTIFICATE-----\ncert\n");
  EXPECT_EQ(c.client_key_pem, "-----BEGIN PRIVATE KEY-----\nkey\n");
  EXPECT_EQ(c.tls_server_name, "fetchd.internal");

  options = Parse({"--tls", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->connection.tls);
  EXPECT_EQ(options->connection.ca_cert_pem, "");
}

TEST(ParseFetchctlArgsTest, BadServerCertificateFlags) {
  const std::string cert = WriteTempFile("fetchctl_cert2.pem",
                                         "-----BEGIN CERTIFICATE-----\ncert\n");
  EXPECT_THAT(ParseError({"--server-cert", cert, "health"}),
              HasSubstr("--server-key: missing: --server-cert and "
                        "--server-key go together"));
  EXPECT_THAT(
      ParseError(
          {"--server-cacert", ::testing::TempDir() + "nope.pem", "health"}),
      AllOf(HasSubstr("--server-cacert: cannot open"), HasSubstr("nope.pem")));
  const std::string junk = WriteTempFile("fetchctl_junk.pem", "hello");
  EXPECT_THAT(ParseError({"--server-cacert", junk, "health"}),
              HasSubstr("--server-cacert: '" + junk + "' is not a PEM file"));
}

TEST(ParseFetchctlArgsTest, TokenFromFileOrEnvironment) {
  const std::string token_file =
      WriteTempFile("fetchctl_token", "  file-token-0123456789  \nignored\n");
  absl::StatusOr<FetchctlOptions> options = ParseFetchctlArgs(
      {"fetchctl", "--token-file", token_file, "health"}, "", "env-token");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->connection.bearer_token, "file-token-0123456789");
  EXPECT_FALSE(options->connection.tls);

  options = ParseFetchctlArgs({"fetchctl", "health"}, "", " env-token\n");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->connection.bearer_token, "env-token");

  const std::string empty = WriteTempFile("fetchctl_empty_token", "\n");
  const std::string message = ParseError({"--token-file", empty, "health"});
  EXPECT_THAT(message, HasSubstr("--token-file: '" + empty +
                                 "' holds no token on its first line"));
}

}  // namespace
}  // namespace fetchd::client

namespace fetchd::client {
namespace {

TEST(ParseFetchctlArgsTest, OutputRawAndChunkBytes) {
  absl::StatusOr<FetchctlOptions> options = Parse(
      {"get", "http://a/", "-o", "out.bin", "--raw", "--chunk-bytes", "4096"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->output_path, "out.bin");
  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_TRUE(defaults.has_decompress());
  EXPECT_FALSE(defaults.decompress());
  EXPECT_EQ(defaults.chunk_bytes(), 4096u);
}

TEST(ParseFetchctlArgsTest, OutputNeedsGetAndOneUrl) {
  EXPECT_THAT(ParseError({"get", "http://a/", "http://b/", "-o", "f"}),
              HasSubstr("-o/--output: writes one body: give one URL, got 2"));
  EXPECT_THAT(ParseError({"batch", "-o", "f"}),
              HasSubstr("-o/--output: only valid with 'get'"));
  EXPECT_THAT(ParseError({"get", "http://a/", "-o", ""}),
              HasSubstr("-o/--output: empty file name"));
}

}  // namespace
}  // namespace fetchd::client
