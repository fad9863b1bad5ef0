// Command line of fetchctl, the fetchd CLI: parsing argv into
// FetchctlOptions, and turning those options (plus the URLs or the batch
// input) into one fetch.v1.BatchRequest.
//
// Pure apart from reading the files named by -f FILE and -d @FILE (and stdin
// for `batch` without -f). ParseFetchctlArgs() uses getopt_long, whose state
// is global: call it from one thread at a time.
#ifndef FETCHD_CLIENT_FETCHCTL_OPTIONS_H_
#define FETCHD_CLIENT_FETCHCTL_OPTIONS_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {

// fetchctl's exit status (also listed by --help).
enum ExitCode : int {
  // Every result has error ERROR_KIND_NONE; `health`: SERVING.
  kExitOk = 0,
  // At least one result has an error; `health`: not SERVING.
  kExitFailedResults = 1,
  // Bad option, unreadable file, bad JSON line.
  kExitUsage = 2,
  // The RPC failed: fetchd unreachable, RESOURCE_EXHAUSTED, ...
  kExitRpcError = 3,
};

inline constexpr absl::string_view kDefaultServer = "127.0.0.1:50051";

enum class Command { kGet, kBatch, kHealth, kWs, kHelp };

// Whether fetchctl draws a progress bar on stderr.
enum class ProgressMode {
  kAuto,  // iff stderr is a terminal
  kOn,
  kOff,
};

// How fetchctl reaches fetchd: the contents of the files named by the
// flags, ready for ClientOptions (client/fetch_client.h).
struct ServerConnection {
  // --tls, or implied by any of the three below.
  bool tls = false;
  // --server-cacert; empty: the system's CAs.
  std::string ca_cert_pem;
  // --server-cert and --server-key (both or neither).
  std::string client_cert_pem;
  std::string client_key_pem;
  // --tls-server-name.
  std::string tls_server_name;
  // --token-file's first line, else $FETCHD_TOKEN; empty: none.
  std::string bearer_token;
};

struct FetchctlOptions {
  Command command = Command::kHelp;
  // gRPC target of fetchd: --server, else $FETCHD_SERVER, else
  // kDefaultServer.
  std::string server;
  ServerConnection connection;
  // `get`: the URLs, in command line order; `ws`: the one URL.
  std::vector<std::string> urls;
  // `batch`: the input file; "-" is stdin.
  std::string input_path = "-";
  // The batch without its requests: `defaults` (from the request options)
  // and the batch options.
  fetch::v1::BatchRequest batch_template;
  // Deadline of the RPC, from its start.
  absl::Duration rpc_deadline = absl::InfiniteDuration();
  // Keep FetchResult.body in the JSON output.
  bool include_body = false;
  // `get -o FILE`: stream the one URL's body into FILE ("-": stdout).
  std::string output_path;
  // No JSON output; only the summary and the exit status.
  bool quiet = false;
  // -v: a human-readable summary of each result on stderr
  // (VerboseSummary(), client/result_summary.h).
  bool verbose = false;
  ProgressMode progress = ProgressMode::kAuto;
};

// Parses fetchctl's command line. `args[0]` is the program name.
// `env_server` is the value of $FETCHD_SERVER, `env_token` that of
// $FETCHD_TOKEN ("" when unset).
//
// Returns command kHelp when -h/--help is given. Errors: INVALID_ARGUMENT
// with a message naming the offending flag or argument (unknown flag,
// missing or malformed value, header without ':', unreadable -d @FILE,
// -F @FILE or --json @FILE, two body kinds (-d, --json, -F,
// --data-urlencode) together, -u without ':',
// unreadable or non-PEM certificate file, --server-cert without
// --server-key or the reverse, empty or unreadable --token-file, missing
// command or URL, an argument after `health`). No message quotes a token.
absl::StatusOr<FetchctlOptions> ParseFetchctlArgs(
    const std::vector<std::string>& args, absl::string_view env_server,
    absl::string_view env_token = "");

// The --help text: synopsis, every flag and the exit statuses.
std::string FetchctlUsage();

// Parses batch input: one request per line. A line starting with '{' is a
// FetchRequest in the protobuf JSON mapping; any other line is a URL. Blank
// lines and lines starting with '#' are skipped; surrounding whitespace
// (including a CR of CRLF input) is ignored.
//
// Errors: INVALID_ARGUMENT naming the (1-based) line number of a line that is
// not a valid JSON FetchRequest, or if reading `input` fails.
absl::StatusOr<std::vector<fetch::v1::FetchRequest>> ParseBatchInput(
    std::istream& input);

// The request to send: options.batch_template with one request per URL for
// `get`, or the requests read from options.input_path for `batch`.
//
// Errors: INVALID_ARGUMENT if the input file cannot be read, has a bad line or
// no request at all, or for a command that sends no batch.
absl::StatusOr<fetch::v1::BatchRequest> BuildBatchRequest(
    const FetchctlOptions& options);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCHCTL_OPTIONS_H_
