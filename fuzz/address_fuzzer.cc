// address_fuzzer: the address classifier's parsers and Check().
//  - the input as text: IpAddress::Parse and Cidr::Parse, with round trips
//    (Parse(ToString(x)) == x), a CIDR containing its base and last address
//    and not its neighbours, and deny/allow lists built from it;
//  - the input's first 4 and 16 bytes as addresses;
//  - every address reached: Check() under fixed policies, including the
//    IPv6 forms embedding an IPv4 address (mapped, NAT64, 6to4, compatible).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/policy_env.h"
#include "service/policy/address_policy.h"

namespace fetchd::fuzz {
namespace {

using policy::Decision;

bool InCidr(const IpAddress& addr, absl::string_view text) {
  absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  FUZZ_CHECK(cidr.ok(), cidr.status().ToString());
  return cidr->Contains(addr);
}

bool Bit(const IpAddress& addr, int bit) {
  return (addr.bytes[bit / 8] & (0x80 >> (bit % 8))) != 0;
}

IpAddress FlipBit(IpAddress addr, int bit) {
  addr.bytes[bit / 8] ^= static_cast<uint8_t>(0x80 >> (bit % 8));
  return addr;
}

std::string Describe(const IpAddress& addr, const Decision& d) {
  return absl::StrCat(addr.ToString(), " -> ", d.allowed ? "allowed" : "denied",
                      " (", d.rule, ")");
}

void ExpectAllowed(const AddressPolicy& policy, const IpAddress& addr,
                   bool allowed, const char* policy_name) {
  const Decision d = policy.Check(addr, 443);
  FUZZ_CHECK(d.allowed == allowed, policy_name, ": ", Describe(addr, d),
             ", want ", allowed ? "allowed" : "denied");
}

bool InDenyList(const IpAddress& v4) {
  return InCidr(v4, "127.0.0.0/8") || InCidr(v4, "10.0.0.0/8");
}

// The IPv4 address `addr` embeds, by the forms of policy_env.h.
std::optional<IpAddress> EmbeddedV4(const IpAddress& addr) {
  if (addr.is_v4()) return std::nullopt;
  const IpAddress last4 = IpAddress::V4(addr.bytes[12], addr.bytes[13],
                                        addr.bytes[14], addr.bytes[15]);
  if (addr == Mapped(last4) || addr == Nat64(last4)) return last4;
  if (addr == Compat(last4) && !InCidr(last4, "0.0.0.0/31")) return last4;
  if (addr.bytes[0] == 0x20 && addr.bytes[1] == 0x02) {
    return IpAddress::V4(addr.bytes[2], addr.bytes[3], addr.bytes[4],
                         addr.bytes[5]);
  }
  return std::nullopt;
}

void CheckAddress(const PolicyEnv& env, const IpAddress& addr) {
  for (const AddressPolicy* p :
       {&env.builtin, &env.deny_list, &env.allow_list, &env.port_443}) {
    const Decision zero = p->Check(addr, 0);
    FUZZ_CHECK(!zero.allowed && !zero.rule.empty(), Describe(addr, zero));
    FUZZ_CHECK(!p->Check(addr, 80).rule.empty());
  }
  // allowed_ports: the same decision on 443, and nothing on 80.
  const Decision base = env.builtin.Check(addr, 443);
  const Decision on_443 = env.port_443.Check(addr, 443);
  FUZZ_CHECK(on_443.allowed == base.allowed && on_443.rule == base.rule,
             Describe(addr, on_443), " vs ", Describe(addr, base));
  const Decision on_80 = env.port_443.Check(addr, 80);
  FUZZ_CHECK(!on_80.allowed, "port_443 on 80: ", Describe(addr, on_80));

  if (addr.is_v4()) {
    ExpectAllowed(env.deny_list, addr, !InDenyList(addr), "deny_list");
    const bool listed =
        addr == IpAddress::V4(127, 0, 0, 1) || InCidr(addr, "10.0.0.0/8");
    if (listed) ExpectAllowed(env.allow_list, addr, true, "allow_list");
    // Every IPv6 form that embeds it is a special-purpose range; a deny-list
    // entry matches through each form; an allow-list entry only through the
    // IPv4-mapped form, the one that is the same destination.
    for (const IpAddress& form :
         {Mapped(addr), Nat64(addr), SixToFour(addr), Compat(addr)}) {
      if (form == Compat(addr) && InCidr(addr, "0.0.0.0/31")) continue;
      ExpectAllowed(env.builtin, form, false, "builtin");
      ExpectAllowed(env.deny_list, form, !InDenyList(addr), "deny_list");
      ExpectAllowed(env.allow_list, form, listed && form == Mapped(addr),
                    "allow_list");
    }
    return;
  }
  if (std::optional<IpAddress> v4 = EmbeddedV4(addr); v4.has_value()) {
    ExpectAllowed(env.builtin, addr, false, "builtin");
    ExpectAllowed(env.deny_list, addr, !InDenyList(*v4), "deny_list");
  } else {
    ExpectAllowed(env.deny_list, addr, !InCidr(addr, "::1/128"), "deny_list");
  }
}

void CheckIpText(const PolicyEnv& env, absl::string_view text) {
  const std::optional<IpAddress> addr = IpAddress::Parse(text);
  if (!addr.has_value()) return;
  // Only the inet_pton forms: digits, hex digits, dots and colons.
  FUZZ_CHECK(text.size() <= 45 &&
                 std::all_of(text.begin(), text.end(),
                             [](char c) {
                               return absl::ascii_isxdigit(
                                          static_cast<unsigned char>(c)) ||
                                      c == '.' || c == ':';
                             }),
             "IpAddress::Parse accepted ", Quote(text));
  if (addr->is_v4()) {
    FUZZ_CHECK(std::all_of(addr->bytes.begin() + 4, addr->bytes.end(),
                           [](uint8_t b) { return b == 0; }));
    FUZZ_CHECK(text.find(':') == absl::string_view::npos);
  }
  const std::string canonical = addr->ToString();
  const std::optional<IpAddress> again = IpAddress::Parse(canonical);
  FUZZ_CHECK(again.has_value() && *again == *addr, Quote(text), " -> ",
             Quote(canonical));
  FUZZ_CHECK(again->ToString() == canonical);
  const absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  FUZZ_CHECK(
      cidr.ok() && cidr->base == *addr && cidr->prefix == addr->size() * 8,
      Quote(text), ": ", cidr.status().ToString());
  CheckAddress(env, *addr);
}

void CheckCidrText(const PolicyEnv& env, absl::string_view text) {
  const absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  const absl::StatusOr<AddressPolicy> deny = AddressPolicy::Create(
      {.deny = {{std::string(text), {}}}, .deny_by_default_ranges = false});
  const absl::StatusOr<AddressPolicy> allow =
      AddressPolicy::Create({.allow = {{std::string(text), {}}}});
  if (!cidr.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(cidr.status()));
    FUZZ_CHECK(!deny.ok() && absl::StartsWith(deny.status().message(),
                                              "deny[0]: invalid CIDR"),
               deny.status().ToString());
    FUZZ_CHECK(!allow.ok() && absl::StartsWith(allow.status().message(),
                                               "allow[0]: invalid CIDR"),
               allow.status().ToString());
    return;
  }
  FUZZ_CHECK(deny.ok() && allow.ok());
  const IpAddress& base = cidr->base;
  const int max = base.size() * 8;
  FUZZ_CHECK(cidr->prefix >= 0 && cidr->prefix <= max, cidr->prefix);
  IpAddress last = base;
  for (int bit = cidr->prefix; bit < max; ++bit) {
    FUZZ_CHECK(!Bit(base, bit), Quote(text), ": host bit ", bit, " set");
    last = FlipBit(last, bit);
  }
  FUZZ_CHECK(cidr->Contains(base), Quote(text));
  FUZZ_CHECK(cidr->Contains(last), Quote(text), " vs ", last.ToString());
  if (cidr->prefix < max) {
    FUZZ_CHECK(cidr->Contains(FlipBit(base, max - 1)), Quote(text));
  }
  if (cidr->prefix > 0) {
    FUZZ_CHECK(!cidr->Contains(FlipBit(base, cidr->prefix - 1)), Quote(text));
    FUZZ_CHECK(!cidr->Contains(FlipBit(last, cidr->prefix - 1)), Quote(text));
  }
  IpAddress other;
  other.family = base.is_v4() ? IpAddress::Family::kV6 : IpAddress::Family::kV4;
  FUZZ_CHECK(!cidr->Contains(other), Quote(text));

