// Laying one message over another for defaults and overrides.
//
// Message::MergeFrom merges google.protobuf.Duration field by field, so a
// default of 30s under an override of 0.4s gives 30.4s. MergeOver() treats a
// Duration as one value: a Duration set in `src` replaces the one in `dst`.
// Everything else follows MergeFrom (set scalars and submessages override,
// repeated fields append).
#ifndef FETCHD_SERVICE_COMMON_PROTO_MERGE_H_
#define FETCHD_SERVICE_COMMON_PROTO_MERGE_H_

#include "google/protobuf/message.h"

namespace fetchd {

// `src` and `dst` must be of the same type.
void MergeOver(const google::protobuf::Message& src,
               google::protobuf::Message* dst);

}  // namespace fetchd

#endif  // FETCHD_SERVICE_COMMON_PROTO_MERGE_H_
