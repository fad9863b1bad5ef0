#include "client/fetchctl_options.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "client/fetchctl_flags.h"
#include "fetchd/version.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fetchd::client {
namespace {

absl::Status FlagError(Flag flag, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(FlagName(flag), ": ", problem));
}

// RFC 9110 token characters: what fetchd accepts in a header name.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
             absl::string_view::npos;
}

// Headers fetchd sets itself from the request and the connection, and
// refuses from callers (request smuggling); the same list as fetchd's
// request validation.
constexpr absl::string_view kFramingHeaders[] = {
    "content-length", "transfer-encoding", "connection", "upgrade", "te",
    "keep-alive",     "proxy-connection",  "trailer"};

// The largest google.protobuf.Duration, about 10,000 years.
constexpr int64_t kMaxSeconds = 315576000000;

// A positive, finite number of seconds, decimals allowed.
absl::StatusOr<absl::Duration> ParseSeconds(Flag flag,
                                            const std::string& value) {
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
absl::StatusOr<Int> ParseCount(Flag flag, const std::string& value, Int max) {
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
absl::Status AddHeader(const std::string& line,
                       fetch::v1::FetchRequest& request) {
  const absl::string_view text(line);
  const size_t colon = text.find(':');
  const absl::string_view name =
      colon == absl::string_view::npos
          ? absl::string_view()
          : absl::StripAsciiWhitespace(text.substr(0, colon));
  if (name.empty()) {
    return FlagError(Flag::kHeader, absl::StrCat("'", text,
                                                 "' is not a header: expected "
                                                 "\"Name: value\""));
  }
  if (!std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return FlagError(Flag::kHeader,
                     absl::StrCat("'", absl::CHexEscape(text),
                                  "': the name has a character not allowed "
                                  "in an HTTP header name"));
  }
  const absl::string_view value =
      absl::StripAsciiWhitespace(text.substr(colon + 1));
  if (value.find_first_of(absl::string_view("\r\n\0", 3)) !=
      absl::string_view::npos) {
    return FlagError(Flag::kHeader,
                     absl::StrCat("'", absl::CHexEscape(text),
                                  "': the value contains CR, LF or NUL"));
  }
  const std::string lower = absl::AsciiStrToLower(name);
  if (std::find(std::begin(kFramingHeaders), std::end(kFramingHeaders),
                lower) != std::end(kFramingHeaders)) {
    return FlagError(Flag::kHeader,
                     absl::StrCat("'", text, "': fetchd sets ", name,
                                  " itself from the request and the "
                                  "connection; it cannot be given"));
  }
  fetch::v1::Header* header = request.add_headers();
  header->set_name(std::string(name));
  header->set_value(std::string(value));
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
absl::StatusOr<std::string> ReadFlagFile(Flag flag, absl::string_view path) {
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
absl::StatusOr<std::string> ReadBody(Flag flag, const std::string& value) {
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
    Flag flag, const std::string& arg) {
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
absl::Status AddFormPart(const std::string& arg,
                         fetch::v1::FetchRequest& request) {
  const absl::string_view text(arg);
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return FlagError(Flag::kForm,
                     absl::StrCat("'", text,
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
      return FlagError(Flag::kForm,
                       absl::StrCat("'", text, "': unknown option '", pieces[i],
                                    "' (type=, filename= for files)"));
    }
  }
  absl::StatusOr<std::string> data = ReadFlagFile(Flag::kForm, path);
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
absl::Status SetBasicAuth(const std::string& arg,
                          fetch::v1::FetchRequest& request) {
  const absl::string_view text(arg);
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return FlagError(Flag::kUser,
                     "expected USER:PASSWORD (fetchctl does not prompt)");
  }
  fetch::v1::BasicAuth& auth = *request.mutable_basic_auth();
  auth.set_username(std::string(text.substr(0, colon)));
  auth.set_password(std::string(text.substr(colon + 1)));
  return absl::OkStatus();
}

// The contents of the PEM file `path` given to `flag`.
absl::StatusOr<std::string> ReadPem(Flag flag, const std::string& path) {
  if (path.empty()) return FlagError(flag, "empty file name");
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return FlagError(flag, pem.status().message());
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return FlagError(flag, absl::StrCat("'", path, "' is not a PEM file"));
  }
  return pem;
}

// The token of --token-file: the file's first line, without surrounding
// whitespace. Error messages never include the file's contents.
absl::StatusOr<std::string> ReadToken(const std::string& path) {
  if (path.empty()) return FlagError(Flag::kTokenFile, "empty file name");
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return FlagError(Flag::kTokenFile, text.status().message());
  const absl::string_view first_line =
      absl::string_view(*text).substr(0, text->find('\n'));
  const absl::string_view token = absl::StripAsciiWhitespace(first_line);
  if (token.empty()) {
    return FlagError(Flag::kTokenFile,
                     absl::StrCat("'", path,
                                  "' holds no token on its first "
                                  "line"));
  }
  return std::string(token);
}

// --json's value must be a JSON text: google.protobuf.Value holds any, so
// parsing into it is the syntax check fetchd makes too.
absl::Status CheckJson(const std::string& json) {
  if (json.empty()) return FlagError(Flag::kJson, "empty (not a JSON text)");
  google::protobuf::Value value;
  const google::protobuf::util::Status status =
      google::protobuf::util::JsonStringToMessage(json, &value);
  if (!status.ok()) {
    return FlagError(Flag::kJson,
                     absl::StrCat("not valid JSON: ",
                                  absl::string_view(status.message().data(),
                                                    status.message().size())));
  }
  return absl::OkStatus();
}

// The state of one parse: each flag, as CLI11 reports it, applied in
// command line order. The first error wins; later flags are ignored (but
// -h/--help, which wins over errors).
class ArgsParser {
 public:
  ArgsParser() : defaults_(*options_.batch_template.mutable_defaults()) {}

  void Handle(Flag flag, const std::string& value) {
    if (flag == Flag::kHelp) help_ = true;
    if (!error_.ok()) return;
    if (flag == Flag::kVersion) version_ = true;
    error_ = Apply(flag, value);
  }

  absl::StatusOr<FetchctlOptions> Finish(std::vector<std::string> positional,
                                         absl::string_view env_server,
                                         absl::string_view env_token);

  // Whether -h/--help was seen: it wins over every error.
  bool help() const { return help_; }
  const absl::Status& error() const { return error_; }

 private:
  absl::Status Apply(Flag flag, const std::string& value);
  absl::Status ApplyBody(Flag flag, const std::string& value);

  FetchctlOptions options_;
  fetch::v1::FetchRequest& defaults_;
  absl::Status error_;
  bool help_ = false;
  bool version_ = false;
  std::optional<std::string> server_;
  bool method_set_ = false;
  bool data_set_ = false;
  // The flag that chose the body kind (-d, --json, -F, --data-urlencode).
  std::optional<Flag> body_flag_;
  // -u or --oauth2-bearer (one of them).
  std::optional<Flag> credentials_flag_;
  bool file_set_ = false;
  bool token_file_set_ = false;
};

absl::Status ArgsParser::ApplyBody(Flag flag, const std::string& value) {
  // One body kind per request; -F and --data-urlencode repeat.
  if (body_flag_.has_value() &&
      (*body_flag_ != flag || flag == Flag::kData || flag == Flag::kJson)) {
    return FlagError(flag, *body_flag_ == flag
                               ? "given more than once"
                               : absl::StrCat("cannot be combined with ",
                                              FlagName(*body_flag_)));
  }
  body_flag_ = flag;
  data_set_ = true;
  if (flag == Flag::kForm) return AddFormPart(value, defaults_);
  if (flag == Flag::kDataUrlencode) {
    absl::StatusOr<std::pair<std::string, std::string>> field =
        ParseNameValue(flag, value);
    if (!field.ok()) return field.status();
    fetch::v1::FormField& f = *defaults_.mutable_form()->add_fields();
    f.set_name(std::move(field->first));
    f.set_value(std::move(field->second));
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> body = ReadBody(flag, value);
  if (!body.ok()) return body.status();
  if (flag == Flag::kJson) {
    if (absl::Status s = CheckJson(*body); !s.ok()) return s;
    defaults_.set_json(*std::move(body));
  } else {
    defaults_.set_body(*std::move(body));
  }
  return absl::OkStatus();
}

absl::Status ArgsParser::Apply(Flag flag, const std::string& value) {
  constexpr uint32_t kMaxUint32 = std::numeric_limits<uint32_t>::max();
  switch (flag) {
    case Flag::kHelp:
    case Flag::kVersion:
      return absl::OkStatus();
    case Flag::kServer:
      if (value.empty()) return FlagError(flag, "empty server address");
      server_ = value;
      return absl::OkStatus();
    case Flag::kTls:
      options_.connection.tls = true;
      return absl::OkStatus();
    case Flag::kServerCacert:
    case Flag::kServerCert:
    case Flag::kServerKey: {
      absl::StatusOr<std::string> pem = ReadPem(flag, value);
      if (!pem.ok()) return pem.status();
      ServerConnection& c = options_.connection;
      (flag == Flag::kServerCacert ? c.ca_cert_pem
       : flag == Flag::kServerCert ? c.client_cert_pem
                                   : c.client_key_pem) = *std::move(pem);
      return absl::OkStatus();
    }
    case Flag::kTlsServerName:
      if (value.empty()) return FlagError(flag, "empty name");
      options_.connection.tls_server_name = value;
      return absl::OkStatus();
    case Flag::kTokenFile: {
      absl::StatusOr<std::string> token = ReadToken(value);
      if (!token.ok()) return token.status();
      options_.connection.bearer_token = *std::move(token);
      token_file_set_ = true;
      return absl::OkStatus();
    }
    case Flag::kRequest:
      if (value.empty()) return FlagError(flag, "empty method");
      defaults_.set_method(value);
      method_set_ = true;
      return absl::OkStatus();
    case Flag::kHeader:
      return AddHeader(value, defaults_);
    case Flag::kData:
    case Flag::kJson:
    case Flag::kForm:
    case Flag::kDataUrlencode:
      return ApplyBody(flag, value);
    case Flag::kUrlQuery: {
      absl::StatusOr<std::pair<std::string, std::string>> param =
          ParseNameValue(flag, value);
      if (!param.ok()) return param.status();
      fetch::v1::QueryParam& q = *defaults_.add_query();
      q.set_name(std::move(param->first));
      q.set_value(std::move(param->second));
      return absl::OkStatus();
    }
    case Flag::kUser:
    case Flag::kOauth2Bearer:
      if (credentials_flag_.has_value() && *credentials_flag_ != flag) {
        return FlagError(flag, absl::StrCat("cannot be combined with ",
                                            FlagName(*credentials_flag_)));
      }
      credentials_flag_ = flag;
      if (flag == Flag::kUser) return SetBasicAuth(value, defaults_);
      if (value.empty()) return FlagError(flag, "empty token");
      defaults_.set_bearer_token(value);
      return absl::OkStatus();
    case Flag::kFile:
      options_.input_path = value;
      file_set_ = true;
      return absl::OkStatus();
    case Flag::kTimeout:
    case Flag::kConnectTimeout:
    case Flag::kReadTimeout: {
      absl::StatusOr<absl::Duration> timeout = ParseSeconds(flag, value);
      if (!timeout.ok()) return timeout.status();
      fetch::v1::Timeouts& t = *defaults_.mutable_timeouts();
      SetProtoDuration(*timeout, flag == Flag::kTimeout ? *t.mutable_total()
                                 : flag == Flag::kConnectTimeout
                                     ? *t.mutable_connect()
                                     : *t.mutable_read_idle());
      return absl::OkStatus();
    }
    case Flag::kRetries: {
      // max_attempts counts the first attempt too.
      absl::StatusOr<uint32_t> retries =
          ParseCount<uint32_t>(flag, value, kMaxUint32 - 1);
      if (!retries.ok()) return retries.status();
      defaults_.mutable_retry()->set_max_attempts(*retries + 1);
      return absl::OkStatus();
    }
    case Flag::kLocation:
    case Flag::kNoLocation:
      defaults_.set_follow_redirects(flag == Flag::kLocation);
      return absl::OkStatus();
    case Flag::kMaxRedirs: {
      absl::StatusOr<uint32_t> redirects =
          ParseCount<uint32_t>(flag, value, kMaxUint32);
      if (!redirects.ok()) return redirects.status();
      defaults_.set_max_redirects(*redirects);
      return absl::OkStatus();
    }
    case Flag::kMaxFilesize: {
      absl::StatusOr<uint64_t> bytes = ParseCount<uint64_t>(
          flag, value, std::numeric_limits<uint64_t>::max());
      if (!bytes.ok()) return bytes.status();
      defaults_.set_max_body_bytes(*bytes);
      return absl::OkStatus();
    }
    case Flag::kFail:
      defaults_.set_fail_on_http_error(true);
      return absl::OkStatus();
    case Flag::kCacert:
    case Flag::kCert:
    case Flag::kKey: {
      absl::StatusOr<std::string> pem = ReadPem(flag, value);
      if (!pem.ok()) return pem.status();
      fetch::v1::TlsOptions& tls = *defaults_.mutable_tls();
      if (flag == Flag::kCacert) {
        tls.set_ca_pem(*std::move(pem));
      } else if (flag == Flag::kCert) {
        tls.set_client_cert_pem(*std::move(pem));
      } else if (flag == Flag::kKey) {
        tls.set_client_key_pem(*std::move(pem));
      }
      return absl::OkStatus();
    }
    case Flag::kInsecure:
      defaults_.mutable_tls()->set_verify(false);
      return absl::OkStatus();
    case Flag::kProxy:
      defaults_.mutable_proxy()->set_url(value);
      return absl::OkStatus();
    case Flag::kProxyUser: {
      const size_t colon = value.find(':');
      if (colon == std::string::npos) {
        return FlagError(flag, "want USER:PASSWORD");
      }
      defaults_.mutable_proxy()->set_username(value.substr(0, colon));
      defaults_.mutable_proxy()->set_password(value.substr(colon + 1));
      return absl::OkStatus();
    }
    case Flag::kHttp11:
      defaults_.set_http_version(fetch::v1::HTTP_VERSION_1_1);
      return absl::OkStatus();
    case Flag::kHttp2:
      defaults_.set_http_version(fetch::v1::HTTP_VERSION_2);
      return absl::OkStatus();
    case Flag::kResolve: {
      // HOST:PORT:ADDRESS, as curl --resolve; ADDRESS may be [IPv6].
      const std::vector<std::string> parts =
          absl::StrSplit(value, absl::MaxSplits(':', 2));
      uint32_t port = 0;
      if (parts.size() != 3 || parts[0].empty() || parts[2].empty() ||
          !absl::SimpleAtoi(parts[1], &port) || port > 65535) {
        return FlagError(flag, "want HOST:PORT:ADDRESS");
      }
      fetch::v1::ResolveOverride& pin = *defaults_.add_resolve();
      pin.set_host(parts[0]);
      pin.set_port(port);
      pin.set_address(parts[2]);
      return absl::OkStatus();
    }
    case Flag::kCookie: {
      const size_t equals = value.find('=');
      if (equals == std::string::npos || equals == 0) {
        return FlagError(flag, "want NAME=VALUE");
      }
      fetch::v1::Cookie& cookie = *options_.batch_template.add_cookies();
      cookie.set_name(value.substr(0, equals));
      cookie.set_value(value.substr(equals + 1));
      return absl::OkStatus();
    }
    case Flag::kNoCookies:
      options_.batch_template.set_cookie_jar(false);
      return absl::OkStatus();
    case Flag::kMaxConcurrency: {
      absl::StatusOr<uint32_t> concurrency =
          ParseCount<uint32_t>(flag, value, kMaxUint32);
      if (!concurrency.ok()) return concurrency.status();
      options_.batch_template.set_max_concurrency(*concurrency);
      return absl::OkStatus();
    }
    case Flag::kOrdered:
      options_.batch_template.set_ordered(true);
      return absl::OkStatus();
    case Flag::kFailFast:
      options_.batch_template.set_fail_fast(true);
      return absl::OkStatus();
    case Flag::kDeadline: {
      absl::StatusOr<absl::Duration> deadline = ParseSeconds(flag, value);
      if (!deadline.ok()) return deadline.status();
      options_.rpc_deadline = *deadline;
      return absl::OkStatus();
    }
    case Flag::kBody:
      options_.include_body = true;
      return absl::OkStatus();
    case Flag::kOutput:
      if (value.empty()) return FlagError(flag, "empty file name");
      options_.output_path = value;
      return absl::OkStatus();
    case Flag::kRaw:
      defaults_.set_decompress(false);
      return absl::OkStatus();
    case Flag::kChunkBytes: {
      absl::StatusOr<uint32_t> bytes =
          ParseCount<uint32_t>(flag, value, kMaxUint32);
      if (!bytes.ok()) return bytes.status();
      defaults_.set_chunk_bytes(*bytes);
      return absl::OkStatus();
    }
    case Flag::kQuiet:
      options_.quiet = true;
      return absl::OkStatus();
    case Flag::kVerbose:
      options_.verbose = true;
      return absl::OkStatus();
    case Flag::kProgress:
    case Flag::kNoProgress:
      options_.progress =
          flag == Flag::kProgress ? ProgressMode::kOn : ProgressMode::kOff;
      return absl::OkStatus();
  }
  return absl::InternalError("unhandled flag");
}

absl::StatusOr<FetchctlOptions> ArgsParser::Finish(
    std::vector<std::string> positional, absl::string_view env_server,
    absl::string_view env_token) {
  if (version_) {
    options_.command = Command::kVersion;
    return std::move(options_);
  }
  if (positional.empty()) {
    return absl::InvalidArgumentError(
        "missing command: expected 'get URL...', 'batch', 'ws URL' or "
        "'health'");
  }
  const std::string& command = positional[0];
  if (command == "get" || command == "ws") {
    options_.command = command == "get" ? Command::kGet : Command::kWs;
    options_.urls.assign(positional.begin() + 1, positional.end());
    if (command == "get" && options_.urls.empty()) {
      return absl::InvalidArgumentError("get: missing URL");
    }
    if (command == "ws" && options_.urls.size() != 1) {
      return absl::InvalidArgumentError(
          "ws: expected exactly one ws:// or wss:// URL");
    }
  } else if (command == "health") {
    options_.command = Command::kHealth;
    if (positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("health: unexpected argument '", positional[1], "'"));
    }
  } else if (command == "batch") {
    options_.command = Command::kBatch;
    if (positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch: unexpected argument '", positional[1],
                       "' (use -f FILE to read a file)"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", command,
                     "': expected 'get', 'batch', 'ws' or 'health'"));
  }
  if (file_set_ && options_.command != Command::kBatch) {
    return FlagError(Flag::kFile, "only valid with 'batch'");
  }
  if (!options_.output_path.empty()) {
    if (options_.command != Command::kGet) {
      return FlagError(Flag::kOutput, "only valid with 'get'");
    }
    if (options_.urls.size() != 1) {
      return FlagError(Flag::kOutput,
                       absl::StrCat("writes one body: give one URL, got ",
                                    options_.urls.size()));
    }
  }

  // Like curl: a body without an explicit method is a POST.
  if (data_set_ && !method_set_) defaults_.set_method("POST");

  ServerConnection& connection = options_.connection;
  if (connection.client_cert_pem.empty() != connection.client_key_pem.empty()) {
    // Name the flag that is missing.
    return FlagError(connection.client_cert_pem.empty() ? Flag::kServerCert
                                                        : Flag::kServerKey,
                     "missing: --server-cert and --server-key go together");
  }
  if (!connection.ca_cert_pem.empty() || !connection.client_cert_pem.empty() ||
      !connection.tls_server_name.empty()) {
    connection.tls = true;
  }
  if (!token_file_set_) {
    connection.bearer_token =
        std::string(absl::StripAsciiWhitespace(env_token));
  }
  if (server_.has_value()) {
    options_.server = *std::move(server_);
  } else if (!env_server.empty()) {
    options_.server = std::string(env_server);
  } else {
    options_.server = std::string(kDefaultServer);
  }
  return std::move(options_);
}

// A CLI11 parse error in our words. CLI11 reports a missing value as
// "--timeout: 1 required TEXT missing" and a value given to a switch as
// "ordered was given a disallowed flag override"; both name the flag by
// its long name.
absl::Status FromCliError(const CLI::ParseError& error) {
  const absl::string_view what = error.what();
  const size_t end = what.find_first_of(": ");
  const std::optional<Flag> flag = FlagByLongName(what.substr(0, end));
  if (flag.has_value() && absl::StrContains(what, "flag override")) {
    return FlagError(*flag, "takes no value");
  }
  if (flag.has_value() && absl::StrContains(what, "required")) {
    return FlagError(*flag, "missing value");
  }
  return absl::InvalidArgumentError(what);
}

}  // namespace

absl::StatusOr<FetchctlOptions> ParseFetchctlArgs(
    const std::vector<std::string>& args, absl::string_view env_server,
    absl::string_view env_token) {
  ArgsParser parser;
  std::vector<std::string> positional;
  CLI::App app("", "fetchctl");
  AddFetchctlFlags(
      app,
      [&parser](Flag flag, const std::string& value) {
        parser.Handle(flag, value);
      },
      positional);
  // CLI11 reports errors by throwing; this is the only place that catches.
  absl::Status cli_error;
  try {
    // CLI11 wants the arguments in reverse, without the program name.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty()) reversed.pop_back();
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    cli_error = FromCliError(e);
  } catch (const std::exception& e) {
    cli_error = absl::InternalError(e.what());
  }
  if (parser.help()) {
    FetchctlOptions options;
    options.command = Command::kHelp;
    return options;
  }
  if (!parser.error().ok()) return parser.error();
  if (!cli_error.ok()) return cli_error;
  for (const std::string& extra : app.remaining()) {
    if (extra == "--") continue;
    return absl::InvalidArgumentError(
        absl::StrCat("unknown or ambiguous option '", extra, "'"));
  }
  return parser.Finish(std::move(positional), env_server, env_token);
}

std::string FetchctlVersion() {
  return absl::StrCat("fetchctl ", kFetchdVersion, " (", kFetchdBuild, ")\n");
}

namespace {

// Fields of a FetchRequest (in BatchRequest.defaults) and of the
// BatchRequest itself, and the flag that sets each; the longest match
// wins ("proxy.username" before "proxy").
struct FieldFlag {
  absl::string_view field;
  Flag flag;
};
constexpr FieldFlag kDefaultsFields[] = {
    {"method", Flag::kRequest},
    {"headers", Flag::kHeader},
    {"body", Flag::kData},
    {"json", Flag::kJson},
    {"form", Flag::kDataUrlencode},
    {"multipart", Flag::kForm},
    {"query", Flag::kUrlQuery},
    {"basic_auth", Flag::kUser},
    {"bearer_token", Flag::kOauth2Bearer},
    {"timeouts.total", Flag::kTimeout},
    {"timeouts.connect", Flag::kConnectTimeout},
    {"timeouts.read_idle", Flag::kReadTimeout},
    {"retry", Flag::kRetries},
    {"follow_redirects", Flag::kLocation},
    {"max_redirects", Flag::kMaxRedirs},
    {"max_body_bytes", Flag::kMaxFilesize},
    {"tls.ca_pem", Flag::kCacert},
    {"tls.client_cert_pem", Flag::kCert},
    {"tls.client_key_pem", Flag::kKey},
    {"tls.verify", Flag::kInsecure},
    {"proxy.username", Flag::kProxyUser},
    {"proxy.password", Flag::kProxyUser},
    {"proxy", Flag::kProxy},
    {"http_version", Flag::kHttp2},
    {"resolve", Flag::kResolve},
    {"chunk_bytes", Flag::kChunkBytes},
    {"decompress", Flag::kRaw},
    {"fail_on_http_error", Flag::kFail},
};
constexpr FieldFlag kBatchFields[] = {
    {"cookies", Flag::kCookie},
    {"cookie_jar", Flag::kNoCookies},
    {"max_concurrency", Flag::kMaxConcurrency},
};

// Whether `path` is `field` or inside it ("headers[0]", "retry.x").
bool PathIn(absl::string_view path, absl::string_view field) {
  return absl::ConsumePrefix(&path, field) &&
         (path.empty() || path[0] == '.' || path[0] == '[');
}

std::optional<Flag> FlagOfField(absl::string_view path,
                                absl::Span<const FieldFlag> fields) {
  std::optional<Flag> found;
  size_t longest = 0;
  for (const FieldFlag& f : fields) {
    if (f.field.size() > longest && PathIn(path, f.field)) {
      found = f.flag;
      longest = f.field.size();
    }
  }
  return found;
}

// "[N]" right after `prefix` in `path` ("headers[3].name" -> 3).
std::optional<int> IndexAfter(absl::string_view path,
                              absl::string_view prefix) {
  if (!absl::ConsumePrefix(&path, prefix) || !absl::ConsumePrefix(&path, "[")) {
    return std::nullopt;
  }
  int index = 0;
  if (!absl::SimpleAtoi(path.substr(0, path.find(']')), &index)) {
    return std::nullopt;
  }
  return index;
}

}  // namespace

std::optional<std::string> UsageErrorFromServer(
    const absl::Status& status, const FetchctlOptions& options) {
  if (status.code() != absl::StatusCode::kInvalidArgument) return std::nullopt;
  const absl::string_view message = status.message();
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos) return std::nullopt;
  absl::string_view path = message.substr(0, colon);
  // A FetchStream's options are a BatchRequest's, under "options.".
  absl::ConsumePrefix(&path, "options.");
  const absl::string_view reason = message.substr(colon + 2);
  const std::string field = absl::StrCat(" (fetchd: ", path, ")");

  absl::string_view in_defaults = path;
  if (absl::ConsumePrefix(&in_defaults, "defaults.")) {
    const std::optional<Flag> flag = FlagOfField(in_defaults, kDefaultsFields);
    if (!flag.has_value()) return std::nullopt;
    // Name the header as it was given.
    const fetch::v1::FetchRequest& d = options.batch_template.defaults();
    const std::optional<int> i = IndexAfter(in_defaults, "headers");
    const std::string given =
        *flag == Flag::kHeader && i.has_value() && *i < d.headers_size()
            ? absl::StrCat(" '", d.headers(*i).name(), ": ",
                           d.headers(*i).value(), "'")
            : "";
    return absl::StrCat(FlagName(*flag), given, ": ", reason, field);
  }
  if (const std::optional<Flag> flag = FlagOfField(path, kBatchFields)) {
    return absl::StrCat(FlagName(*flag), ": ", reason, field);
  }
  if (const std::optional<int> i = IndexAfter(path, "requests")) {
    // `get`: request i is the i-th URL; `batch`: the i-th request read.
    if (options.command == Command::kGet &&
        *i < static_cast<int>(options.urls.size())) {
      return absl::StrCat("URL '", options.urls[static_cast<size_t>(*i)],
                          "': ", reason, field);
    }
    return absl::StrCat(
        options.input_path == "-" ? "stdin" : options.input_path, ": request ",
        *i + 1, " (counting from 1): ", reason, field);
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<fetch::v1::FetchRequest>>
BatchInputReader::Next() {
  std::string line;
  while (std::getline(input_, line)) {
    ++line_number_;
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text.front() == '#') {
      continue;
    }
    fetch::v1::FetchRequest request;
    if (text.front() != '{') {
      request.set_url(std::string(text));
      return request;
    }
    const google::protobuf::util::Status status =
        google::protobuf::util::JsonStringToMessage(
            google::protobuf::StringPiece(text.data(), text.size()), &request);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number_, ": invalid JSON FetchRequest: ",
          absl::string_view(status.message().data(), status.message().size())));
    }
    return request;
  }
  if (input_.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("read error after line ", line_number_));
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<fetch::v1::FetchRequest>> ParseBatchInput(
    std::istream& input) {
  std::vector<fetch::v1::FetchRequest> requests;
  BatchInputReader reader(input);
  while (true) {
    absl::StatusOr<std::optional<fetch::v1::FetchRequest>> next = reader.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return requests;
    requests.push_back(**std::move(next));
  }
}

std::string BatchInputName(const FetchctlOptions& options) {
  return options.input_path == "-" ? "stdin" : options.input_path;
}

absl::StatusOr<std::istream*> OpenBatchInput(const FetchctlOptions& options,
                                             std::ifstream& file) {
  if (options.input_path == "-") return &std::cin;
  file.open(options.input_path);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open '", options.input_path,
                     "': ", std::generic_category().message(errno)));
  }
  return &file;
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
    case Command::kVersion:
      return absl::InvalidArgumentError("no batch to build for this command");
  }

  const std::string input_name = BatchInputName(options);
  std::ifstream file;
  absl::StatusOr<std::istream*> input = OpenBatchInput(options, file);
  if (!input.ok()) return input.status();
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(**input);
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
