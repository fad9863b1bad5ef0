#include "client/fetchctl_flags.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/fetchctl_options.h"

namespace fetchd::client {
namespace {

struct FlagSpec {
  Flag flag;
  // CLI11 names: "-H,--header" or "--timeout".
  const char* names;
  // The value's name in --help; nullptr for a flag that takes no value.
  const char* value;
  const char* help;
};

struct FlagGroup {
  const char* title;
  std::vector<FlagSpec> flags;
};

// Every flag, in --help order. Help lines wrap at 79 columns: the text
// starts at column 31.
const std::vector<FlagGroup>& Groups() {
  static const auto* const groups = new std::vector<FlagGroup>{
      {"Server",
       {
           {Flag::kServer, "--server", "HOST:PORT",
            "fetchd address (default: $FETCHD_SERVER, else\n"
            "127.0.0.1:50051)"},
           {Flag::kTls, "--tls", nullptr,
            "connect with TLS, verifying fetchd's\n"
            "certificate against the system's CAs"},
           {Flag::kServerCacert, "--server-cacert", "FILE",
            "PEM CA(s) for fetchd's certificate; implies\n--tls"},
           {Flag::kServerCert, "--server-cert", "FILE",
            "PEM client certificate, for an mTLS fetchd;"},
           {Flag::kServerKey, "--server-key", "FILE",
            "and its private key; imply --tls"},
           {Flag::kTlsServerName, "--tls-server-name", "NAME",
            "verify fetchd's certificate for NAME instead\n"
            "of the host of --server; implies --tls"},
           {Flag::kTokenFile, "--token-file", "FILE",
            "send the token on FILE's first line as\n"
            "\"authorization: Bearer TOKEN\" (default:\n"
            "$FETCHD_TOKEN, if set)"},
       }},
      {"Request options",
       {
           {Flag::kRequest, "-X,--request", "METHOD",
            "HTTP method (default GET, or POST with -d)"},
           {Flag::kHeader, "-H,--header", "\"NAME: VALUE\"",
            "add a request header (repeatable, order kept)"},
           {Flag::kData, "-d,--data", "DATA",
            "request body; @FILE sends the contents of FILE;\n"
            "implies POST unless -X is given"},
           {Flag::kJson, "--json", "DATA",
            "JSON body (or @FILE), Content-Type\n"
            "application/json unless -H sets one; implies\n"
            "POST"},
           {Flag::kForm, "-F,--form", "NAME=VALUE",
            "multipart/form-data part (repeatable): a field,\n"
            "NAME=@FILE a file (;type=TYPE, ;filename=NAME),\n"
            "NAME=<FILE a field with FILE's contents;\n"
            "implies POST"},
           {Flag::kDataUrlencode, "--data-urlencode", "NAME=VALUE",
            "urlencoded form field (repeatable), value\n"
            "percent-encoded; NAME@FILE: FILE's contents;\n"
            "implies POST"},
           {Flag::kUrlQuery, "--url-query", "NAME=VALUE",
            "append a percent-encoded query parameter to\n"
            "each URL (repeatable; NAME@FILE too)"},
           {Flag::kUser, "-u,--user", "USER:PASSWORD",
            "HTTP Basic credentials for the target"},
           {Flag::kOauth2Bearer, "--oauth2-bearer", "TOKEN",
            "\"Authorization: Bearer TOKEN\" for the target\n"
            "(both dropped on cross-origin redirects)"},
           {Flag::kCacert, "--cacert", "FILE",
            "trust the PEM CA(s) in FILE for the target"},
           {Flag::kCert, "--cert", "FILE",
            "PEM client certificate for the target"},
           {Flag::kKey, "--key", "FILE", "its private key"},
           {Flag::kInsecure, "-k,--insecure", nullptr,
            "don't verify the target's certificate (only\n"
            "if fetchd allows it)"},
           {Flag::kProxy, "-x,--proxy", "URL",
            "proxy: http://, https://, socks5://, socks5h://"},
           {Flag::kProxyUser, "--proxy-user", "USER:PASS", "proxy credentials"},
           {Flag::kHttp11, "--http1.1", nullptr,
            "HTTP version preference (default: HTTP/2 over"},
           {Flag::kHttp2, "--http2", nullptr, "TLS when offered)"},
           {Flag::kResolve, "--resolve", "HOST:PORT:ADDR",
            "connect to ADDR for HOST:PORT (still checked\n"
            "by fetchd's destination policy)"},
           {Flag::kCookie, "-b,--cookie", "NAME=VALUE",
            "a cookie sent with every request (repeatable)"},
           {Flag::kNoCookies, "--no-cookies", nullptr,
            "no cookie jar: cookies set by responses are\n"
            "not sent on later requests"},
           {Flag::kTimeout, "--timeout", "SECONDS",
            "whole transfer, per attempt (decimals allowed)"},
           {Flag::kConnectTimeout, "--connect-timeout", "SECONDS",
            "connection establishment, per attempt"},
           {Flag::kReadTimeout, "--read-timeout", "SECONDS",
            "longest time without receiving data"},
           {Flag::kRetries, "--retries", "N",
            "retry a failed request up to N times"},
           {Flag::kLocation, "-L,--location", nullptr,
            "follow redirects (the server's default)"},
           {Flag::kNoLocation, "--no-location", nullptr,
            "do not follow redirects"},
           {Flag::kMaxRedirs, "--max-redirs", "N",
            "follow at most N redirects"},
           {Flag::kMaxFilesize, "--max-filesize", "BYTES",
            "fail a response whose body exceeds BYTES\n"
            "(default: fetchd's cap, 2 MiB unless its config\n"
            "says otherwise; -o FILE streams without a cap)"},
           {Flag::kFail, "--fail", nullptr,
            "report an HTTP status >= 400 as an error\n"
            "(ERROR_KIND_HTTP_STATUS; status, headers and\n"
            "body are kept)"},
       }},
      {"Batch options",
       {
           {Flag::kFile, "-f,--file", "FILE",
            "batch input file (\"-\": stdin, the default)"},
           {Flag::kMaxConcurrency, "--max-concurrency", "N",
            "at most N requests of the batch in flight\n"
            "(default 0: the server's limit)"},
           {Flag::kOrdered, "--ordered", nullptr,
            "print results in input order, not as they finish"},
           {Flag::kFailFast, "--fail-fast", nullptr,
            "cancel the remaining requests after a failure"},
           {Flag::kDeadline, "--deadline", "SECONDS",
            "deadline of the whole call, connecting to\n"
            "fetchd included"},
       }},
      {"Output",
       {
           {Flag::kBody, "--body", nullptr,
            "keep the response body (base64) in the JSON;\n"
            "without it the body is left out"},
           {Flag::kOutput, "-o,--output", "FILE",
            "get: stream the body of the (one) URL into\n"
            "FILE (\"-\": stdout) as it arrives, in bounded\n"
            "memory; the JSON result goes to stdout without\n"
            "its body (not with -o -). Progress on stderr:\n"
            "a bar on a terminal, else a line per second"},
           {Flag::kRaw, "--raw", nullptr,
            "keep the body as sent (no gzip/deflate/br/zstd\n"
            "decoding, no Accept-Encoding added)"},
           {Flag::kChunkBytes, "--chunk-bytes", "N",
            "with -o: size of the streamed pieces"},
           {Flag::kQuiet, "-q,--quiet", nullptr,
            "no JSON output, only the summary and exit status"},
           {Flag::kVerbose, "-v,--verbose", nullptr,
            "per result on stderr: status, remote address,\n"
            "connection reuse, timings and response headers"},
           {Flag::kProgress, "--progress", nullptr,
            "progress bar and summary on stderr"},
           {Flag::kNoProgress, "--no-progress", nullptr,
            "no progress bar (default: progress iff stderr\n"
            "is a terminal)"},
           {Flag::kHelp, "-h,--help", nullptr, "print this help and exit"},
           {Flag::kVersion, "--version", nullptr,
            "print fetchctl's version and build, and exit"},
       }},
  };
  return *groups;
}

const FlagSpec* FindSpec(Flag flag) {
  for (const FlagGroup& group : Groups()) {
    for (const FlagSpec& spec : group.flags) {
      if (spec.flag == flag) return &spec;
    }
  }
  return nullptr;
}

constexpr absl::string_view kSynopsis =
    R"(Usage: fetchctl [OPTIONS] get URL [URL...]
       fetchctl [OPTIONS] batch [-f FILE]
       fetchctl [OPTIONS] ws URL
       fetchctl [--server HOST:PORT] [--deadline SECONDS] health
       fetchctl --version

Fetches URLs through a fetchd server. Prints one JSON object per result (a
fetch.v1.FetchResult in the protobuf JSON mapping; "index", "status" and
"attempts" always present) on stdout, one per line, as results arrive.

batch reads one request per line from FILE (stdin when FILE is "-" or -f is
absent): a line starting with '{' is a JSON fetch.v1.FetchRequest, any other
line is a URL; blank lines and lines starting with '#' are skipped. The request
options below are defaults for every request; a JSON line overrides them. Each
request goes to fetchd as soon as it is read (FetchStream), so results come
while a producer is still writing (producer | fetchctl batch), for any number
of lines; a bad line ends the input after the results of the lines before it.

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

)";

// Renders the help as curl does: "  -H, --header VALUE", long-only flags
// aligned after a blank short one, groups separated by one blank line.
class UsageFormatter : public CLI::Formatter {
 public:
  UsageFormatter() { column_width(31); }

