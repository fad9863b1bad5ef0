// SubmitRequests: the last step of a call's requests on their way in —
// each request is validated and merged over the call's defaults into a job
// (RequestValidator::Build), checked against its caller's allowed hosts,
// and handed to the Fetcher; a request that fails gets its own final result
// (INVALID_REQUEST or DENIED) from here, delivered to the call, and the
// rest go on. Used by every FetchService handler.
//
// Thread-safety: a function of its arguments; call from any thread.
#ifndef FETCHD_SERVICE_API_SUBMIT_REQUESTS_H_
#define FETCHD_SERVICE_API_SUBMIT_REQUESTS_H_

#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fetch/v1/fetch.pb.h"
#include "service/api/call_env.h"
#include "service/api/request_validation.h"
#include "service/auth/caller_auth.h"
#include "service/core/batch.h"
#include "service/core/cookie_store.h"
#include "service/core/fetch_job.h"

namespace fetchd::api {

struct CallRequests {
  // The server's defaults with the call's laid over them
  // (RequestValidator::EffectiveDefaults).
  const fetch::v1::FetchRequest* defaults = nullptr;
  // The call's requests; the first one has index `first_index`.
  absl::Span<const fetch::v1::FetchRequest* const> requests;
  uint32_t first_index = 0;
  // The call's cookie jar; null: none.
  std::shared_ptr<core::CookieStore> cookie_jar;
  // Whether a request may ask for its body streamed (not in a unary call).
  bool allow_stream_body = true;
  // The call's own defaults set timeouts.queue: its requests wait for an
  // open breaker when that timeout allows (FetchJob::wait_for_open_breaker).
  bool defaults_set_queue_timeout = false;
};

// Submits `requests` of `call`, made by `caller` and admitted at `admitted`
// (env.clock), and flushes the results of those that failed. Every request
// gets exactly one final result through `call`.
void SubmitRequests(const RequestValidator& validator, const CallEnv& env,
                    const auth::Caller& caller,
                    const std::shared_ptr<core::Batch>& call,
                    const CallRequests& requests, absl::Time admitted);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_SUBMIT_REQUESTS_H_
