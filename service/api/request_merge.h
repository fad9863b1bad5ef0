// Step 2 of a request's way in (parse/validate → merge defaults → build the
// job → submit): the server's defaults, then the batch's, then the
// request's own fields, each laid over the one before. Pure functions.
#ifndef FETCHD_SERVICE_API_REQUEST_MERGE_H_
#define FETCHD_SERVICE_API_REQUEST_MERGE_H_

#include "fetch/v1/fetch.pb.h"

namespace fetchd::api {

// `dst` with the fields set in `src` laid over it (MergeOver: a Duration
// replaces the previous one whole). Headers are appended; a non-empty
// retry_on / retry_on_status list replaces the previous one; a body or
// credentials replace the previous ones whole.
void MergeRequest(const fetch::v1::FetchRequest& src,
                  fetch::v1::FetchRequest* dst);

// The server's defaults with a call's (checked) defaults laid over them:
// computed once per call. The server's body cap is left out: a streamed
// body's cap defaults to another bound (JobRules).
fetch::v1::FetchRequest EffectiveDefaults(
    const fetch::v1::FetchRequest& server_defaults,
    const fetch::v1::FetchRequest& call_defaults);

// `request` laid over `defaults` (from EffectiveDefaults).
fetch::v1::FetchRequest MergedRequest(const fetch::v1::FetchRequest& defaults,
                                      const fetch::v1::FetchRequest& request);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_REQUEST_MERGE_H_
