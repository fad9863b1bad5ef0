#include "service/api/request_validation.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_duration.h"
#include "service/config/server_config.h"
#include "service/core/fetch_job.h"
#include "service/policy/policy_config.h"

namespace fetchd::api {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchRequest;
using fetch::v1::ServerConfig;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// A request with `url` and nothing else.
FetchRequest Url(const std::string& url) {
  FetchRequest request;
  request.set_url(url);
  return request;
}

void AddHeader(FetchRequest* request, const std::string& name,
               const std::string& value) {
  fetch::v1::Header* header = request->add_headers();
  header->set_name(name);
  header->set_value(value);
}

// The destination gate of `config`, which must be valid.
std::shared_ptr<const policy::DestinationGate> GateOf(
    const ServerConfig& config) {
  auto gate = policy::DestinationGateFromConfig(config.policy());
  EXPECT_TRUE(gate.ok()) << gate.status();
  return gate.ok() ? *std::move(gate) : nullptr;
}

class RequestValidationTest : public ::testing::Test {
 protected:
  explicit RequestValidationTest(
      ServerConfig config = config::DefaultServerConfig())
      : config_(AllowLoopback(std::move(config))),
        gate_(GateOf(config_)),
        validator_(config_, gate_.get()) {}

  // The tests use 127.0.0.1 as an ordinary destination.
  static ServerConfig AllowLoopback(ServerConfig config) {
    config.mutable_policy()->add_allow()->set_cidr("127.0.0.0/8");
    config.mutable_policy()->add_allow()->set_cidr("::1");
    return config;
  }

  // Builds `request` under the server defaults only.
  absl::StatusOr<std::unique_ptr<core::FetchJob>> Build(
      const FetchRequest& request, uint32_t index = 0) const {
    return validator_.Build(validator_.EffectiveDefaults(FetchRequest()),
                            request, index);
  }

  // The job of a request that must be valid.
  std::unique_ptr<core::FetchJob> MustBuild(const FetchRequest& request) const {
    absl::StatusOr<std::unique_ptr<core::FetchJob>> job = Build(request);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *std::move(job) : nullptr;
  }

  // The message of a request that must be invalid.
  std::string BuildError(const FetchRequest& request) const {
    absl::StatusOr<std::unique_ptr<core::FetchJob>> job = Build(request);
    EXPECT_FALSE(job.ok()) << "url " << request.url() << " built a job";
    if (job.ok()) return "";
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(job.status().message());
  }

  const ServerConfig config_;
  const std::shared_ptr<const policy::DestinationGate> gate_;
  const RequestValidator validator_;
};

TEST_F(RequestValidationTest, ValidUrlsAreNormalizedAndKeyedByOrigin) {
  const struct {
    std::string url;
    std::string normalized;
    std::string host_key;
  } kCases[] = {
      {"http://127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080/x?y=1",
       "http://127.0.0.1:8080"},
      {"https://example.com/", "https://example.com/",
       "https://example.com:443"},
      {"http://example.com", "http://example.com/", "http://example.com:80"},
      {"http://example.com:80/a", "http://example.com:80/a",
       "http://example.com:80"},
      {"HTTPS://Example.COM/Path", "https://Example.COM/Path",
       "https://example.com:443"},
      {"http://[::1]:9000/", "http://[::1]:9000/", "http://[::1]:9000"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.url);
    std::unique_ptr<core::FetchJob> job = MustBuild(Url(c.url));
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(job->url, c.normalized);
    EXPECT_EQ(job->host_key, c.host_key);
  }
}

// Found by fuzz/url_fuzzer: curl decodes a percent-encoded host after it
// normalizes numeric IPv4 forms, so one pass left "213076" (0.3.64.84) as a
// name, and the job's own URL gave another host key.
TEST_F(RequestValidationTest, PercentEncodedNumericHostsAreNormalized) {
  const struct {
    std::string url;
    std::string normalized;
    std::string host_key;
  } kCases[] = {
      {"http://13421772%38/", "http://8.0.0.0/", "http://8.0.0.0:80"},
      {"http://%31%32%37.1:8080/x", "http://127.0.0.1:8080/x",
       "http://127.0.0.1:8080"},
      {"https://ex%41mple.com/", "https://exAmple.com/",
       "https://example.com:443"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.url);
    std::unique_ptr<core::FetchJob> job = MustBuild(Url(c.url));
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(job->url, c.normalized);
    EXPECT_EQ(job->host_key, c.host_key);
    std::unique_ptr<core::FetchJob> again = MustBuild(Url(job->url));
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->url, job->url);
    EXPECT_EQ(again->host_key, job->host_key);
  }
}

