#include "client/fetchctl_options.h"

// getopt_long (glibc) parses the command line: it is the standard, well-kept
// parser for curl-like short and long flags (-H x, --header x, --header=x,
// -qL, "--" ending the options), and it keeps us free of a flags dependency.
#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fetchd::client {
namespace {

// Values getopt_long returns for flags without a short form; flags with one
// return their short letter.
enum LongOnlyFlag : int {
  kServer = 256,
  kTimeout,
  kConnectTimeout,
  kReadTimeout,
  kRetries,
  kNoLocation,
  kMaxRedirs,
  kMaxFilesize,
  kFail,
  kMaxConcurrency,
  kOrdered,
  kFailFast,
  kDeadline,
  kBody,
  kProgress,
  kNoProgress,
  kTls,
  kServerCacert,
  kServerCert,
  kServerKey,
  kTlsServerName,
  kTokenFile,
  kRaw,
  kChunkBytes,
};

// With a leading '-', non-option arguments come back in order as value 1
// (whatever POSIXLY_CORRECT says), so flags may follow the command and URLs;
// with ':' next, a missing value is reported as ':' rather than '?'.
constexpr char kShortFlags[] = "-:X:H:d:f:o:Lqh";

constexpr option kLongFlags[] = {
    {"server", required_argument, nullptr, kServer},
    {"tls", no_argument, nullptr, kTls},
    {"server-cacert", required_argument, nullptr, kServerCacert},
    {"server-cert", required_argument, nullptr, kServerCert},
    {"server-key", required_argument, nullptr, kServerKey},
    {"tls-server-name", required_argument, nullptr, kTlsServerName},
    {"token-file", required_argument, nullptr, kTokenFile},
    {"request", required_argument, nullptr, 'X'},
    {"header", required_argument, nullptr, 'H'},
    {"data", required_argument, nullptr, 'd'},
    {"file", required_argument, nullptr, 'f'},
    {"timeout", required_argument, nullptr, kTimeout},
    {"connect-timeout", required_argument, nullptr, kConnectTimeout},
    {"read-timeout", required_argument, nullptr, kReadTimeout},
    {"retries", required_argument, nullptr, kRetries},
    {"location", no_argument, nullptr, 'L'},
    {"no-location", no_argument, nullptr, kNoLocation},
    {"max-redirs", required_argument, nullptr, kMaxRedirs},
    {"max-filesize", required_argument, nullptr, kMaxFilesize},
    {"fail", no_argument, nullptr, kFail},
    {"max-concurrency", required_argument, nullptr, kMaxConcurrency},
    {"ordered", no_argument, nullptr, kOrdered},
    {"fail-fast", no_argument, nullptr, kFailFast},
    {"deadline", required_argument, nullptr, kDeadline},
    {"body", no_argument, nullptr, kBody},
    {"output", required_argument, nullptr, 'o'},
    {"raw", no_argument, nullptr, kRaw},
    {"chunk-bytes", required_argument, nullptr, kChunkBytes},
    {"quiet", no_argument, nullptr, 'q'},
    {"progress", no_argument, nullptr, kProgress},
    {"no-progress", no_argument, nullptr, kNoProgress},
    {"help", no_argument, nullptr, 'h'},
    {nullptr, 0, nullptr, 0},
};

// How error messages name a flag: "-H/--header", "--timeout".
std::string FlagName(int flag) {
  for (const option& long_flag : kLongFlags) {
    if (long_flag.name == nullptr || long_flag.val != flag) {
      continue;
    }
    if (flag < 256) {
      return absl::StrCat("-", std::string(1, static_cast<char>(flag)), "/--",
                          long_flag.name);
    }
    return absl::StrCat("--", long_flag.name);
  }
  return absl::StrCat("-", std::string(1, static_cast<char>(flag)));
}

absl::Status FlagError(int flag, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(FlagName(flag), ": ", problem));
}

// The largest google.protobuf.Duration, about 10,000 years.
constexpr int64_t kMaxSeconds = 315576000000;

// A positive, finite number of seconds, decimals allowed.
absl::StatusOr<absl::Duration> ParseSeconds(int flag, const char* value) {
  double seconds = 0;
  if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds)) {
    return FlagError(flag,
                     absl::StrCat("'", value, "' is not a number of seconds"));
  }
  if (seconds <= 0 || seconds > static_cast<double>(kMaxSeconds)) {
    return FlagError(flag, absl::StrCat("'", value,
                                        "' is out of range: seconds must be "
                                        "above 0 and at most ",
                                        kMaxSeconds));
  }
  return absl::Seconds(seconds);
}

