// `fetchctl get URL -o FILE`: streams one response body into a file
// through FetchClient::FetchStreamed, with a progress display on stderr
// (ByteProgress).
#ifndef FETCHD_CLIENT_FETCHCTL_DOWNLOAD_H_
#define FETCHD_CLIENT_FETCHCTL_DOWNLOAD_H_

#include "absl/time/time.h"
#include "client/fetch_client.h"
#include "client/fetchctl_options.h"

namespace fetchd::client {

// Runs the download that `options` describe (command kGet, one URL,
// output_path set) and returns fetchctl's exit status: kExitOk, or
// kExitFailedResults when the result has an error (the file then holds
// what arrived before it), kExitUsage when FILE can't be opened or
// written (the call is cancelled) or fetchd rejects a value a flag gave
// (UsageErrorFromServer()), kExitRpcError when the RPC fails otherwise.
// The request is options' whole batch (defaults and batch options such as
// cookies), as without -o.
// The result (without its body) goes to stdout as JSON unless --quiet or
// FILE is "-".
int RunDownload(FetchClient& client, const FetchctlOptions& options,
                absl::Time deadline);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCHCTL_DOWNLOAD_H_