TEST_F(RequestValidationTest, InvalidUrlsAreRejectedWithTheReason) {
  const struct {
    std::string url;
    std::vector<std::string> message_parts;
  } kCases[] = {
      {"", {"url: is empty"}},
      {"not a url", {"url: malformed URL"}},
      {"http://exa mple.com/", {"url: malformed URL"}},
      {"http://user:secret@example.com/", {"url: ", "credentials"}},
      {"http://user@example.com/", {"url: ", "credentials"}},
      // curl reports a missing host while parsing.
      {"http://", {"url: malformed URL", "No host"}},
      {"http://:8080/", {"url: malformed URL", "No host"}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.url);
    const std::string message = BuildError(Url(c.url));
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(message, HasSubstr(part));
    }
  }
}

TEST_F(RequestValidationTest, UrlLengthIsBounded) {
  const std::string prefix = "http://a.test/";
  const size_t max = config_.request_bounds().max_url_bytes();
  ASSERT_EQ(max, 8192u);
  const std::string longest = prefix + std::string(max - prefix.size(), 'a');
  std::unique_ptr<core::FetchJob> job = MustBuild(Url(longest));
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->url, longest);

  EXPECT_EQ(BuildError(Url(longest + "a")),
            "url: 8193 bytes exceed the limit of 8192");
}

TEST_F(RequestValidationTest, MethodsAreUpperCasedAndChecked) {
  const struct {
    std::string method;
    std::string want;
  } kCases[] = {
      {"", "GET"},          {"GET", "GET"},         {"post", "POST"},
      {"Put", "PUT"},       {"HEAD", "HEAD"},       {"PATCH", "PATCH"},
      {"delete", "DELETE"}, {"OPTIONS", "OPTIONS"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.method);
    FetchRequest request = Url("http://a.test/");
    request.set_method(c.method);
    std::unique_ptr<core::FetchJob> job = MustBuild(request);
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(job->method, c.want);
  }
}

TEST_F(RequestValidationTest, UnknownMethodsAreRejectedByName) {
  for (const std::string method : {"BREW", "CONNECT", "TRACE", "GET "}) {
    SCOPED_TRACE(method);
    FetchRequest request = Url("http://a.test/");
    request.set_method(method);
    EXPECT_THAT(BuildError(request),
                AllOf(StartsWith("method: "),
                      HasSubstr(absl::StrCat("\"", method, "\""))));
  }
}

TEST_F(RequestValidationTest, HeadersAreKeptInOrder) {
  FetchRequest request = Url("http://a.test/");
  AddHeader(&request, "X-First", "1");
  AddHeader(&request, "Accept", "text/html, */*;q=0.1");
  AddHeader(&request, "X-Empty", "");
  std::unique_ptr<core::FetchJob> job = MustBuild(request);
  ASSERT_NE(job, nullptr);
  EXPECT_THAT(
      job->header_lines,
      ElementsAre("X-First: 1", "Accept: text/html, */*;q=0.1", "X-Empty: "));
}

TEST_F(RequestValidationTest, BadHeadersAreRejectedByPosition) {
  const struct {
    std::string name;
    std::string value;
    std::vector<std::string> message_parts;
  } kCases[] = {
      {"", "v", {"headers[1]: empty header name"}},
      {"X Space", "v", {"headers[1]: ", "not allowed in a token"}},
      {"X:Colon", "v", {"headers[1]: ", "not allowed in a token"}},
      {"X-\n", "v", {"headers[1]: ", "\\n", "contains CR, LF or NUL"}},
      {"X-Cr", "a\rb", {"headers[1]: ", "\"X-Cr\"", "CR, LF or NUL"}},
      {"X-Lf", "a\nInjected: yes", {"headers[1]: ", "CR, LF or NUL"}},
      {"X-Nul", std::string("a\0b", 3), {"headers[1]: ", "CR, LF or NUL"}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    FetchRequest request = Url("http://a.test/");
    AddHeader(&request, "X-Good", "fine");
    AddHeader(&request, c.name, c.value);
    const std::string message = BuildError(request);
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(message, HasSubstr(part));
    }
  }
}

TEST_F(RequestValidationTest, HeaderCountIsBounded) {
  ASSERT_EQ(config_.request_bounds().max_headers(), 100u);
  FetchRequest request = Url("http://a.test/");
  for (int i = 0; i < 100; ++i) AddHeader(&request, absl::StrCat("X-", i), "v");
  EXPECT_NE(MustBuild(request), nullptr);

  AddHeader(&request, "X-Too-Many", "v");
  EXPECT_EQ(BuildError(request),
            "headers: 101 headers exceed the limit of 100");
}

TEST_F(RequestValidationTest, BodySizeIsBounded) {
  const uint64_t max = config_.request_bounds().max_request_body_bytes();
  FetchRequest request = Url("http://a.test/");
  request.set_method("POST");
  request.set_body(std::string(max, 'b'));
  std::unique_ptr<core::FetchJob> job = MustBuild(request);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body.size(), max);

  request.mutable_body()->push_back('b');
  EXPECT_THAT(BuildError(request), StartsWith("body: "));
}