// A non-negative integer of at most `max`.
template <typename Int>
absl::StatusOr<Int> ParseCount(int flag, const char* value, Int max) {
  Int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed > max) {
    return FlagError(
        flag,
        absl::StrCat("'", value, "' is not an integer between 0 and ", max));
  }
  return parsed;
}

void SetProtoDuration(absl::Duration duration,
                      google::protobuf::Duration& proto) {
  absl::Duration nanos;
  proto.set_seconds(absl::IDivDuration(duration, absl::Seconds(1), &nanos));
  proto.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(nanos)));
}

// "Name: value", split like curl does: at the first ':', value without the
// surrounding whitespace.
absl::Status AddHeader(const char* line, fetch::v1::FetchRequest& request) {
  const absl::string_view text(line);
  const size_t colon = text.find(':');
  const absl::string_view name =
      colon == absl::string_view::npos
          ? absl::string_view()
          : absl::StripAsciiWhitespace(text.substr(0, colon));
  if (name.empty()) {
    return FlagError('H', absl::StrCat("'", text,
                                       "' is not a header: expected "
                                       "\"Name: value\""));
  }
  fetch::v1::Header* header = request.add_headers();
  header->set_name(std::string(name));
  header->set_value(
      std::string(absl::StripAsciiWhitespace(text.substr(colon + 1))));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot open '", path, "': ", std::generic_category().message(errno)));
  }
  std::string contents((std::istreambuf_iterator<char>(file)),
                       std::istreambuf_iterator<char>());
  if (file.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  }
  return contents;
}

// -d DATA, or -d @FILE for the contents of FILE, byte for byte.
absl::StatusOr<std::string> ReadBody(const char* value) {
  absl::string_view data(value);
  if (!absl::ConsumePrefix(&data, "@")) {
    return std::string(data);
  }
  if (data.empty() || data == "-") {
    return FlagError('d', "@FILE needs a file name (stdin is not supported)");
  }
  absl::StatusOr<std::string> body = ReadFile(std::string(data));
  if (!body.ok()) {
    return FlagError('d', body.status().message());
  }
  return body;
}

// The contents of the PEM file `path` given to `flag`.
absl::StatusOr<std::string> ReadPem(int flag, const char* path) {
  if (*path == '\0') return FlagError(flag, "empty file name");
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return FlagError(flag, pem.status().message());
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return FlagError(flag, absl::StrCat("'", path, "' is not a PEM file"));
  }
  return pem;
}

// The token of --token-file: the file's first line, without surrounding
// whitespace. Error messages never include the file's contents.
absl::StatusOr<std::string> ReadToken(const char* path) {
  if (*path == '\0') return FlagError(kTokenFile, "empty file name");
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return FlagError(kTokenFile, text.status().message());
  const absl::string_view first_line =
      absl::string_view(*text).substr(0, text->find('\n'));
  const absl::string_view token = absl::StripAsciiWhitespace(first_line);
  if (token.empty()) {
    return FlagError(kTokenFile, absl::StrCat("'", path,
                                              "' holds no token on its first "
                                              "line"));
  }
  return std::string(token);
}

