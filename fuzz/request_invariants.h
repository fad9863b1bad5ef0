// What RequestValidator::Build promises, checked on every outcome by the
// request fuzzers (url_fuzzer, request_proto_fuzzer).
#ifndef FETCHD_FUZZ_REQUEST_INVARIANTS_H_
#define FETCHD_FUZZ_REQUEST_INVARIANTS_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "fuzz/fuzz_check.h"
#include "service/api/request_validation.h"
#include "service/common/proto_duration.h"
#include "service/config/server_config.h"
#include "service/core/fetch_job.h"
#include "service/policy/policy_config.h"

namespace fetchd::fuzz {

// The validator under the server's built-in default config, as fetchd runs
// it without a config file.
struct ValidatorEnv {
  ValidatorEnv()
      : config(config::DefaultServerConfig()),
        gate(*policy::DestinationGateFromConfig(config.policy())),
        validator(config, gate.get()),
        server_defaults(
            validator.EffectiveDefaults(fetch::v1::FetchRequest())) {
    const absl::Status s = validator.CheckServerDefaults();
    FUZZ_CHECK(s.ok(), s.ToString());
  }
  const fetch::v1::ServerConfig config;
  const std::shared_ptr<const policy::DestinationGate> gate;
  const api::RequestValidator validator;
  const fetch::v1::FetchRequest server_defaults;
};

inline bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// No byte a request line or header could be split or padded with.
inline bool NoControlOrSpace(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// An error names the field and the rule: "<field>: <rule>".
inline void CheckRejection(const absl::Status& status) {
  // InvalidArgument, or PermissionDenied for the destination policy.
  FUZZ_CHECK(
      absl::IsInvalidArgument(status) || absl::IsPermissionDenied(status),
      status.ToString());
  const absl::string_view msg = status.message();
  const size_t colon = msg.find(": ");
  FUZZ_CHECK(
      colon != absl::string_view::npos && colon > 0 && colon + 2 < msg.size(),
      "error without \"field: rule\": ", Quote(msg));
}

inline void CheckDurationIn(absl::Duration d, absl::Duration lo_exclusive,
                            const google::protobuf::Duration& max,
                            const char* what) {
  FUZZ_CHECK(d > lo_exclusive && d <= FromProto(max), what, " = ",
             absl::FormatDuration(d), " outside (",
             absl::FormatDuration(lo_exclusive), ", ",
             absl::FormatDuration(FromProto(max)), "]");
}

// The job Build made from `request`: every resolved option within the
// server's bounds, the URL normalized and safe to put on a request line,
// the host key canonical.
inline void CheckJob(const ValidatorEnv& env,
                     const fetch::v1::FetchRequest& request, uint32_t index,
                     const core::FetchJob& job) {
  const fetch::v1::RequestBounds& b = env.config.request_bounds();
  FUZZ_CHECK(job.index == index);
  FUZZ_CHECK(job.id == request.id());
  FUZZ_CHECK(!request.url().empty() &&
             request.url().size() <= b.max_url_bytes());

  // URL and host key.
  FUZZ_CHECK(NoControlOrSpace(job.url), "url ", Quote(job.url));
  const std::string& key = job.host_key;
  const std::string scheme = key.starts_with("https://") ? "https" : "http";
  FUZZ_CHECK(key.starts_with(scheme + "://"), "host_key ", Quote(key));
  FUZZ_CHECK(absl::AsciiStrToLower(job.url).starts_with(scheme + "://"), "url ",
             Quote(job.url), " vs host_key ", Quote(key));
  FUZZ_CHECK(absl::AsciiStrToLower(key) == key, "host_key ", Quote(key));
  FUZZ_CHECK(NoControlOrSpace(key), "host_key ", Quote(key));
  const size_t colon = key.rfind(':');
  FUZZ_CHECK(colon != std::string::npos && colon > scheme.size() + 3,
             "host_key ", Quote(key));
  uint32_t port = 0;
  FUZZ_CHECK(absl::SimpleAtoi(key.substr(colon + 1), &port) && port <= 65535,
             "host_key ", Quote(key));

  // Method and headers.
  FUZZ_CHECK(job.method == "GET" || job.method == "HEAD" ||
                 job.method == "POST" || job.method == "PUT" ||
                 job.method == "PATCH" || job.method == "DELETE" ||
                 job.method == "OPTIONS",
             "method ", Quote(job.method));
  FUZZ_CHECK(job.header_lines.size() <= b.max_headers());
  for (const std::string& line : job.header_lines) {
    const size_t sep = line.find(": ");
    FUZZ_CHECK(sep != std::string::npos && sep > 0, "header ", Quote(line));
    FUZZ_CHECK(std::all_of(line.begin(), line.begin() + sep, IsTokenChar),
               "header ", Quote(line));
    FUZZ_CHECK(
        line.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
        "header ", Quote(line));
  }
  FUZZ_CHECK(job.body.size() <= b.max_request_body_bytes());

  // Timeouts, retries and limits: every one set (the server defaults are
  // complete) and inside the bounds, whichever layer it came from.
  CheckDurationIn(job.total_timeout, absl::ZeroDuration(),
                  b.max_total_timeout(), "total_timeout");
  CheckDurationIn(job.connect_timeout, absl::ZeroDuration(),
                  b.max_connect_timeout(), "connect_timeout");
  CheckDurationIn(job.read_idle_timeout, absl::ZeroDuration(),
                  b.max_read_idle_timeout(), "read_idle_timeout");
  CheckDurationIn(job.queue_timeout, absl::ZeroDuration(),
                  b.max_queue_timeout(), "queue_timeout");
  FUZZ_CHECK(
      job.retry.max_attempts >= 1 &&
          static_cast<uint32_t>(job.retry.max_attempts) <= b.max_attempts(),
      "max_attempts ", job.retry.max_attempts);
  FUZZ_CHECK(job.retry.base_backoff >= absl::ZeroDuration());
  CheckDurationIn(job.retry.max_backoff, absl::ZeroDuration(), b.max_backoff(),
                  "max_backoff");
  for (fetch::v1::ErrorKind kind : job.retry.retry_on) {
    FUZZ_CHECK(kind != fetch::v1::ERROR_KIND_NONE &&
                   fetch::v1::ErrorKind_IsValid(kind),
               "retry_on ", static_cast<int>(kind));
  }
  for (uint32_t status : job.retry.retry_on_status) {
    FUZZ_CHECK(status >= 100 && status <= 599, "retry_on_status ", status);
  }
  FUZZ_CHECK(job.max_redirects <= b.max_redirects());
  // A streamed body has its own bound.
  const uint64_t max_body =
      job.stream_body ? b.max_stream_body_bytes() : b.max_body_bytes();
  FUZZ_CHECK(job.max_body_bytes >= 1 && job.max_body_bytes <= max_body,
             "max_body_bytes ", job.max_body_bytes);
  FUZZ_CHECK(job.chunk_bytes >= 1024 && job.chunk_bytes <= b.max_chunk_bytes(),
             "chunk_bytes ", job.chunk_bytes);
}

// Builds `request` over `base` and checks the outcome. A job's URL is a fixed
// point: building its normalized URL again gives the same URL and host key,
// so a retry or redirect bookkeeping never lands on another host lane.
inline void BuildAndCheck(const ValidatorEnv& env,
                          const fetch::v1::FetchRequest& base,
                          const fetch::v1::FetchRequest& request,
                          uint32_t index) {
  absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
      env.validator.Build(base, request, index);
  if (!job.ok()) {
    CheckRejection(job.status());
    return;
  }
  CheckJob(env, request, index, **job);

  fetch::v1::FetchRequest again;
  again.set_url((*job)->url);
  absl::StatusOr<std::unique_ptr<core::FetchJob>> job2 =
      env.validator.Build(env.server_defaults, again, index);
  FUZZ_CHECK(job2.ok(), "normalized url ", Quote((*job)->url), " of ",
             Quote(request.url()), " rejected: ", job2.status().ToString());
  FUZZ_CHECK((*job2)->url == (*job)->url, Quote((*job)->url), " -> ",
             Quote((*job2)->url));
  FUZZ_CHECK((*job2)->host_key == (*job)->host_key, Quote((*job)->host_key),
             " -> ", Quote((*job2)->host_key), " for ", Quote(request.url()));
}

}  // namespace fetchd::fuzz

#endif  // FETCHD_FUZZ_REQUEST_INVARIANTS_H_