using Mutation = std::function<void(FetchRequest&)>;

struct OptionCase {
  std::string name;
  Mutation mutate;
  // Empty: the request is valid.
  std::vector<std::string> message_parts;
};

std::vector<OptionCase> OptionCases() {
  auto timeouts = [](FetchRequest& r) { return r.mutable_timeouts(); };
  auto retry = [](FetchRequest& r) { return r.mutable_retry(); };
  const google::protobuf::Duration kInvalid = [] {
    google::protobuf::Duration d;
    d.set_seconds(1);
    d.set_nanos(-5);
    return d;
  }();
  return {
      {"total at the maximum",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_total() = ToProto(absl::Seconds(300));
       },
       {}},
      {"total over the maximum",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_total() = ToProto(absl::Seconds(600));
       },
       {"timeouts.total: ", "exceeds the server maximum"}},
      {"total zero",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_total() = ToProto(absl::ZeroDuration());
       },
       {"timeouts.total: must be positive"}},
      {"total negative",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_total() = ToProto(absl::Seconds(-1));
       },
       {"timeouts.total: must be positive"}},
      {"total not a duration",
       [=](FetchRequest& r) { *timeouts(r)->mutable_total() = kInvalid; },
       {"timeouts.total: not a valid duration"}},
      {"connect over the maximum",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_connect() = ToProto(absl::Seconds(61));
       },
       {"timeouts.connect: ", "exceeds the server maximum"}},
      {"read_idle zero",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_read_idle() = ToProto(absl::ZeroDuration());
       },
       {"timeouts.read_idle: must be positive"}},
      {"queue over the maximum",
       [=](FetchRequest& r) {
         *timeouts(r)->mutable_queue() = ToProto(absl::Seconds(601));
       },
       {"timeouts.queue: ", "exceeds the server maximum"}},
      {"max_attempts 0",
       [=](FetchRequest& r) { retry(r)->set_max_attempts(0); },
       {"retry.max_attempts: must be between 1 and 10, got 0"}},
      {"max_attempts at the maximum",
       [=](FetchRequest& r) { retry(r)->set_max_attempts(10); },
       {}},
      {"max_attempts over the maximum",
       [=](FetchRequest& r) { retry(r)->set_max_attempts(11); },
       {"retry.max_attempts: must be between 1 and 10, got 11"}},
      {"base_backoff zero",
       [=](FetchRequest& r) {
         *retry(r)->mutable_base_backoff() = ToProto(absl::ZeroDuration());
       },
       {}},
      {"base_backoff negative",
       [=](FetchRequest& r) {
         *retry(r)->mutable_base_backoff() = ToProto(-absl::Milliseconds(1));
       },
       {"retry.base_backoff: must not be negative"}},
      {"max_backoff over the maximum",
       [=](FetchRequest& r) {
         *retry(r)->mutable_max_backoff() = ToProto(absl::Seconds(61));
       },
       {"retry.max_backoff: ", "exceeds the server maximum"}},
      {"retry_on NONE",
       [=](FetchRequest& r) {
         retry(r)->add_retry_on(fetch::v1::ERROR_KIND_NONE);
       },
       {"retry.retry_on: "}},
      {"retry_on unknown kind",
       [=](FetchRequest& r) {
         retry(r)->add_retry_on(static_cast<fetch::v1::ErrorKind>(999));
       },
       {"retry.retry_on: ", "999"}},
      {"retry_on_status 99",
       [=](FetchRequest& r) { retry(r)->add_retry_on_status(99); },
       {"retry.retry_on_status: not an HTTP status: 99"}},
      {"retry_on_status 600",
       [=](FetchRequest& r) { retry(r)->add_retry_on_status(600); },
       {"retry.retry_on_status: not an HTTP status: 600"}},
      {"max_redirects over the maximum",
       [=](FetchRequest& r) { r.set_max_redirects(21); },
       {"max_redirects: 21 exceeds the server maximum 20"}},
      {"max_redirects 0 is allowed",
       [=](FetchRequest& r) { r.set_max_redirects(0); },
       {}},
      {"max_body_bytes 0",
       [=](FetchRequest& r) { r.set_max_body_bytes(0); },
       {"max_body_bytes: must be between 1 and "}},
      {"max_body_bytes over the maximum",
       [=](FetchRequest& r) { r.set_max_body_bytes((64 << 20) + 1); },
       {"max_body_bytes: ", "got 67108865"}},
  };
}

TEST_F(RequestValidationTest, OptionsAreCheckedAgainstTheBounds) {
  for (const OptionCase& c : OptionCases()) {
    SCOPED_TRACE(c.name);
    FetchRequest request = Url("http://a.test/");
    c.mutate(request);
    if (c.message_parts.empty()) {
      EXPECT_NE(MustBuild(request), nullptr);
      continue;
    }
    const std::string message = BuildError(request);
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(message, HasSubstr(part));
    }
  }
}

