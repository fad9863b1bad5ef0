#include "service/api/submit_requests.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/api/job_builder.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;

// The result of a request that never reached a worker.
FetchResult RefusedResult(const FetchRequest& request, uint32_t index,
                          fetch::v1::ErrorKind error,
                          absl::string_view message) {
  FetchResult result;
  result.set_id(request.id());
  result.set_index(index);
  result.set_final_url(request.url());
  result.set_error(error);
  result.set_error_message(std::string(message));
  return result;
}

// The caller's destination rule, for its requests' URLs and for every
// redirect hop; null when the caller may fetch every host.
std::shared_ptr<const policy::HostRule> CallerHostRule(
    const auth::Caller& caller) {
  const auth::CallerRules& rules = *caller.rules;
  if (rules.allowed_hosts.allows_all()) return nullptr;
  return std::make_shared<const policy::HostRule>(
      [allowed = rules.allowed_hosts, name = caller.DisplayName(),
       field = std::string(rules.field)](
          absl::string_view hop_host) -> std::optional<std::string> {
        const absl::string_view host(hop_host.data(), hop_host.size());
        if (allowed.Allows(host)) return std::nullopt;
        return absl::StrCat("caller \"", name, "\" may not fetch host \"", host,
                            "\": not in ", field, ".allowed_hosts");
      });
}

// Reports the final result of a request that failed before any worker saw
// it: the policy category of a denial, and the result itself.
void ReportRefused(const CallEnv& env, const FetchRequest& request,
                   const FetchRequest& defaults, const FetchResult& result,
                   absl::string_view denied_category, absl::Time admitted) {
  if (env.observer == nullptr) return;
  if (!denied_category.empty()) {
    env.observer->OnPolicyDenied(denied_category);
  }
  // Sampling only (the access log): a thread's own generator, no lock.
  thread_local absl::InsecureBitGen rng;
  const std::string& method =
      request.method().empty() ? defaults.method() : request.method();
  env.observer->OnResult(
      core::FinishedRequest{method, request.url(),
                            /*host_key=*/{}, env.clock->Now() - admitted},
      result, rng);
}

}  // namespace

void SubmitRequests(const RequestValidator& validator, const CallEnv& env,
                    const auth::Caller& caller,
                    const std::shared_ptr<core::Batch>& call,
                    const CallRequests& requests, absl::Time admitted) {
  const std::shared_ptr<const policy::HostRule> host_rule =
      CallerHostRule(caller);
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  jobs.reserve(requests.requests.size());
  bool refused_any = false;
  for (size_t i = 0; i < requests.requests.size(); ++i) {
    const FetchRequest& request = *requests.requests[i];
    const auto index = static_cast<uint32_t>(requests.first_index + i);
    absl::StatusOr<std::unique_ptr<core::FetchJob>> job =
        validator.Build(*requests.defaults, request, index, host_rule.get());
    if (job.ok()) {
      (*job)->wait_for_open_breaker =
          requests.defaults_set_queue_timeout || request.timeouts().has_queue();
    }
    if (job.ok() && (*job)->stream_body && !requests.allow_stream_body) {
      job = absl::InvalidArgumentError(
          "stream_body: Fetch returns the body in its result; use FetchBatch "
          "to stream it");
    }
    if (!job.ok()) {
      const bool denied =
          job.status().code() == absl::StatusCode::kPermissionDenied;
      FetchResult refused =
          RefusedResult(request, index,
                        denied ? fetch::v1::ERROR_KIND_DENIED
                               : fetch::v1::ERROR_KIND_INVALID_REQUEST,
                        job.status().message());
      ReportRefused(env, request, *requests.defaults, refused,
                    PolicyCategory(job.status()), admitted);
      call->Deliver(std::move(refused), /*holds_window=*/false);
      refused_any = true;
      continue;
    }
    (*job)->batch = call;
    (*job)->admitted_at = admitted;
    (*job)->caller_host_check = host_rule;
    (*job)->cookie_jar = requests.cookie_jar;
    jobs.push_back(*std::move(job));
  }
  if (refused_any) call->Flush();
  if (!jobs.empty()) env.fetcher->Submit(std::move(jobs));
}

}  // namespace fetchd::api