// getopt_long returned '?': an unknown flag, or a value given to a flag that
// takes none (--ordered=yes).
absl::Status BadFlagError(int flag, const char* word) {
  if (flag == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown or ambiguous option '", word, "'"));
  }
  for (const option& long_flag : kLongFlags) {
    if (long_flag.name != nullptr && long_flag.val == flag) {
      return FlagError(flag, "takes no value");
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown option '-", std::string(1, static_cast<char>(flag)), "'"));
}

}  // namespace

absl::StatusOr<FetchctlOptions> ParseFetchctlArgs(
    const std::vector<std::string>& args, absl::string_view env_server,
    absl::string_view env_token) {
  // getopt_long wants mutable, NULL-terminated C strings.
  std::vector<std::string> storage(args);
  std::vector<char*> argv;
  argv.reserve(storage.size() + 1);
  for (std::string& arg : storage) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  const int argc = static_cast<int>(storage.size());

  FetchctlOptions options;
  fetch::v1::FetchRequest& defaults =
      *options.batch_template.mutable_defaults();
  std::optional<std::string> server;
  std::vector<std::string> positional;
  bool method_set = false;
  bool data_set = false;
  bool file_set = false;
  bool token_file_set = false;

  optind = 0;  // 0 rather than 1 makes glibc reset all of its parsing state.
  opterr = 0;  // Errors are returned, not printed.
  while (true) {
    optopt = 0;
    // Global state; the header asks for one caller at a time.
    const int flag = getopt_long(  // NOLINT(concurrency-mt-unsafe)
        argc, argv.data(), kShortFlags, kLongFlags, nullptr);
    if (flag == -1) {
      break;
    }
    switch (flag) {
      case 1:  // A non-option argument: the command or a URL.
        positional.emplace_back(optarg);
        break;
      case ':':
        return FlagError(optopt, "missing value");
      case '?':
        return BadFlagError(optopt, argv[optind - 1]);
      case 'h':
        options.command = Command::kHelp;
        return options;
      case kServer:
        if (*optarg == '\0') {
          return FlagError(flag, "empty server address");
        }
        server = optarg;
        break;
      case kTls:
        options.connection.tls = true;
        break;
      case kServerCacert:
      case kServerCert:
      case kServerKey: {
        absl::StatusOr<std::string> pem = ReadPem(flag, optarg);
        if (!pem.ok()) {
          return pem.status();
        }
        ServerConnection& c = options.connection;
        (flag == kServerCacert ? c.ca_cert_pem
         : flag == kServerCert ? c.client_cert_pem
                               : c.client_key_pem) = *std::move(pem);
        break;
      }
      case kTlsServerName:
        if (*optarg == '\0') {
          return FlagError(flag, "empty name");
        }
        options.connection.tls_server_name = optarg;
        break;
      case kTokenFile: {
        absl::StatusOr<std::string> token = ReadToken(optarg);
        if (!token.ok()) {
          return token.status();
        }
        options.connection.bearer_token = *std::move(token);
        token_file_set = true;
        break;
      }
      case 'X':
        if (*optarg == '\0') {
          return FlagError(flag, "empty method");
        }
        defaults.set_method(optarg);
        method_set = true;
        break;
      case 'H':
        if (absl::Status status = AddHeader(optarg, defaults); !status.ok()) {
          return status;
        }
        break;
      case 'd': {
        if (data_set) {
          return FlagError(flag, "given more than once");
        }
        absl::StatusOr<std::string> body = ReadBody(optarg);
        if (!body.ok()) {
          return body.status();
        }
        defaults.set_body(*std::move(body));
        data_set = true;
        break;
      }
      case 'f':
        options.input_path = optarg;
        file_set = true;
        break;
      case kTimeout:
      case kConnectTimeout:
      case kReadTimeout: {
        absl::StatusOr<absl::Duration> timeout = ParseSeconds(flag, optarg);
        if (!timeout.ok()) {
          return timeout.status();
        }
        fetch::v1::Timeouts& timeouts = *defaults.mutable_timeouts();
        SetProtoDuration(*timeout, flag == kTimeout ? *timeouts.mutable_total()
                                   : flag == kConnectTimeout
                                       ? *timeouts.mutable_connect()
                                       : *timeouts.mutable_read_idle());
        break;
      }
      case kRetries: {
        // max_attempts counts the first attempt too.
        absl::StatusOr<uint32_t> retries = ParseCount<uint32_t>(
            flag, optarg, std::numeric_limits<uint32_t>::max() - 1);
        if (!retries.ok()) {
          return retries.status();
        }
        defaults.mutable_retry()->set_max_attempts(*retries + 1);
        break;
      }
      case 'L':
        defaults.set_follow_redirects(true);
        break;
      case kNoLocation:
        defaults.set_follow_redirects(false);
        break;
      case kMaxRedirs: {
        absl::StatusOr<uint32_t> redirects = ParseCount<uint32_t>(
            flag, optarg, std::numeric_limits<uint32_t>::max());
        if (!redirects.ok()) {
          return redirects.status();
        }
        defaults.set_max_redirects(*redirects);
        break;
      }
      case kMaxFilesize: {
        absl::StatusOr<uint64_t> bytes = ParseCount<uint64_t>(
            flag, optarg, std::numeric_limits<uint64_t>::max());
        if (!bytes.ok()) {
          return bytes.status();
        }
        defaults.set_max_body_bytes(*bytes);
        break;
      }
      case kFail:
        defaults.set_fail_on_http_error(true);
        break;
      case kMaxConcurrency: {
        absl::StatusOr<uint32_t> concurrency = ParseCount<uint32_t>(
            flag, optarg, std::numeric_limits<uint32_t>::max());
        if (!concurrency.ok()) {
          return concurrency.status();
        }
        options.batch_template.set_max_concurrency(*concurrency);
        break;
      }
      case kOrdered:
        options.batch_template.set_ordered(true);
        break;
      case kFailFast:
        options.batch_template.set_fail_fast(true);
        break;
      case kDeadline: {
        absl::StatusOr<absl::Duration> deadline = ParseSeconds(flag, optarg);
        if (!deadline.ok()) {
          return deadline.status();
        }
        options.rpc_deadline = *deadline;
        break;
      }
      case kBody:
        options.include_body = true;
        break;
      case 'o':
        if (*optarg == '\0') {
          return FlagError(flag, "empty file name");
        }
        options.output_path = optarg;
        break;
      case kRaw:
        defaults.set_decompress(false);
        break;
      case kChunkBytes: {
        absl::StatusOr<uint32_t> bytes = ParseCount<uint32_t>(
            flag, optarg, std::numeric_limits<uint32_t>::max());
        if (!bytes.ok()) {
          return bytes.status();
        }
        defaults.set_chunk_bytes(*bytes);
        break;
      }
      case 'q':
        options.quiet = true;
        break;
      case kProgress:
        options.progress = ProgressMode::kOn;
        break;
      case kNoProgress:
        options.progress = ProgressMode::kOff;
        break;
      default:
        return absl::InternalError(
            absl::StrCat("getopt_long returned unexpected value ", flag));
    }
  }
  // Arguments after "--".
  for (int i = optind; i < argc; ++i) {
    positional.emplace_back(argv[i]);
  }

  if (positional.empty()) {
    return absl::InvalidArgumentError(
        "missing command: expected 'get URL...', 'batch' or 'health'");
  }
  if (positional[0] == "get") {
    options.command = Command::kGet;
    options.urls.assign(positional.begin() + 1, positional.end());
    if (options.urls.empty()) {
      return absl::InvalidArgumentError("get: missing URL");
    }
    if (file_set) {
      return FlagError('f', "only valid with 'batch'");
    }
    if (!options.output_path.empty() && options.urls.size() != 1) {
      return FlagError('o', absl::StrCat("writes one body: give one URL, got ",
                                         options.urls.size()));
    }
  } else if (positional[0] == "health") {
    options.command = Command::kHealth;
    if (positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("health: unexpected argument '", positional[1], "'"));
    }
    if (file_set) {
      return FlagError('f', "only valid with 'batch'");
    }
  } else if (positional[0] == "batch") {
    options.command = Command::kBatch;
    if (positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch: unexpected argument '", positional[1],
                       "' (use -f FILE to read a file)"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", positional[0],
                     "': expected 'get', 'batch' or 'health'"));
  }

  // Like curl: a body without an explicit method is a POST.
  if (data_set && !method_set) {
    defaults.set_method("POST");
  }

  ServerConnection& connection = options.connection;
  if (connection.client_cert_pem.empty() != connection.client_key_pem.empty()) {
    // Name the flag that is missing.
    return FlagError(
        connection.client_cert_pem.empty() ? kServerCert : kServerKey,
        "missing: --server-cert and --server-key go together");
  }
  if (!connection.ca_cert_pem.empty() || !connection.client_cert_pem.empty() ||
      !connection.tls_server_name.empty()) {
    connection.tls = true;
  }
  if (!options.output_path.empty() && options.command != Command::kGet) {
    return FlagError('o', "only valid with 'get'");
  }
  if (!token_file_set) {
    connection.bearer_token =
        std::string(absl::StripAsciiWhitespace(env_token));
  }

  if (server.has_value()) {
    options.server = *std::move(server);
  } else if (!env_server.empty()) {
    options.server = std::string(env_server);
  } else {
    options.server = std::string(kDefaultServer);
  }
  return options;
}