// The same checks apply to batch defaults, with the field prefixed.
TEST_F(RequestValidationTest, BatchDefaultsAreCheckedWithPrefixedFields) {
  for (const OptionCase& c : OptionCases()) {
    SCOPED_TRACE(c.name);
    BatchRequest batch;
    *batch.add_requests() = Url("http://a.test/");
    c.mutate(*batch.mutable_defaults());
    const absl::Status status = validator_.ValidateBatch(batch);
    if (c.message_parts.empty()) {
      EXPECT_TRUE(status.ok()) << status;
      continue;
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), StartsWith("defaults."));
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(absl::StrCat("defaults.", c.message_parts[0])));
  }
}

TEST_F(RequestValidationTest, ServerDefaultsFillTheJob) {
  FetchRequest request = Url("http://a.test/");
  request.set_id("req-7");
  absl::StatusOr<std::unique_ptr<core::FetchJob>> built = Build(request, 7);
  ASSERT_TRUE(built.ok()) << built.status();
  const core::FetchJob& job = **built;
  EXPECT_EQ(job.batch, nullptr);
  EXPECT_EQ(job.index, 7u);
  EXPECT_EQ(job.id, "req-7");
  EXPECT_EQ(job.method, "GET");
  EXPECT_THAT(job.header_lines, IsEmpty());
  EXPECT_EQ(job.total_timeout, absl::Seconds(30));
  EXPECT_EQ(job.connect_timeout, absl::Seconds(10));
  EXPECT_EQ(job.read_idle_timeout, absl::Seconds(30));
  EXPECT_EQ(job.queue_timeout, absl::Seconds(60));
  EXPECT_EQ(job.retry.max_attempts, 3);
  EXPECT_EQ(job.retry.base_backoff, absl::Milliseconds(100));
  EXPECT_EQ(job.retry.max_backoff, absl::Seconds(10));
  EXPECT_THAT(job.retry.retry_on, IsEmpty());
  EXPECT_THAT(job.retry.retry_on_status, IsEmpty());
  EXPECT_TRUE(job.retry.honor_retry_after);
  EXPECT_FALSE(job.retry.retry_non_idempotent);
  EXPECT_EQ(job.retry.max_retry_after, absl::Seconds(60));
  EXPECT_TRUE(job.follow_redirects);
  EXPECT_EQ(job.max_redirects, 10u);
  EXPECT_EQ(job.max_body_bytes, uint64_t{2} << 20);
  EXPECT_FALSE(job.fail_on_http_error);
  EXPECT_TRUE(job.decompress);
  EXPECT_FALSE(job.stream_body);
  EXPECT_EQ(job.chunk_bytes, 256u << 10);
  EXPECT_EQ(job.attempts, 0);
}

TEST_F(RequestValidationTest, StreamedBodiesHaveTheirOwnCap) {
  FetchRequest request = Url("http://127.0.0.1/");
  request.set_stream_body(true);
  request.set_decompress(false);
  request.set_chunk_bytes(4096);
  std::unique_ptr<core::FetchJob> job = MustBuild(request);
  ASSERT_NE(job, nullptr);
  EXPECT_TRUE(job->stream_body);
  EXPECT_FALSE(job->decompress);
  EXPECT_EQ(job->chunk_bytes, 4096u);
  // No cap set: request_bounds.max_stream_body_bytes.
  EXPECT_EQ(job->max_body_bytes, uint64_t{16} << 30);
  request.set_max_body_bytes(uint64_t{1} << 30);
  job = MustBuild(request);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->max_body_bytes, uint64_t{1} << 30);
  // Inline, the same cap is over request_bounds.max_body_bytes.
  request.clear_stream_body();
  EXPECT_THAT(BuildError(request),
              HasSubstr("max_body_bytes: must be between 1 and 67108864, got "
                        "1073741824"));
  request.set_stream_body(true);
  request.set_max_body_bytes((uint64_t{16} << 30) + 1);
  EXPECT_THAT(BuildError(request),
              HasSubstr("for a streamed body "
                        "(request_bounds.max_stream_body_bytes)"));
}

TEST_F(RequestValidationTest, BatchDefaultsDecideWhetherACapIsStreamed) {
  FetchRequest defaults;
  defaults.set_stream_body(true);
  defaults.set_max_body_bytes(uint64_t{1} << 30);
  BatchRequest batch;
  *batch.add_requests() = Url("http://127.0.0.1/");
  *batch.mutable_defaults() = defaults;
  ASSERT_TRUE(validator_.ValidateBatch(batch).ok())
      << validator_.ValidateBatch(batch);
  const FetchRequest base = validator_.EffectiveDefaults(defaults);
  absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
      validator_.Build(base, Url("http://127.0.0.1/"), 0);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)->max_body_bytes, uint64_t{1} << 30);
  // A request that opts out of streaming can't keep the streamed cap.
  FetchRequest inline_request = Url("http://127.0.0.1/");
  inline_request.set_stream_body(false);
  EXPECT_FALSE(validator_.Build(base, inline_request, 0).ok());
  // Without streaming, the batch's cap is checked against the inline bound.
  batch.mutable_defaults()->clear_stream_body();
  EXPECT_THAT(std::string(validator_.ValidateBatch(batch).message()),
              HasSubstr("defaults.max_body_bytes"));
}