  std::string make_description(const CLI::App*) const override { return ""; }
  std::string make_usage(const CLI::App*, std::string) const override {
    return std::string(kSynopsis);
  }
  std::string make_group(std::string group, bool is_positional,
                         std::vector<const CLI::Option*> opts) const override {
    std::string out = group + ":\n";
    for (const CLI::Option* opt : opts) out += make_option(opt, is_positional);
    return out;
  }
  std::string make_option_name(const CLI::Option* opt, bool) const override {
    const std::vector<std::string>& shorts = opt->get_snames();
    const std::vector<std::string>& longs = opt->get_lnames();
    std::string name = shorts.empty() ? "    " : "-" + shorts[0] + ", ";
    if (!longs.empty()) absl::StrAppend(&name, "--", longs[0]);
    return name;
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    return opt->get_type_name().empty() ? "" : " " + opt->get_type_name();
  }
  std::string make_footer(const CLI::App*) const override {
    std::string out = "Exit status:\n";
    for (const auto& [code, meaning] : kExitCodeMeanings) {
      absl::StrAppend(&out, "  ", static_cast<int>(code), "  ",
                      absl::StrReplaceAll(meaning, {{"\n", "\n     "}}), "\n");
    }
    return out;
  }
};

}  // namespace

std::string FlagName(Flag flag) {
  const FlagSpec* spec = FindSpec(flag);
  if (spec == nullptr) return "?";
  return absl::StrReplaceAll(spec->names, {{",", "/"}});
}

