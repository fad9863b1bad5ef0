#include "service/core/redirect_rules.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"

namespace fetchd::core {
namespace {

// The name of a "Name: value" header line.
absl::string_view HeaderName(absl::string_view line) {
  return line.substr(0, line.find(':'));
}

}  // namespace

bool IsRedirectStatus(uint32_t status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

bool RedirectTurnsIntoGet(uint32_t status, absl::string_view method) {
  return (status == 303 && method != "HEAD") ||
         ((status == 301 || status == 302) && method == "POST");
}

bool IsCredentialHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "authorization") ||
         absl::EqualsIgnoreCase(name, "cookie") ||
         absl::EqualsIgnoreCase(name, "proxy-authorization");
}

void RedirectJob(FetchJob& job, uint32_t status, std::string url,
                 std::string host_key) {
  job.redirect_history.push_back(RedirectHop{job.url, status});
  const bool to_get = RedirectTurnsIntoGet(status, job.method);
  // Same scheme, host and port: the same host key.
  const bool cross_origin = job.host_key != host_key;
  std::erase_if(job.header_lines, [&](const std::string& line) {
    const absl::string_view name = HeaderName(line);
    if (to_get && absl::EqualsIgnoreCase(name, "content-type")) return true;
    return cross_origin && IsCredentialHeader(name);
  });
  if (to_get) {
    job.method = "GET";
    job.body.clear();
    job.multipart.clear();
  }
  job.url = std::move(url);
  job.host_key = std::move(host_key);
  job.redirect_pending = true;
}

}  // namespace fetchd::core