std::string FetchctlUsage() {
  return R"(Usage: fetchctl [OPTIONS] get URL [URL...]
       fetchctl [OPTIONS] batch [-f FILE]
       fetchctl [--server HOST:PORT] [--deadline SECONDS] health

Fetches URLs through a fetchd server. Prints one JSON object per result (a
fetch.v1.FetchResult in the protobuf JSON mapping) on stdout, one per line, as
results arrive.

batch reads one request per line from FILE (stdin when FILE is "-" or -f is
absent): a line starting with '{' is a JSON fetch.v1.FetchRequest, any other
line is a URL; blank lines and lines starting with '#' are skipped. The request
options below are defaults for every request; a JSON line overrides them.

health asks fetchd's grpc.health.v1 service about fetch.v1.FetchService and
prints its status: SERVING, or NOT_SERVING while fetchd drains.

Server:
      --server HOST:PORT       fetchd address (default: $FETCHD_SERVER, else
                               127.0.0.1:50051)
      --tls                    connect with TLS, verifying fetchd's
                               certificate against the system's CAs
      --server-cacert FILE     PEM CA(s) for fetchd's certificate; implies
                               --tls
      --server-cert FILE       PEM client certificate, for an mTLS fetchd;
      --server-key FILE        and its private key; imply --tls
      --tls-server-name NAME   verify fetchd's certificate for NAME instead
                               of the host of --server; implies --tls
      --token-file FILE        send the token on FILE's first line as
                               "authorization: Bearer TOKEN" (default:
                               $FETCHD_TOKEN, if set)

Request options:
  -X, --request METHOD         HTTP method (default GET, or POST with -d)
  -H, --header "NAME: VALUE"   add a request header (repeatable, order kept)
  -d, --data DATA              request body; @FILE sends the contents of FILE;
                               implies POST unless -X is given
      --timeout SECONDS        whole transfer, per attempt (decimals allowed)
      --connect-timeout SECONDS
                               connection establishment, per attempt
      --read-timeout SECONDS   longest time without receiving data
      --retries N              retry a failed request up to N times
  -L, --location               follow redirects (the server's default)
      --no-location            do not follow redirects
      --max-redirs N           follow at most N redirects
      --max-filesize BYTES     fail a response whose body exceeds BYTES
      --fail                   report an HTTP status >= 400 as an error

Batch options:
  -f, --file FILE              batch input file ("-": stdin, the default)
      --max-concurrency N      at most N requests of the batch in flight
                               (default 0: the server's limit)
      --ordered                print results in input order, not as they finish
      --fail-fast              cancel the remaining requests after a failure
      --deadline SECONDS       deadline of the whole RPC

Output:
      --body                   keep the response body (base64) in the JSON;
                               without it the body is left out
  -o, --output FILE            get: stream the body of the (one) URL into
                               FILE ("-": stdout) as it arrives, in bounded
                               memory; the JSON result goes to stdout without
                               its body (not with -o -). Progress on stderr:
                               a bar on a terminal, else a line per second
      --raw                    keep the body as sent (no gzip/deflate/br/zstd
                               decoding, no Accept-Encoding added)
      --chunk-bytes N          with -o: size of the streamed pieces
  -q, --quiet                  no JSON output, only the summary and exit status
      --progress               progress bar and summary on stderr
      --no-progress            no progress bar (default: progress iff stderr
                               is a terminal)
  -h, --help                   print this help and exit

Exit status:
  0  every request succeeded (error ERROR_KIND_NONE); health: SERVING
  1  at least one request failed; health: not SERVING
  2  usage error (bad option, unreadable file, bad JSON line)
  3  RPC error (fetchd unreachable, RESOURCE_EXHAUSTED, ...); the status is
     printed on stderr
)";
}

absl::StatusOr<std::vector<fetch::v1::FetchRequest>> ParseBatchInput(
    std::istream& input) {
  std::vector<fetch::v1::FetchRequest> requests;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(input, line)) {
    ++line_number;
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text.front() == '#') {
      continue;
    }
    fetch::v1::FetchRequest& request = requests.emplace_back();
    if (text.front() != '{') {
      request.set_url(std::string(text));
      continue;
    }
    const google::protobuf::util::Status status =
        google::protobuf::util::JsonStringToMessage(
            google::protobuf::StringPiece(text.data(), text.size()), &request);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": invalid JSON FetchRequest: ",
          absl::string_view(status.message().data(), status.message().size())));
    }
  }
  if (input.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("read error after line ", line_number));
  }
  return requests;
}

absl::StatusOr<fetch::v1::BatchRequest> BuildBatchRequest(
    const FetchctlOptions& options) {
  fetch::v1::BatchRequest batch = options.batch_template;
  switch (options.command) {
    case Command::kGet:
      for (const std::string& url : options.urls) {
        batch.add_requests()->set_url(url);
      }
      return batch;
    case Command::kBatch:
      break;
    case Command::kHealth:
    case Command::kHelp:
      return absl::InvalidArgumentError("no batch to build for this command");
  }

  const bool from_stdin = options.input_path == "-";
  const std::string input_name = from_stdin ? "stdin" : options.input_path;
  std::ifstream file;
  if (!from_stdin) {
    file.open(options.input_path);
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open '", options.input_path,
                       "': ", std::generic_category().message(errno)));
    }
  }
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(from_stdin ? std::cin : file);
  if (!requests.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(input_name, ": ", requests.status().message()));
  }
  if (requests->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(input_name, ": no requests"));
  }
  batch.mutable_requests()->Reserve(static_cast<int>(requests->size()));
  for (fetch::v1::FetchRequest& request : *requests) {
    *batch.add_requests() = std::move(request);
  }
  return batch;
}

}  // namespace fetchd::client