ServerConfig ConfigWithServerHeader() {
  ServerConfig config = config::DefaultServerConfig();
  fetch::v1::Header* header = config.mutable_request_defaults()->add_headers();
  header->set_name("X-Server");
  header->set_value("s");
  return config;
}

class MergeTest : public RequestValidationTest {
 protected:
  MergeTest() : RequestValidationTest(ConfigWithServerHeader()) {}
};

TEST_F(MergeTest, BatchDefaultsApplyAndRequestFieldsOverride) {
  FetchRequest defaults;
  defaults.set_method("PUT");
  AddHeader(&defaults, "X-Batch", "b");
  *defaults.mutable_timeouts()->mutable_total() = ToProto(absl::Seconds(5));
  *defaults.mutable_timeouts()->mutable_queue() = ToProto(absl::Seconds(7));
  defaults.mutable_retry()->set_max_attempts(5);
  defaults.mutable_retry()->add_retry_on_status(500);
  defaults.mutable_retry()->add_retry_on(fetch::v1::ERROR_KIND_TLS);
  defaults.set_follow_redirects(false);
  defaults.set_fail_on_http_error(true);
  const FetchRequest base = validator_.EffectiveDefaults(defaults);

  FetchRequest request = Url("http://a.test/");
  request.set_method("post");
  AddHeader(&request, "X-Request", "r");
  *request.mutable_timeouts()->mutable_connect() = ToProto(absl::Seconds(2));
  *request.mutable_timeouts()->mutable_queue() = ToProto(absl::Seconds(9));
  request.mutable_retry()->add_retry_on_status(502);
  request.mutable_retry()->add_retry_on_status(504);
  request.set_fail_on_http_error(false);

  absl::StatusOr<std::unique_ptr<core::FetchJob>> built =
      validator_.Build(base, request, 3);
  ASSERT_TRUE(built.ok()) << built.status();
  const core::FetchJob& job = **built;
  EXPECT_EQ(job.method, "POST");
  EXPECT_THAT(job.header_lines,
              ElementsAre("X-Server: s", "X-Batch: b", "X-Request: r"));
  EXPECT_EQ(job.total_timeout, absl::Seconds(5));                 // batch
  EXPECT_EQ(job.connect_timeout, absl::Seconds(2));               // request
  EXPECT_EQ(job.read_idle_timeout, absl::Seconds(30));            // server
  EXPECT_EQ(job.queue_timeout, absl::Seconds(9));                 // request
  EXPECT_EQ(job.retry.max_attempts, 5);                           // batch
  EXPECT_EQ(job.retry.base_backoff, absl::Milliseconds(100));     // server
  EXPECT_THAT(job.retry.retry_on_status, ElementsAre(502, 504));  // replaced
  EXPECT_THAT(job.retry.retry_on, ElementsAre(fetch::v1::ERROR_KIND_TLS));
  EXPECT_FALSE(job.follow_redirects);    // batch
  EXPECT_FALSE(job.fail_on_http_error);  // explicit false overrides batch
}

TEST_F(MergeTest, RequestWithoutListsKeepsTheBatchLists) {
  FetchRequest defaults;
  defaults.mutable_retry()->add_retry_on_status(500);
  defaults.mutable_retry()->add_retry_on(fetch::v1::ERROR_KIND_TLS);
  const FetchRequest base = validator_.EffectiveDefaults(defaults);
  absl::StatusOr<std::unique_ptr<core::FetchJob>> built =
      validator_.Build(base, Url("http://a.test/"), 0);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT((*built)->retry.retry_on_status, ElementsAre(500));
  EXPECT_THAT((*built)->retry.retry_on, ElementsAre(fetch::v1::ERROR_KIND_TLS));
  // The server headers come first even with no batch or request headers.
  EXPECT_THAT((*built)->header_lines, ElementsAre("X-Server: s"));
}

