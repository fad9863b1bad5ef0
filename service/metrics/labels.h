// The bounded label values of the fetch_ metrics (README.md, "Metrics") and
// the mapping of request facts onto them. Each label's values form a fixed
// table, so a child metric can be found by index, without building a label
// map per request.
//
// Thread-safety: everything here is immutable after construction.
#ifndef FETCHD_SERVICE_METRICS_LABELS_H_
#define FETCHD_SERVICE_METRICS_LABELS_H_

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::metrics {

// method: the validated methods, anything else "other".
inline constexpr std::array<absl::string_view, 8> kMethodLabels = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"};
// Index into kMethodLabels (case-insensitive).
size_t MethodLabel(absl::string_view method);

// status_class: of the last response; "none" when there was none (status 0)
// or it is outside 100..599.
inline constexpr std::array<absl::string_view, 6> kStatusClassLabels = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "none"};
size_t StatusClassLabel(uint32_t status);

// outcome: "ok" for ERROR_KIND_NONE, else the ErrorKind name without its
// ERROR_KIND_ prefix, lower case ("connect_timeout"). Indexed by the enum
// value.
inline constexpr size_t kOutcomes = fetch::v1::ErrorKind_ARRAYSIZE;
// Index of `kind`; an unknown value counts as "internal".
size_t OutcomeLabel(fetch::v1::ErrorKind kind);
const std::string& OutcomeName(size_t index);

// grpc_method.
inline constexpr std::array<absl::string_view, 3> kGrpcMethodLabels = {
    "FetchBatch", "Fetch", "FetchStream"};
// grpc_code: the canonical code names, indexed by code.
inline constexpr std::array<absl::string_view, 17> kGrpcCodeLabels = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED"};

// reason of fetch_retries_total, indexed by core::RetryReason.
inline constexpr std::array<absl::string_view, 3> kRetryReasonLabels = {
    "error", "status", "retry_after"};

// reason of fetch_rejected_calls_total.
inline constexpr std::array<absl::string_view, 3> kRejectReasonLabels = {
    "invalid_argument", "resource_exhausted", "unavailable"};

// phase of fetch_phase_duration_seconds.
enum class Phase { kQueueWait, kDns, kConnect, kTls, kFirstByte, kTransfer };
inline constexpr std::array<absl::string_view, 6> kPhaseLabels = {
    "queue_wait", "dns", "connect", "tls", "first_byte", "transfer"};

// host: the host names of an allow-list, every other host "other".
class HostLabels {
 public:
  // `allowed`: host names as they appear in URLs; matched case-insensitively.
  // Duplicates are ignored.
  explicit HostLabels(const std::vector<std::string>& allowed);

  // Number of values, "other" included.
  size_t size() const { return names_.size(); }
  // The value of `host_key` ("scheme://host:port", lower case; may be
  // empty): its host's index if allowed, else other().
  size_t Index(absl::string_view host_key) const;
  size_t other() const { return names_.size() - 1; }
  // `index` < size().
  const std::string& Name(size_t index) const {
    assert(index < names_.size());
    return names_[index];
  }

 private:
  // Allowed names first, "other" last.
  std::vector<std::string> names_;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_LABELS_H_
