// Command line of fetchctl, the fetchd CLI: parsing argv into
// FetchctlOptions, and turning those options (plus the URLs or the batch
// input) into one fetch.v1.BatchRequest.
//
// The flags themselves (names, help) are declared once in
// fetchctl_flags.cc; CLI11 tokenizes the command line.
//
// Pure apart from reading the files named by -f FILE and -d @FILE (and stdin
// for `batch` without -f). Thread-safe.
#ifndef FETCHD_CLIENT_FETCHCTL_OPTIONS_H_
#define FETCHD_CLIENT_FETCHCTL_OPTIONS_H_

#include <fstream>
#include <istream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {

// fetchctl's exit status; kExitCodeMeanings says what each means.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailedResults = 1,
  kExitUsage = 2,
  kExitRpcError = 3,
};

// The one description of the exit statuses (--help prints it).
inline constexpr std::pair<ExitCode, absl::string_view> kExitCodeMeanings[] = {
    {kExitOk,
     "every request succeeded (error ERROR_KIND_NONE); health: SERVING"},
    {kExitFailedResults, "at least one request failed; health: not SERVING"},
    {kExitUsage,
     "usage error: bad option or value, unreadable file, bad JSON line, or\n"
     "a request fetchd rejected as invalid (named by its flag)"},
    {kExitRpcError,
     "RPC error (fetchd unreachable, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,\n"
     "...); the status is printed on stderr after the results received"},
};

inline constexpr absl::string_view kDefaultServer = "127.0.0.1:50051";

enum class Command { kGet, kBatch, kHealth, kWs, kHelp, kVersion };

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
// Returns command kHelp when -h/--help is given, else kVersion when
// --version is. Flags may come before or after the command and URLs; "--"
// ends them. Errors: INVALID_ARGUMENT
// with a message naming the offending flag or argument (unknown flag,
// missing or malformed value, header without ':', unreadable -d @FILE,
// -F @FILE or --json @FILE, --json that is not JSON, a header fetchd
// refuses (a framing header such as Content-Length, a name that is not an
// HTTP token), two body kinds (-d, --json, -F,
// --data-urlencode) together, -u without ':',
// unreadable or non-PEM certificate file, --server-cert without
// --server-key or the reverse, empty or unreadable --token-file, missing
// command or URL, an argument after `health`). No message quotes a token.
absl::StatusOr<FetchctlOptions> ParseFetchctlArgs(
    const std::vector<std::string>& args, absl::string_view env_server,
    absl::string_view env_token = "");

// The --help text: synopsis, every flag and the exit statuses.
std::string FetchctlUsage();

// The --version text: "fetchctl VERSION (BUILD)\n".
std::string FetchctlVersion();

// fetchd's INVALID_ARGUMENT about a field that fetchctl's flags or input
// set ("defaults.headers[0]: header ... ", "cookies[0]: ...",
// "requests[2].url: ..."), said in the user's terms: the flag and the value
// given, or the request's position, then fetchd's reason and its field.
// nullopt for any other status.
std::optional<std::string> UsageErrorFromServer(const absl::Status& status,
                                                const FetchctlOptions& options);

// Parses batch input: one request per line. A line starting with '{' is a
// FetchRequest in the protobuf JSON mapping; any other line is a URL. Blank
// lines and lines starting with '#' are skipped; surrounding whitespace
// (including a CR of CRLF input) is ignored.
//
// Errors: INVALID_ARGUMENT naming the (1-based) line number of a line that is
// not a valid JSON FetchRequest, or if reading `input` fails.
absl::StatusOr<std::vector<fetch::v1::FetchRequest>> ParseBatchInput(
    std::istream& input);

// `batch`'s input: std::cin for "-", else options.input_path opened into
// `file`. Errors: INVALID_ARGUMENT naming a file that can't be opened.
absl::StatusOr<std::istream*> OpenBatchInput(const FetchctlOptions& options,
                                             std::ifstream& file);
// "stdin" or the input path, for messages.
std::string BatchInputName(const FetchctlOptions& options);

// Reads batch input (the format of ParseBatchInput) one request at a time,
// so that `fetchctl batch` sends each as soon as it is read.
class BatchInputReader {
 public:
  // `input` must outlive the reader.
  explicit BatchInputReader(std::istream& input) : input_(input) {}

  // The next request; nullopt at the end of the input. Errors as for
  // ParseBatchInput().
  absl::StatusOr<std::optional<fetch::v1::FetchRequest>> Next();
  // Whether more input can be read now without waiting (a buffered line, or
  // bytes already in the pipe or file).
  bool Ready() const { return input_.rdbuf()->in_avail() > 0; }

 private:
  std::istream& input_;
  int64_t line_number_ = 0;
};

// The request to send: options.batch_template with one request per URL for
// `get`, or the requests read from options.input_path for `batch`.
//
// Errors: INVALID_ARGUMENT if the input file cannot be read, has a bad line or
// no request at all, or for a command that sends no batch.
absl::StatusOr<fetch::v1::BatchRequest> BuildBatchRequest(
    const FetchctlOptions& options);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCHCTL_OPTIONS_H_
