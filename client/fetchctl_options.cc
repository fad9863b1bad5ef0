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
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
  kCacert,
  kCert,
  kKey,
  kProxyUser,
  kHttp11,
  kHttp2,
  kResolve,
  kNoCookies,
  kJson,
  kDataUrlencode,
  kUrlQuery,
  kOauth2Bearer,
  kRaw,
  kChunkBytes,
};

// With a leading '-', non-option arguments come back in order as value 1
// (whatever POSIXLY_CORRECT says), so flags may follow the command and URLs;
// with ':' next, a missing value is reported as ':' rather than '?'.
constexpr char kShortFlags[] = "-:X:H:d:f:F:u:o:Lqvhkx:b:";

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
    {"json", required_argument, nullptr, kJson},
    {"form", required_argument, nullptr, 'F'},
    {"data-urlencode", required_argument, nullptr, kDataUrlencode},
    {"url-query", required_argument, nullptr, kUrlQuery},
    {"user", required_argument, nullptr, 'u'},
    {"oauth2-bearer", required_argument, nullptr, kOauth2Bearer},
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
    {"verbose", no_argument, nullptr, 'v'},
    {"progress", no_argument, nullptr, kProgress},
    {"no-progress", no_argument, nullptr, kNoProgress},
    {"cacert", required_argument, nullptr, kCacert},
    {"cert", required_argument, nullptr, kCert},
    {"key", required_argument, nullptr, kKey},
    {"insecure", no_argument, nullptr, 'k'},
    {"proxy", required_argument, nullptr, 'x'},
    {"proxy-user", required_argument, nullptr, kProxyUser},
    {"http1.1", no_argument, nullptr, kHttp11},
    {"http2", no_argument, nullptr, kHttp2},
    {"resolve", required_argument, nullptr, kResolve},
    {"cookie", required_argument, nullptr, 'b'},
    {"no-cookies", no_argument, nullptr, kNoCookies},
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

// The contents of FILE for `flag`'s @FILE (or <FILE) forms.
absl::StatusOr<std::string> ReadFlagFile(int flag, absl::string_view path) {
  if (path.empty() || path == "-") {
    return FlagError(flag, "@FILE needs a file name (stdin is not supported)");
  }
  absl::StatusOr<std::string> contents = ReadFile(std::string(path));
  if (!contents.ok()) {
    return FlagError(flag, contents.status().message());
  }
  return contents;
}

// -d DATA, or -d @FILE for the contents of FILE, byte for byte (also
// --json).
absl::StatusOr<std::string> ReadBody(int flag, const char* value) {
  absl::string_view data(value);
  if (!absl::ConsumePrefix(&data, "@")) {
    return std::string(data);
  }
  return ReadFlagFile(flag, data);
}

// --data-urlencode and --url-query: NAME=VALUE, or NAME@FILE for the
// contents of FILE as the value (curl's forms without a name are not
// supported: fetchd encodes names and values itself).
absl::StatusOr<std::pair<std::string, std::string>> ParseNameValue(
    int flag, const char* arg) {
  const absl::string_view text(arg);
  const size_t split = text.find_first_of("=@");
  if (split == absl::string_view::npos || split == 0) {
    return FlagError(flag, absl::StrCat("'", text,
                                        "': expected NAME=VALUE or "
                                        "NAME@FILE"));
  }
  std::string name(text.substr(0, split));
  if (text[split] == '=') {
    return std::make_pair(std::move(name), std::string(text.substr(split + 1)));
  }
  absl::StatusOr<std::string> value =
      ReadFlagFile(flag, text.substr(split + 1));
  if (!value.ok()) return value.status();
  return std::make_pair(std::move(name), *std::move(value));
}

// -F like curl: NAME=VALUE (a field), NAME=@FILE (a file part, filename
// FILE's base name), NAME=<FILE (a field with FILE's contents), each
// optionally followed by ";type=TYPE" and, for files, ";filename=NAME".
absl::Status AddFormPart(const char* arg, fetch::v1::FetchRequest& request) {
  const absl::string_view text(arg);
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return FlagError('F', absl::StrCat("'", text,
                                       "': expected NAME=VALUE, NAME=@FILE "
                                       "or NAME=<FILE"));
  }
  fetch::v1::MultipartPart& part = *request.mutable_multipart()->add_parts();
  part.set_name(std::string(text.substr(0, eq)));
  absl::string_view content = text.substr(eq + 1);
  const bool file = absl::ConsumePrefix(&content, "@");
  const bool file_content = !file && absl::ConsumePrefix(&content, "<");
  if (!file && !file_content) {
    // A plain value is taken whole, ';' included.
    part.set_data(std::string(content));
    return absl::OkStatus();
  }
  std::vector<absl::string_view> pieces = absl::StrSplit(content, ';');
  const absl::string_view path = pieces[0];
  for (size_t i = 1; i < pieces.size(); ++i) {
    absl::string_view option = pieces[i];
    if (absl::ConsumePrefix(&option, "type=")) {
      part.set_content_type(std::string(option));
    } else if (file && absl::ConsumePrefix(&option, "filename=")) {
      part.set_filename(std::string(option));
    } else {
      return FlagError('F',
                       absl::StrCat("'", text, "': unknown option '", pieces[i],
                                    "' (type=, filename= for files)"));
    }
  }
  absl::StatusOr<std::string> data = ReadFlagFile('F', path);
  if (!data.ok()) return data.status();
  part.set_data(*std::move(data));
  if (file && part.filename().empty()) {
    const size_t slash = path.rfind('/');
    part.set_filename(std::string(
        slash == absl::string_view::npos ? path : path.substr(slash + 1)));
  }
  return absl::OkStatus();
}

