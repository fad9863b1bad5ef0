#include "service/core/politeness/host_pattern.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fetchd::core::politeness {
namespace {

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

// Port digits 1..65535, else 0.
int ParsePort(absl::string_view digits) {
  int port = 0;
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(digits, &port) || port < 1 || port > 65535) {
    return 0;
  }
  return port;
}

bool IsLabelChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_';
}

absl::Status CheckHostName(absl::string_view host) {
  if (host.empty()) return Invalid("empty host");
  if (host.find('*') != absl::string_view::npos) {
    return Invalid(
        "'*' may only be a whole first label (*.example.com); the default "
        "rule is the catch-all");
  }
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty()) {
      return Invalid("empty label (leading, trailing or double dot)");
    }
    for (char c : label) {
      if (!IsLabelChar(c)) {
        return Invalid(absl::StrCat("character '", absl::CHexEscape({&c, 1}),
                                    "' is not allowed in a host name"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckIpv6Literal(absl::string_view host) {
  // host is "[...]".
  absl::string_view inner = host.substr(1, host.size() - 2);
  if (inner.empty() || inner.find(':') == absl::string_view::npos) {
    return Invalid("brackets hold an IPv6 address");
  }
  for (char c : inner) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' &&
        c != '.') {
      return Invalid("brackets hold an IPv6 address");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<HostKeyParts> SplitHostKey(absl::string_view key) {
  const size_t sep = key.find("://");
  if (sep == absl::string_view::npos || sep == 0) return std::nullopt;
  absl::string_view authority = key.substr(sep + 3);
  const size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return std::nullopt;
  const int port = ParsePort(authority.substr(colon + 1));
  if (port == 0) return std::nullopt;
  return HostKeyParts{key.substr(0, sep), authority.substr(0, colon), port};
}

absl::StatusOr<HostPattern> HostPattern::Parse(absl::string_view text) {
  HostPattern pattern;
  pattern.text_ = std::string(text);
  if (text.empty()) return Invalid("empty pattern");
  const std::string lower = absl::AsciiStrToLower(text);
  absl::string_view rest = lower;
  if (const size_t sep = rest.find("://"); sep != absl::string_view::npos) {
    pattern.scheme_ = std::string(rest.substr(0, sep));
    if (pattern.scheme_ != "http" && pattern.scheme_ != "https") {
      return Invalid("scheme must be http or https");
    }
    pattern.port_ = pattern.scheme_ == "http" ? 80 : 443;
    rest.remove_prefix(sep + 3);
  }
  if (rest.find_first_of("/?#@") != absl::string_view::npos) {
    return Invalid("a pattern names a host, not a URL (no path or user)");
  }
  // The port, if any, follows the host (after the ']' of an IPv6 literal).
  size_t host_end = 0;
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) return Invalid("unclosed '['");
    host_end = close + 1;
  }
  const size_t colon = rest.find(':', host_end);
  if (colon != absl::string_view::npos) {
    if (pattern.scheme_.empty()) {
      return Invalid("a port needs a scheme (https://host:port)");
    }
    pattern.port_ = ParsePort(rest.substr(colon + 1));
    if (pattern.port_ == 0) return Invalid("port must be 1..65535");
    rest = rest.substr(0, colon);
  }
  if (absl::StartsWith(rest, "[")) {
    if (host_end != rest.size()) return Invalid("text after ']'");
    if (absl::Status s = CheckIpv6Literal(rest); !s.ok()) return s;
  } else {
    if (absl::StartsWith(rest, "*.")) {
      pattern.wildcard_ = true;
      rest.remove_prefix(2);
    }
    if (absl::Status s = CheckHostName(rest); !s.ok()) return s;
  }
  pattern.host_ = std::string(rest);
  return pattern;
}

bool HostPattern::MatchesHost(absl::string_view host) const {
  if (!wildcard_) return host == host_;
  return host.size() > host_.size() && absl::EndsWith(host, host_) &&
         host[host.size() - host_.size() - 1] == '.';
}

bool HostPattern::Matches(absl::string_view scheme, absl::string_view host,
                          int port) const {
  if (!scheme_.empty() && (scheme != scheme_ || port != port_)) return false;
  return MatchesHost(host);
}

bool HostPattern::ShadowedBy(const HostPattern& earlier) const {
  if (!earlier.scheme_.empty() &&
      (scheme_ != earlier.scheme_ || port_ != earlier.port_)) {
    return false;
  }
  if (earlier.wildcard_) {
    return earlier.MatchesHost(host_) || (wildcard_ && host_ == earlier.host_);
  }
  return !wildcard_ && host_ == earlier.host_;
}

}  // namespace fetchd::core::politeness