  const std::string canonical = cidr->ToString();
  const absl::StatusOr<Cidr> again = Cidr::Parse(canonical);
  FUZZ_CHECK(again.ok() && *again == *cidr, Quote(text), " -> ",
             Quote(canonical));

  for (const IpAddress& addr : {base, last}) {
    const Decision denied = deny->Check(addr, 80);
    FUZZ_CHECK(!denied.allowed && denied.rule == "deny " + canonical,
               Describe(addr, denied));
    const Decision allowed = allow->Check(addr, 80);
    FUZZ_CHECK(allowed.allowed && allowed.rule == "allow " + canonical,
               Describe(addr, allowed));
    if (addr.is_v4()) {
      FUZZ_CHECK(!deny->Check(Mapped(addr), 80).allowed);
      FUZZ_CHECK(!deny->Check(Nat64(addr), 80).allowed);
      FUZZ_CHECK(allow->Check(Mapped(addr), 80).allowed);
    }
    CheckAddress(env, addr);
  }
}

}  // namespace
}  // namespace fetchd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fetchd::fuzz;  // NOLINT(build/namespaces)
  static const auto* env = new PolicyEnv();
  if (size > 256) return 0;  // no address or CIDR is longer
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckIpText(*env, text);
  CheckCidrText(*env, text);
  if (size >= 4)
    CheckAddress(*env, IpAddress::V4(data[0], data[1], data[2], data[3]));
  if (size >= 16) {
    std::array<uint8_t, 16> bytes;
    std::copy(data, data + 16, bytes.begin());
    CheckAddress(*env, V6(bytes));
  }
  return 0;
}
