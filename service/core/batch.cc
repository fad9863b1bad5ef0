#include "service/core/batch.h"

namespace fetchd::core {

Batch::Batch(const Options& options, DispatchWaker* waker)
    : options_(options), waker_(waker) {}

namespace {
constexpr uint64_t kOneInFlight = 1;
constexpr uint64_t kOneWindow = uint64_t{1} << 32;
}  // namespace

bool Batch::TryAcquireOnce(uint32_t index) {
  const bool head = options_.ordered &&
                    index == next_to_write_.load(std::memory_order_seq_cst);
  uint64_t slots = slots_.load(std::memory_order_seq_cst);
  while (true) {
    const auto in_flight = static_cast<int64_t>(slots & 0xffffffffu);
    const auto window = static_cast<int64_t>(slots >> 32);
    if (in_flight >= options_.max_concurrency) return false;
    if (window >= options_.window && !head) return false;
    if (slots_.compare_exchange_weak(slots, slots + kOneInFlight + kOneWindow,
                                     std::memory_order_seq_cst)) {
      int high = window_high_water_.load(std::memory_order_relaxed);
      while (window + 1 > high &&
             !window_high_water_.compare_exchange_weak(
                 high, static_cast<int>(window + 1),
                 std::memory_order_relaxed)) {
      }
      return true;
    }
  }
}

bool Batch::TryAcquire(uint32_t index) {
  if (TryAcquireOnce(index)) return true;
  // Say that a job waits, then look again: a release that ran before it
  // could see the flag happened before this second look, so no wakeup is
  // lost.
  starved_.store(true, std::memory_order_seq_cst);
  return TryAcquireOnce(index);
}

void Batch::ReleaseConcurrency() {
  slots_.fetch_sub(kOneInFlight, std::memory_order_seq_cst);
  WakeIfStarved();
}

void Batch::ReleaseWindow() {
  slots_.fetch_sub(kOneWindow, std::memory_order_seq_cst);
  WakeIfStarved();
}

void Batch::OnResultWritten(bool held_window) {
  if (held_window) ReleaseWindow();
}

bool Batch::Cancel(fetch::v1::ErrorKind why) {
  auto expected = fetch::v1::ERROR_KIND_NONE;
  return cancel_error_.compare_exchange_strong(expected, why,
                                               std::memory_order_acq_rel);
}

void Batch::WakeIfStarved() {
  if (waker_ != nullptr && starved_.load(std::memory_order_seq_cst) &&
      starved_.exchange(false, std::memory_order_seq_cst)) {
    waker_->WakeAll();
  }
}

}  // namespace fetchd::core