// -u USER:PASSWORD. Errors never quote the password.
absl::Status SetBasicAuth(const char* arg, fetch::v1::FetchRequest& request) {
  const absl::string_view text(arg);
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return FlagError('u', "expected USER:PASSWORD (fetchctl does not prompt)");
  }
  fetch::v1::BasicAuth& auth = *request.mutable_basic_auth();
  auth.set_username(std::string(text.substr(0, colon)));
  auth.set_password(std::string(text.substr(colon + 1)));
  return absl::OkStatus();
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
  // The flag that chose the body kind (-d, --json, -F, --data-urlencode).
  int body_flag = 0;
  // -u or --oauth2-bearer (one of them).
  int credentials_flag = 0;
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
      case 'd':
      case kJson:
      case 'F':
      case kDataUrlencode: {
        // One body kind per request; -F and --data-urlencode repeat.
        if (body_flag != 0 &&
            (body_flag != flag || flag == 'd' || flag == kJson)) {
          return FlagError(flag, body_flag == flag
                                     ? "given more than once"
                                     : absl::StrCat("cannot be combined with ",
                                                    FlagName(body_flag)));
        }
        body_flag = flag;
        data_set = true;
        if (flag == 'F') {
          if (absl::Status s = AddFormPart(optarg, defaults); !s.ok()) {
            return s;
          }
          break;
        }
        if (flag == kDataUrlencode) {
          absl::StatusOr<std::pair<std::string, std::string>> field =
              ParseNameValue(flag, optarg);
          if (!field.ok()) return field.status();
          fetch::v1::FormField& f = *defaults.mutable_form()->add_fields();
          f.set_name(std::move(field->first));
          f.set_value(std::move(field->second));
          break;
        }
        absl::StatusOr<std::string> body = ReadBody(flag, optarg);
        if (!body.ok()) {
          return body.status();
        }
        if (flag == kJson) {
          defaults.set_json(*std::move(body));
        } else {
          defaults.set_body(*std::move(body));
        }
        break;
      }
      case kUrlQuery: {
        absl::StatusOr<std::pair<std::string, std::string>> param =
            ParseNameValue(flag, optarg);
        if (!param.ok()) return param.status();
        fetch::v1::QueryParam& q = *defaults.add_query();
        q.set_name(std::move(param->first));
        q.set_value(std::move(param->second));
        break;
      }
      case 'u':
      case kOauth2Bearer:
        if (credentials_flag != 0 && credentials_flag != flag) {
          return FlagError(flag, absl::StrCat("cannot be combined with ",
                                              FlagName(credentials_flag)));
        }
        credentials_flag = flag;
        if (flag == 'u') {
          if (absl::Status s = SetBasicAuth(optarg, defaults); !s.ok()) {
            return s;
          }
        } else if (*optarg == '\0') {
          return FlagError(flag, "empty token");
        } else {
          defaults.set_bearer_token(optarg);
        }
        break;
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
      case kCacert:
      case kCert:
      case kKey: {
        absl::StatusOr<std::string> pem = ReadPem(flag, optarg);
        if (!pem.ok()) return pem.status();
        fetch::v1::TlsOptions* tls = defaults.mutable_tls();
        if (flag == kCacert) tls->set_ca_pem(*std::move(pem));
        if (flag == kCert) tls->set_client_cert_pem(*std::move(pem));
        if (flag == kKey) tls->set_client_key_pem(*std::move(pem));
        break;
      }
      case 'k':
        defaults.mutable_tls()->set_verify(false);
        break;
      case 'x':
        defaults.mutable_proxy()->set_url(optarg);
        break;
      case kProxyUser: {
        const absl::string_view text(optarg);
        const size_t colon = text.find(':');
        if (colon == absl::string_view::npos) {
          return FlagError(flag, "want USER:PASSWORD");
        }
        defaults.mutable_proxy()->set_username(
            std::string(text.substr(0, colon)));
        defaults.mutable_proxy()->set_password(
            std::string(text.substr(colon + 1)));
        break;
      }
      case kHttp11:
        defaults.set_http_version(fetch::v1::HTTP_VERSION_1_1);
        break;
      case kHttp2:
        defaults.set_http_version(fetch::v1::HTTP_VERSION_2);
        break;
      case kResolve: {
        // HOST:PORT:ADDRESS, as curl --resolve; ADDRESS may be [IPv6].
        const std::vector<std::string> parts =
            absl::StrSplit(optarg, absl::MaxSplits(':', 2));
        uint32_t port = 0;
        if (parts.size() != 3 || parts[0].empty() || parts[2].empty() ||
            !absl::SimpleAtoi(parts[1], &port) || port > 65535) {
          return FlagError(flag, "want HOST:PORT:ADDRESS");
        }
        fetch::v1::ResolveOverride* pin = defaults.add_resolve();
        pin->set_host(parts[0]);
        pin->set_port(port);
        pin->set_address(parts[2]);
        break;
      }
      case 'b': {
        const absl::string_view text(optarg);
        const size_t equals = text.find('=');
        if (equals == absl::string_view::npos || equals == 0) {
          return FlagError(flag, "want NAME=VALUE");
        }
        fetch::v1::Cookie* cookie = options.batch_template.add_cookies();
        cookie->set_name(std::string(text.substr(0, equals)));
        cookie->set_value(std::string(text.substr(equals + 1)));
        break;
      }
      case kNoCookies:
        options.batch_template.set_cookie_jar(false);
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
      case 'v':
        options.verbose = true;
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
        "missing command: expected 'get URL...', 'batch', 'ws URL' or "
        "'health'");
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
  } else if (positional[0] == "ws") {
    options.command = Command::kWs;
    options.urls.assign(positional.begin() + 1, positional.end());
    if (options.urls.size() != 1) {
      return absl::InvalidArgumentError(
          "ws: expected exactly one ws:// or wss:// URL");
    }
    if (file_set) {
      return FlagError('f', "only valid with 'batch'");
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
       fetchctl [OPTIONS] ws URL
       fetchctl [--server HOST:PORT] [--deadline SECONDS] health

Fetches URLs through a fetchd server. Prints one JSON object per result (a
fetch.v1.FetchResult in the protobuf JSON mapping) on stdout, one per line, as
results arrive.

batch reads one request per line from FILE (stdin when FILE is "-" or -f is
absent): a line starting with '{' is a JSON fetch.v1.FetchRequest, any other
line is a URL; blank lines and lines starting with '#' are skipped. The request
options below are defaults for every request; a JSON line overrides them.

ws opens a WebSocket (ws:// or wss://) through fetchd, with the -H headers.
When stdin is a terminal, each line typed is sent as a text message and
received messages are printed ("< text", "< [binary N bytes]"); end of input
closes with 1000. Otherwise stdin is JSON lines of fetch.v1.WsClientMessage
({"frame":{"text":"hi"}}, {"frame":{"binary":"BASE64"}},
{"close":{"code":1000}}) and stdout gets one JSON fetch.v1.WsServerMessage per
line (the handshake, each frame, the close). Exit 0 after a clean close, 1
after a failed handshake or a close with an error.

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
      --json DATA              JSON body (or @FILE), Content-Type
                               application/json unless -H sets one; implies
                               POST
  -F, --form NAME=VALUE        multipart/form-data part (repeatable): a field,
                               NAME=@FILE a file (;type=TYPE, ;filename=NAME),
                               NAME=<FILE a field with FILE's contents;
                               implies POST
      --data-urlencode NAME=VALUE
                               urlencoded form field (repeatable), value
                               percent-encoded; NAME@FILE: FILE's contents;
                               implies POST
      --url-query NAME=VALUE   append a percent-encoded query parameter to
                               each URL (repeatable; NAME@FILE too)
  -u, --user USER:PASSWORD     HTTP Basic credentials for the target
      --oauth2-bearer TOKEN    "Authorization: Bearer TOKEN" for the target
                               (both dropped on cross-origin redirects)
      --cacert FILE            trust the PEM CA(s) in FILE for the target
      --cert FILE, --key FILE  PEM client certificate and key for the target
  -k, --insecure               don't verify the target's certificate (only
                               if fetchd allows it)
  -x, --proxy URL              proxy: http://, https://, socks5://, socks5h://
      --proxy-user USER:PASS   proxy credentials
      --http1.1, --http2       HTTP version preference (default: HTTP/2 over
                               TLS when offered)
      --resolve HOST:PORT:ADDR connect to ADDR for HOST:PORT (still checked
                               by fetchd's destination policy)
  -b, --cookie NAME=VALUE      a cookie sent with every request (repeatable)
      --no-cookies             no cookie jar: cookies set by responses are
                               not sent on later requests
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
                               (ERROR_KIND_HTTP_STATUS; status, headers and
                               body are kept)

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
  -v, --verbose                per result on stderr: status, remote address,
                               connection reuse, timings and response headers
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
    case Command::kWs:
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
