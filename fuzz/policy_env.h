// Address policies the classifier fuzzers check against, and the IPv6 forms
// that embed an IPv4 address, built here independently of
// address_policy.cc.
#ifndef FETCHD_FUZZ_POLICY_ENV_H_
#define FETCHD_FUZZ_POLICY_ENV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_check.h"
#include "service/policy/address_policy.h"

namespace fetchd::fuzz {

using policy::AddressPolicy;
using policy::Cidr;
using policy::IpAddress;

inline AddressPolicy MustCreate(const AddressPolicy::Options& options) {
  absl::StatusOr<AddressPolicy> policy = AddressPolicy::Create(options);
  FUZZ_CHECK(policy.ok(), policy.status().ToString());
  return *std::move(policy);
}

struct PolicyEnv {
  // The built-in ranges and names only.
  AddressPolicy builtin = MustCreate({});
  // Only an explicit deny list: 127.0.0.0/8, 10.0.0.0/8, ::1.
  AddressPolicy deny_list = MustCreate({
      .deny = {{"127.0.0.0/8", {}}, {"10.0.0.0/8", {}}, {"::1", {}}},
      .deny_by_default_ranges = false,
  });
  // Built-ins, with 127.0.0.1 and 10.0.0.0/8 allowed.
  AddressPolicy allow_list = MustCreate({
      .allow = {{"127.0.0.1", {}}, {"10.0.0.0/8", {}}},
  });
  // Built-ins, port 443 only.
  AddressPolicy port_443 = MustCreate({.allowed_ports = {443}});
};

inline IpAddress V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress addr;
  addr.family = IpAddress::Family::kV6;
  addr.bytes = bytes;
  return addr;
}

// ::ffff:a.b.c.d
inline IpAddress Mapped(const IpAddress& v4) {
  return V6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4.bytes[0], v4.bytes[1],
             v4.bytes[2], v4.bytes[3]});
}
// 64:ff9b::a.b.c.d (RFC 6052)
inline IpAddress Nat64(const IpAddress& v4) {
  return V6({0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, v4.bytes[0],
             v4.bytes[1], v4.bytes[2], v4.bytes[3]});
}
// 2002:aabb:ccdd:: (RFC 3056)
inline IpAddress SixToFour(const IpAddress& v4) {
  return V6({0x20, 0x02, v4.bytes[0], v4.bytes[1], v4.bytes[2], v4.bytes[3], 0,
             0, 0, 0, 0, 0, 0, 0, 0, 1});
}
// ::a.b.c.d (RFC 4291 2.5.5.1, deprecated)
inline IpAddress Compat(const IpAddress& v4) {
  return V6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, v4.bytes[0], v4.bytes[1],
             v4.bytes[2], v4.bytes[3]});
}

}  // namespace fetchd::fuzz

#endif  // FETCHD_FUZZ_POLICY_ENV_H_