std::optional<Flag> FlagByLongName(absl::string_view name) {
  absl::ConsumePrefix(&name, "--");
  for (const FlagGroup& group : Groups()) {
    for (const FlagSpec& spec : group.flags) {
      for (absl::string_view n : absl::StrSplit(spec.names, ',')) {
        if (absl::ConsumePrefix(&n, "--") && n == name) return spec.flag;
      }
    }
  }
  return std::nullopt;
}

void AddFetchctlFlags(CLI::App& app, FlagHandler handler,
                      std::vector<std::string>& positional) {
  // -h and --help are ours (Command::kHelp), like every other flag.
  app.set_help_flag();
  app.formatter(std::make_shared<UsageFormatter>());
  // Unknown flags end up in app.remaining(), for our own message.
  app.allow_extras(true);
  // The command and its URLs; not listed with the flags (group ""). First,
  // so that the last group listed is a real one.
  app.add_option("args", positional)->group("");
  for (const FlagGroup& group : Groups()) {
    for (const FlagSpec& spec : group.flags) {
      const Flag flag = spec.flag;
      const bool takes_value = spec.value != nullptr;
      CLI::Option* option = app.add_option(
          spec.names,
          [handler, flag, takes_value](const CLI::results_t& results) {
            // CLI11 passes an empty value as no result.
            handler(flag, takes_value && !results.empty() ? results.front()
                                                          : std::string());
            return true;
          },
          spec.help);
      // Each occurrence is handled when it is parsed, so flags act in
      // command line order (-L --no-location: the last one wins).
      option->trigger_on_parse()
          ->expected(takes_value ? 1 : 0)
          ->group(group.title);
      if (takes_value) {
        option->type_name(spec.value);
      } else {
        // --ordered=yes is an error, not a value.
        option->disable_flag_override();
      }
    }
  }
}

std::string FetchctlUsage() {
  CLI::App app("", "fetchctl");
  std::vector<std::string> positional;
  AddFetchctlFlags(
      app, [](Flag, const std::string&) {}, positional);
  return app.help();
}

}  // namespace fetchd::client
