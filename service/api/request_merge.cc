#include "service/api/request_merge.h"

#include "service/api/request_content.h"
#include "service/common/proto_merge.h"

namespace fetchd::api {

using fetch::v1::FetchRequest;

void MergeRequest(const FetchRequest& src, FetchRequest* dst) {
  if (src.retry().retry_on_size() > 0) dst->mutable_retry()->clear_retry_on();
  if (src.retry().retry_on_status_size() > 0) {
    dst->mutable_retry()->clear_retry_on_status();
  }
  ClearReplacedContent(src, dst);
  MergeOver(src, dst);
}

FetchRequest EffectiveDefaults(const FetchRequest& server_defaults,
                               const FetchRequest& call_defaults) {
  FetchRequest effective = server_defaults;
  effective.clear_max_body_bytes();
  MergeRequest(call_defaults, &effective);
  return effective;
}

FetchRequest MergedRequest(const FetchRequest& defaults,
                           const FetchRequest& request) {
  FetchRequest effective = defaults;
  MergeRequest(request, &effective);
  return effective;
}

}  // namespace fetchd::api
