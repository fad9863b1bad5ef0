// host_fuzzer: AddressPolicy::CheckHostName on the input as a host, against
// two independent oracles of what the host means:
//  - getaddrinfo(AI_NUMERICHOST), which parses IP literals (shorthand IPv4
//    forms included) as the resolver does and never resolves: when it reads
//    the host as address X, the decision must be Check(X)'s;
//  - curl's URL parser (as fetchd's ParseUrl calls it), which normalizes the
//    host of http://<host>/: a host allowed as given must be allowed as
//    curl reads it.
// And deny_host_patterns: a pattern Create accepts matches itself.
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/policy_env.h"
#include "service/policy/address_policy.h"
#include "service/transport/curl_handles.h"

namespace fetchd::fuzz {
namespace {

using policy::Decision;

// The address getaddrinfo reads `host` as without any lookup, if any.
std::optional<IpAddress> NumericHost(const std::string& host) {
  if (host.find('\0') != std::string::npos) return std::nullopt;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0)
    return std::nullopt;
  std::optional<IpAddress> addr;
  if (res->ai_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
    addr.emplace();
    std::memcpy(addr->bytes.data(), &sin->sin_addr, 4);
  } else if (res->ai_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(res->ai_addr);
    addr.emplace();
    addr->family = IpAddress::Family::kV6;
    std::memcpy(addr->bytes.data(), &sin6->sin6_addr, 16);
  }
  freeaddrinfo(res);
  return addr;
}

// The host curl's URL parser gives for http://<host>/, for a host made of
// characters that cannot end the authority or add userinfo or a port.
std::optional<std::string> CurlHost(const std::string& host) {
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return std::nullopt;
    if (std::string_view("/?#@\\").find(c) != std::string_view::npos) {
      return std::nullopt;
    }
  }
  if (host.find(':') != std::string::npos && !absl::StartsWith(host, "[")) {
    return std::nullopt;
  }
  transport::CurlUrlPtr url(curl_url());
  FUZZ_CHECK(url != nullptr);
  const std::string text = absl::StrCat("http://", host, "/");
  if (curl_url_set(url.get(), CURLUPART_URL, text.c_str(),
                   CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return std::nullopt;
  }
  char* value = nullptr;
  if (curl_url_get(url.get(), CURLUPART_HOST, &value, 0) != CURLUE_OK) {
    return std::nullopt;
  }
  std::string out(value);
  curl_free(value);
  return out;
}

std::string Describe(std::string_view host, const Decision& d) {
  return absl::StrCat(Quote(host), " -> ", d.allowed ? "allowed" : "denied",
                      " (", d.rule, ")");
}

void CheckHost(const AddressPolicy& policy, const char* name,
               const std::string& host, const std::optional<IpAddress>& numeric,
               const std::optional<std::string>& curl_host) {
  const Decision d = policy.CheckHostName(host, 80);
  FUZZ_CHECK(!d.rule.empty(), Describe(host, d));
  if (numeric.has_value()) {
    const Decision by_addr = policy.Check(*numeric, 80);
    FUZZ_CHECK(d.allowed == by_addr.allowed, name, ": ", Describe(host, d),
               " but getaddrinfo reads ", numeric->ToString(), ": ",
               by_addr.rule);
  }
  if (curl_host.has_value()) {
    // Allowing the host as given but not the host curl connects to would
    // let a caller that checks the text it was given through. (The other
    // way round, e.g. a percent-encoded name, is only stricter.)
    const Decision by_curl = policy.CheckHostName(*curl_host, 80);
    FUZZ_CHECK(!d.allowed || by_curl.allowed, name, ": ", Describe(host, d),
               " but curl's host ", Describe(*curl_host, by_curl));
  }
  if (std::optional<IpAddress> addr = IpAddress::Parse(host); addr) {
    const Decision by_addr = policy.Check(*addr, 80);
    FUZZ_CHECK(d.allowed == by_addr.allowed && d.rule == by_addr.rule, name,
               ": ", Describe(host, d), " vs ", by_addr.rule);
  }
}

// Lower case, trailing dots removed: how names compare.
std::string Normalized(std::string host) {
  while (!host.empty() && host.back() == '.') host.pop_back();
  return absl::AsciiStrToLower(host);
}

}  // namespace
}  // namespace fetchd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fetchd::fuzz;  // NOLINT(build/namespaces)
  static const auto* env = new PolicyEnv();
  if (size > 300) return 0;  // a DNS name has at most 253 characters
  const std::string host(reinterpret_cast<const char*>(data), size);
  const std::optional<IpAddress> numeric = NumericHost(host);
  const std::optional<std::string> curl_host = CurlHost(host);
  CheckHost(env->builtin, "builtin", host, numeric, curl_host);
  CheckHost(env->deny_list, "deny_list", host, numeric, curl_host);

  const std::string name = Normalized(host);
  // (A name: "fe80::1%eth0.localhost" is an address with a zone id.)
  if ((name == "localhost" || absl::EndsWith(name, ".localhost")) &&
      name.find_first_of("[:") == std::string::npos) {
    FUZZ_CHECK(!env->builtin.CheckHostName(host, 80).allowed, Quote(host));
  }

  // The input as a deny_host_patterns entry.
  const absl::StatusOr<AddressPolicy> patterns = AddressPolicy::Create(
      {.deny_host_patterns = {host}, .deny_by_default_ranges = false});
  if (!patterns.ok()) {
    FUZZ_CHECK(absl::StartsWith(patterns.status().message(),
                                "deny_host_patterns[0]: "),
               patterns.status().ToString());
    return 0;
  }
  const Decision self = patterns->CheckHostName(host, 80);
  FUZZ_CHECK(!self.allowed && absl::StartsWith(self.rule, "deny host "),
             "pattern ", Describe(host, self));
  if (absl::StartsWith(name, "*.")) {
    const std::string below = absl::StrCat("a", name.substr(1));
    const Decision sub = patterns->CheckHostName(below, 80);
    FUZZ_CHECK(!sub.allowed, "pattern ", Quote(host), ": ",
               Describe(below, sub));
  }
  return 0;
}
