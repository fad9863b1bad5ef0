#include "service/auth/host_allow_list.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fetchd::auth {
namespace {

// Letters, digits, '-', '_' and '.': host names and IPv4 literals. IPv6
// literals can't be listed (':' would read like a port).
bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_' || c == '.';
}

}  // namespace

absl::StatusOr<HostAllowList> HostAllowList::Create(
    absl::Span<const std::string> patterns, absl::string_view field) {
  HostAllowList list;
  for (size_t i = 0; i < patterns.size(); ++i) {
    const auto invalid = [&](absl::string_view rule) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]: ", rule, ", got \"", patterns[i], "\""));
    };
    absl::string_view pattern = patterns[i];
    if (pattern == "*") {
      list.any_ = true;
      continue;
    }
    const bool wildcard = absl::ConsumePrefix(&pattern, "*.");
    if (pattern.empty() || pattern.front() == '.' || pattern.back() == '.' ||
        absl::StrContains(pattern, "..")) {
      return invalid("must be a host name, \"*.\" followed by one, or \"*\"");
    }
    for (char c : pattern) {
      if (!IsHostChar(c)) {
        return invalid(
            "may hold only letters, digits, '-', '_' and '.' after an "
            "optional leading \"*.\"");
      }
    }
    std::string lower = absl::AsciiStrToLower(pattern);
    if (wildcard) {
      list.suffixes_.push_back(absl::StrCat(".", lower));
    } else {
      list.exact_.push_back(std::move(lower));
    }
  }
  return list;
}

bool HostAllowList::Allows(absl::string_view host) const {
  if (allows_all()) return true;
  const std::string lower = absl::AsciiStrToLower(host);
  for (const std::string& exact : exact_) {
    if (lower == exact) return true;
  }
  for (const std::string& suffix : suffixes_) {
    if (lower.size() > suffix.size() && absl::EndsWith(lower, suffix)) {
      return true;
    }
  }
  return false;
}

absl::string_view HostOfKey(absl::string_view host_key) {
  absl::string_view rest = host_key;
  if (const size_t scheme = rest.find("://");
      scheme != absl::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    return close == absl::string_view::npos ? rest.substr(1)
                                            : rest.substr(1, close - 1);
  }
  if (const size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    rest = rest.substr(0, colon);
  }
  return rest;
}

}  // namespace fetchd::auth
