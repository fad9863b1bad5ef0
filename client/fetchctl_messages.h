// What fetchctl says on stderr when something goes wrong: usage errors,
// RPC errors, and the way out of a body over the cap. Each message names
// things in the user's terms (flags, not proto fields).
//
// Thread-compatible: the printing functions write to stderr.
#ifndef FETCHD_CLIENT_FETCHCTL_MESSAGES_H_
#define FETCHD_CLIENT_FETCHCTL_MESSAGES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/fetchctl_options.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {

// Prints "fetchctl: MESSAGE" and the pointer to --help; returns kExitUsage.
int UsageError(absl::string_view message);

// Prints "fetchctl: CODE: MESSAGE"; returns kExitRpcError.
int RpcError(const absl::Status& status);

// The lines to print after a BODY_TOO_LARGE result: the cap (from fetchd's
// message, else --max-filesize, else fetchd's default) and the ways past
// it: --max-filesize BYTES (up to fetchd's bound) or, for one URL,
// `get -o FILE`, which streams with no cap. Ends with '\n'.
std::string BodyTooLargeHint(const fetch::v1::FetchResult& result,
                             const FetchctlOptions& options);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCHCTL_MESSAGES_H_
