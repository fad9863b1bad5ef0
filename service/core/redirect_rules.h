// Redirect rules, as pure functions on plain data: which responses redirect,
// what the method and body become, and which request headers a hop keeps.
// The rules of browsers and aiohttp:
//  - 301, 302, 303, 307 and 308 with a Location redirect;
//  - 303 turns every method but HEAD into GET; 301 and 302 turn POST into
//    GET; 307 and 308 keep the method and the body. A request turned into
//    GET loses its body and its Content-Type;
//  - credentials (Authorization, Cookie, Proxy-Authorization) are for the
//    origin they were given for: a hop to another origin (scheme, host or
//    port) drops them.
//
// Thread-safety: stateless.
#ifndef FETCHD_SERVICE_CORE_REDIRECT_RULES_H_
#define FETCHD_SERVICE_CORE_REDIRECT_RULES_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "service/core/fetch_job.h"

namespace fetchd::core {

// 301, 302, 303, 307 or 308: a status a Location is followed for.
[[nodiscard]] bool IsRedirectStatus(uint32_t status);

// Whether following a `status` redirect turns a `method` request into a GET
// without a body.
[[nodiscard]] bool RedirectTurnsIntoGet(uint32_t status,
                                        absl::string_view method);

// Authorization, Cookie or Proxy-Authorization, in any case.
[[nodiscard]] bool IsCredentialHeader(absl::string_view name);

// Moves `job` on to `url` (whose host key is `host_key`) after a `status`
// redirect from its current URL: records the hop, rewrites the method and
// body, drops the headers the hop may not carry (credentials when the host
// key changes), and marks the next start as the same attempt.
void RedirectJob(FetchJob& job, uint32_t status, std::string url,
                 std::string host_key);

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_REDIRECT_RULES_H_