// A duration set at a lower precedence level is replaced as a whole, not
// merged field by field: 500ms over the default 30s is 500ms, not 30.5s.
TEST_F(MergeTest, DurationsAreReplacedNotMergedFieldByField) {
  const struct {
    std::string name;
    Mutation set;
    std::function<absl::Duration(const core::FetchJob&)> get;
    absl::Duration want;
  } kCases[] = {
      {"timeouts.total 500ms over 30s",
       [](FetchRequest& r) {
         *r.mutable_timeouts()->mutable_total() =
             ToProto(absl::Milliseconds(500));
       },
       [](const core::FetchJob& j) { return j.total_timeout; },
       absl::Milliseconds(500)},
      {"timeouts.connect 2.5s over 10s",
       [](FetchRequest& r) {
         *r.mutable_timeouts()->mutable_connect() =
             ToProto(absl::Milliseconds(2500));
       },
       [](const core::FetchJob& j) { return j.connect_timeout; },
       absl::Milliseconds(2500)},
      {"retry.base_backoff 2s over 100ms",
       [](FetchRequest& r) {
         *r.mutable_retry()->mutable_base_backoff() = ToProto(absl::Seconds(2));
       },
       [](const core::FetchJob& j) { return j.retry.base_backoff; },
       absl::Seconds(2)},
      {"retry.base_backoff 0 over 100ms",
       [](FetchRequest& r) {
         *r.mutable_retry()->mutable_base_backoff() =
             ToProto(absl::ZeroDuration());
       },
       [](const core::FetchJob& j) { return j.retry.base_backoff; },
       absl::ZeroDuration()},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    // Set on the request.
    FetchRequest request = Url("http://a.test/");
    c.set(request);
    absl::StatusOr<std::unique_ptr<core::FetchJob>> built = Build(request);
    ASSERT_TRUE(built.ok()) << built.status();
    EXPECT_EQ(c.get(**built), c.want) << "set on the request";

    // Set in the batch defaults.
    FetchRequest defaults;
    c.set(defaults);
    built = validator_.Build(validator_.EffectiveDefaults(defaults),
                             Url("http://a.test/"), 0);
    ASSERT_TRUE(built.ok()) << built.status();
    EXPECT_EQ(c.get(**built), c.want) << "set in the batch defaults";
  }
}

TEST_F(MergeTest, HeaderLimitCountsBatchAndServerHeaders) {
  FetchRequest defaults;
  for (int i = 0; i < 60; ++i) AddHeader(&defaults, absl::StrCat("X-B", i), "");
  const FetchRequest base = validator_.EffectiveDefaults(defaults);

  // 1 server + 60 batch + 39 request = 100: at the limit.
  FetchRequest request = Url("http://a.test/");
  for (int i = 0; i < 39; ++i) AddHeader(&request, absl::StrCat("X-R", i), "");
  absl::StatusOr<std::unique_ptr<core::FetchJob>> built =
      validator_.Build(base, request, 0);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ((*built)->header_lines.size(), 100u);

  AddHeader(&request, "X-R-last", "");
  built = validator_.Build(base, request, 0);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(built.status().message()),
              AllOf(StartsWith("headers: 101 headers"),
                    HasSubstr("with the batch defaults")));
}

TEST(MergeRequestTest, ListsReplaceHeadersAppendScalarsOverride) {
  FetchRequest dst;
  dst.set_method("GET");
  AddHeader(&dst, "A", "1");
  dst.mutable_retry()->add_retry_on(fetch::v1::ERROR_KIND_DNS);
  dst.mutable_retry()->add_retry_on_status(503);
  dst.mutable_retry()->set_max_attempts(3);

  FetchRequest src;
  src.set_method("POST");
  AddHeader(&src, "B", "2");
  src.mutable_retry()->add_retry_on(fetch::v1::ERROR_KIND_TLS);

  MergeRequest(src, &dst);
  EXPECT_EQ(dst.method(), "POST");
  ASSERT_EQ(dst.headers_size(), 2);
  EXPECT_EQ(dst.headers(0).name(), "A");
  EXPECT_EQ(dst.headers(1).name(), "B");
  EXPECT_THAT(dst.retry().retry_on(), ElementsAre(fetch::v1::ERROR_KIND_TLS));
  // Not set in src: kept.
  EXPECT_THAT(dst.retry().retry_on_status(), ElementsAre(503));
  EXPECT_EQ(dst.retry().max_attempts(), 3u);
}

TEST_F(RequestValidationTest, ValidBatchIsAccepted) {
  BatchRequest batch;
  *batch.add_requests() = Url("http://a.test/");
  // A bad request is that request's result, not a batch error.
  *batch.add_requests() = Url("ftp://a.test/");
  batch.mutable_defaults()->set_method("HEAD");
  EXPECT_TRUE(validator_.ValidateBatch(batch).ok());
}

