// Conversions between google.protobuf.Duration (the API's type) and
// absl::Duration (the engine's type).
#ifndef FETCHD_SERVICE_COMMON_PROTO_DURATION_H_
#define FETCHD_SERVICE_COMMON_PROTO_DURATION_H_

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace fetchd {

// The rules of duration.proto: |seconds| <= 10000 years, |nanos| < 1e9, and
// seconds and nanos don't have opposite signs.
inline bool IsValidProtoDuration(const google::protobuf::Duration& d) {
  constexpr int64_t kMaxSeconds = 315576000000;
  if (d.seconds() > kMaxSeconds || d.seconds() < -kMaxSeconds) return false;
  if (d.nanos() >= 1000000000 || d.nanos() <= -1000000000) return false;
  return !((d.seconds() < 0 && d.nanos() > 0) ||
           (d.seconds() > 0 && d.nanos() < 0));
}

inline absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

inline google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

}  // namespace fetchd

#endif  // FETCHD_SERVICE_COMMON_PROTO_DURATION_H_
