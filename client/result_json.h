// fetchctl's output line: a FetchResult in the protobuf JSON mapping, in
// which "index", "status" and "attempts" are always present (proto3 JSON
// leaves out zeros, so the first result of a batch had no "index"), so a
// consumer can rely on them.
//
// Thread-safety: pure function.
#ifndef FETCHD_CLIENT_RESULT_JSON_H_
#define FETCHD_CLIENT_RESULT_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {

// One line of JSON, without the newline; the body only when `include_body`.
// Fields keep the mapping's order (field number) and camelCase names.
// Errors: INTERNAL if protobuf cannot print the message.
absl::StatusOr<std::string> ResultJson(const fetch::v1::FetchResult& result,
                                       bool include_body);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_RESULT_JSON_H_