TEST_F(RequestValidationTest, BatchLevelProblemsFailTheBatch) {
  const struct {
    std::string name;
    std::function<void(BatchRequest&)> mutate;
    std::string message_start;
  } kCases[] = {
      {"empty batch", [](BatchRequest& b) { b.clear_requests(); },
       "requests: the batch is empty"},
      {"defaults with an id",
       [](BatchRequest& b) { b.mutable_defaults()->set_id("x"); },
       "defaults.id: "},
      {"defaults with a url",
       [](BatchRequest& b) { b.mutable_defaults()->set_url("http://a.test/"); },
       "defaults.url: "},
      {"defaults with a bad method",
       [](BatchRequest& b) { b.mutable_defaults()->set_method("BREW"); },
       "defaults.method: "},
      {"defaults with a bad header",
       [](BatchRequest& b) { AddHeader(b.mutable_defaults(), "a b", "c"); },
       "defaults.headers[0]: "},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    BatchRequest batch;
    *batch.add_requests() = Url("http://a.test/");
    c.mutate(batch);
    const absl::Status status = validator_.ValidateBatch(batch);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), StartsWith(c.message_start));
  }
}

TEST(RequestValidatorTest, OversizeBatchNamesTheLimit) {
  ServerConfig config = config::DefaultServerConfig();
  config.mutable_limits()->set_max_batch_size(2);
  const auto gate = GateOf(config);
  const RequestValidator validator(config, gate.get());
  BatchRequest batch;
  for (int i = 0; i < 2; ++i) *batch.add_requests() = Url("http://a.test/");
  EXPECT_TRUE(validator.ValidateBatch(batch).ok());

  *batch.add_requests() = Url("http://a.test/");
  const absl::Status status = validator.ValidateBatch(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("3 requests"), HasSubstr("limit is 2"),
                    HasSubstr("limits.max_batch_size")));
}

TEST(RequestValidatorTest, CheckServerDefaults) {
  const struct {
    std::string name;
    std::function<void(FetchRequest&)> mutate;
    std::string message_start;  // empty: ok
  } kCases[] = {
      {"built-in defaults", [](FetchRequest&) {}, ""},
      {"total over the bound",
       [](FetchRequest& d) {
         *d.mutable_timeouts()->mutable_total() = ToProto(absl::Seconds(301));
       },
       "request_defaults.timeouts.total: "},
      {"max_attempts over the bound",
       [](FetchRequest& d) { d.mutable_retry()->set_max_attempts(11); },
       "request_defaults.retry.max_attempts: "},
      {"a timeout missing",
       [](FetchRequest& d) { d.mutable_timeouts()->clear_queue(); },
       "request_defaults.timeouts: "},
      {"max_attempts missing",
       [](FetchRequest& d) { d.mutable_retry()->clear_max_attempts(); },
       "request_defaults.retry.max_attempts: "},
      {"bad header", [](FetchRequest& d) { AddHeader(&d, "X", "a\nb"); },
       "request_defaults.headers[0]: "},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    ServerConfig config = config::DefaultServerConfig();
    c.mutate(*config.mutable_request_defaults());
    const absl::Status status =
        RequestValidator(config, GateOf(config).get()).CheckServerDefaults();
    if (c.message_start.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(status.message()), StartsWith(c.message_start));
    }
  }
}

// The destination policy, as far as it can be decided before any I/O, under
// the default config (no allow list): each of these is a DENIED result
// naming the rule, whatever spelling the URL uses.
TEST(RequestValidationPolicyTest, DeniedByDefaultBeforeAnyIo) {
  const ServerConfig config = config::DefaultServerConfig();
  const auto gate = GateOf(config);
  const RequestValidator validator(config, gate.get());
  ASSERT_TRUE(validator.CheckServerDefaults().ok());
  const struct {
    std::string url;
    std::string rule;
    std::string category;
  } kCases[] = {
      {"http://127.0.0.1/", "loopback 127.0.0.0/8", "loopback"},
      {"http://2130706433/", "loopback 127.0.0.0/8", "loopback"},
      {"http://0x7f.1/", "loopback 127.0.0.0/8", "loopback"},
      {"http://127.1/", "loopback 127.0.0.0/8", "loopback"},
      {"http://[::1]/", "loopback ::1/128", "loopback"},
      {"http://[::ffff:127.0.0.1]/", "loopback 127.0.0.0/8", "loopback"},
      {"http://localhost/", "host localhost", "host"},
      {"http://app.LOCALHOST:8080/", "host *.localhost", "host"},
      {"http://metadata.google.internal/computeMetadata/v1/",
       "host metadata.google.internal", "host"},
      {"http://169.254.169.254/latest/meta-data/", "link-local", "link-local"},
      {"http://10.0.0.1/", "private 10.0.0.0/8", "private"},
      {"http://[fd00::1]/", "unique-local", "unique-local"},
      {"http://100.64.0.1/", "cgnat", "cgnat"},
      {"file:///etc/passwd", "only http and https", "scheme"},
      {"gopher://example.com/", "only http and https", "scheme"},
      {"dict://example.com:11211/stat", "only http and https", "scheme"},
  };
  const FetchRequest base = validator.EffectiveDefaults(FetchRequest());
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.url);
    absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
        validator.Build(base, Url(c.url), 0);
    ASSERT_FALSE(job.ok());
    EXPECT_EQ(job.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(job.status().message(), HasSubstr(c.rule));
    EXPECT_EQ(PolicyCategory(job.status()), c.category);
  }
  // An ordinary public name passes (its addresses are checked on connect).
  EXPECT_TRUE(validator.Build(base, Url("https://example.com/"), 0).ok());
}

