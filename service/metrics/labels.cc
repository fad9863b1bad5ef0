#include "service/metrics/labels.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace fetchd::metrics {
size_t MethodLabel(absl::string_view method) {
  // Validated jobs carry upper-case methods: the exact match comes first.
  for (size_t i = 0; i + 1 < kMethodLabels.size(); ++i) {
    if (method == kMethodLabels[i]) return i;
  }
  for (size_t i = 0; i + 1 < kMethodLabels.size(); ++i) {
    if (absl::EqualsIgnoreCase(method, kMethodLabels[i])) {
      return i;
    }
  }
  return kMethodLabels.size() - 1;
}

size_t StatusClassLabel(uint32_t status) {
  if (status < 100 || status > 599) return kStatusClassLabels.size() - 1;
  return status / 100 - 1;
}

size_t OutcomeLabel(fetch::v1::ErrorKind kind) {
  const auto index = static_cast<size_t>(kind);
  if (index >= kOutcomes || !fetch::v1::ErrorKind_IsValid(kind)) {
    return fetch::v1::ERROR_KIND_INTERNAL;
  }
  return index;
}

const std::string& OutcomeName(size_t index) {
  static const auto* names = [] {
    auto* out = new std::array<std::string, kOutcomes>();
    constexpr absl::string_view kPrefix = "ERROR_KIND_";
    for (size_t i = 0; i < kOutcomes; ++i) {
      const auto kind = static_cast<fetch::v1::ErrorKind>(i);
      if (kind == fetch::v1::ERROR_KIND_NONE) {
        (*out)[i] = "ok";
      } else if (fetch::v1::ErrorKind_IsValid(kind)) {
        std::string name = fetch::v1::ErrorKind_Name(kind);
        if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
        (*out)[i] = absl::AsciiStrToLower(name);
      } else {
        (*out)[i] = "internal";  // a gap in the enum; never produced
      }
    }
    return out;
  }();
  constexpr auto kInternal =
      static_cast<size_t>(fetch::v1::ERROR_KIND_INTERNAL);
  return (*names)[index < kOutcomes ? index : kInternal];
}

HostLabels::HostLabels(const std::vector<std::string>& allowed) {
  for (const std::string& name : allowed) {
    std::string lower = absl::AsciiStrToLower(name);
    if (index_.contains(lower)) continue;
    index_.emplace(lower, names_.size());
    names_.push_back(std::move(lower));
  }
  names_.push_back("other");
}

size_t HostLabels::Index(absl::string_view host_key) const {
  if (index_.empty()) return other();
  // "scheme://host:port": the host lies between "://" and the last ':'.
  const size_t start = host_key.find("://");
  const size_t colon = host_key.rfind(':');
  if (start == absl::string_view::npos || colon <= start + 3) return other();
  const absl::string_view host = host_key.substr(start + 3, colon - start - 3);
  const auto it = index_.find(host);
  return it == index_.end() ? other() : it->second;
}

}  // namespace fetchd::metrics