TEST(RequestValidationPolicyTest, AllowedOnlyByExplicitConfig) {
  ServerConfig config = config::DefaultServerConfig();
  fetch::v1::AddressRule* rule = config.mutable_policy()->add_allow();
  rule->set_cidr("127.0.0.1");
  rule->add_ports(8080);
  config.mutable_policy()->add_allow_hosts("localhost");
  const auto gate = GateOf(config);
  const RequestValidator validator(config, gate.get());
  ASSERT_TRUE(validator.CheckServerDefaults().ok());
  const FetchRequest base = validator.EffectiveDefaults(FetchRequest());
  EXPECT_TRUE(validator.Build(base, Url("http://127.0.0.1:8080/"), 0).ok());
  EXPECT_TRUE(validator.Build(base, Url("http://2130706433:8080/"), 0).ok());
  EXPECT_TRUE(validator.Build(base, Url("http://localhost:8080/"), 0).ok());
  // Another port of the same address is still denied.
  EXPECT_EQ(
      validator.Build(base, Url("http://127.0.0.1:8081/"), 0).status().code(),
      absl::StatusCode::kPermissionDenied);
}

// Through a proxy fetchd's connect-time check sees the proxy, so an
// operator can list the proxies callers may name.
TEST(RequestValidationPolicyTest, AllowedProxiesRestrictTheProxyUrl) {
  ServerConfig config = config::DefaultServerConfig();
  config.mutable_request_bounds()->add_allowed_proxies(
      "http://proxy.test:3128");
  const auto gate = GateOf(config);
  const RequestValidator validator(config, gate.get());
  const FetchRequest base = validator.EffectiveDefaults(FetchRequest());
  FetchRequest request;
  request.set_url("http://example.test/");
  request.mutable_proxy()->set_url("HTTP://proxy.test:3128");
  EXPECT_TRUE(validator.Build(base, request, 0).ok());
  request.mutable_proxy()->set_url("http://other.test:3128");
  const absl::Status denied = validator.Build(base, request, 0).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(),
              HasSubstr("not in request_bounds.allowed_proxies"));
  EXPECT_EQ(PolicyCategory(denied), "proxy");
}

TEST(RequestValidationPolicyTest, BadPolicyConfigFailsStartUp) {
  ServerConfig config = config::DefaultServerConfig();
  config.mutable_policy()->add_deny()->set_cidr("10.0.0.1/8");
  const absl::Status status =
      policy::DestinationGateFromConfig(config.policy()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("policy.deny[0]: invalid CIDR"));
}

// Framing headers and Host would let a caller smuggle requests or reroute
// them; CR/LF/NUL anywhere would let it inject headers.
TEST_F(RequestValidationTest, FramingAndInjectionHeadersAreRejected) {
  for (const std::string name :
       {"Content-Length", "transfer-encoding", "Connection", "Upgrade", "TE",
        "Keep-Alive", "Host"}) {
    SCOPED_TRACE(name);
    FetchRequest request = Url("http://a.test/");
    AddHeader(&request, name, "x");
    const std::string message = BuildError(request);
    EXPECT_THAT(message, HasSubstr("headers[0]: header \""));
    EXPECT_THAT(message, HasSubstr("not allowed"));
  }
  FetchRequest injected = Url("http://a.test/");
  AddHeader(&injected, "X-A\r\nHost: evil", "v");
  EXPECT_THAT(BuildError(injected), HasSubstr("contains CR, LF or NUL"));
}

class HostHeaderAllowedTest : public RequestValidationTest {
 protected:
  HostHeaderAllowedTest() : RequestValidationTest(Config()) {}
  static ServerConfig Config() {
    ServerConfig config = config::DefaultServerConfig();
    config.mutable_request_bounds()->set_allow_host_header(true);
    config.mutable_request_bounds()->set_max_header_bytes(64);
    return config;
  }
};

TEST_F(HostHeaderAllowedTest, HostAllowedByConfigAndHeaderBytesCapped) {
  FetchRequest request = Url("http://a.test/");
  AddHeader(&request, "Host", "b.test");
  EXPECT_NE(MustBuild(request), nullptr);
  AddHeader(&request, "X-Long", std::string(60, 'x'));
  EXPECT_THAT(BuildError(request),
              HasSubstr("exceed the limit of 64 (request_bounds.max_header_"
                        "bytes)"));
}

}  // namespace
}  // namespace fetchd::api
