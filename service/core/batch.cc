#include "service/core/batch.h"

namespace fetchd::core {

Batch::Batch(const Options& options, DispatchWaker* waker)
    : options_(options), waker_(waker) {}

bool Batch::TryAcquire(uint32_t index) {
  int in_flight = in_flight_.load(std::memory_order_relaxed);
  do {
    if (in_flight >= options_.max_concurrency) {
      starved_.store(true, std::memory_order_release);
      return false;
    }
  } while (!in_flight_.compare_exchange_weak(in_flight, in_flight + 1,
                                             std::memory_order_acq_rel));

  const bool head = options_.ordered &&
                    index == next_to_write_.load(std::memory_order_acquire);
  int used = window_used_.load(std::memory_order_relaxed);
  do {
    if (used >= options_.window && !head) {
      in_flight_.fetch_sub(1, std::memory_order_acq_rel);
      starved_.store(true, std::memory_order_release);
      return false;
    }
  } while (!window_used_.compare_exchange_weak(used, used + 1,
                                               std::memory_order_acq_rel));
  int high = window_high_water_.load(std::memory_order_relaxed);
  while (used + 1 > high && !window_high_water_.compare_exchange_weak(
                                high, used + 1, std::memory_order_relaxed)) {
  }
  return true;
}

void Batch::ReleaseConcurrency() {
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  WakeIfStarved();
}

void Batch::ReleaseWindow() {
  window_used_.fetch_sub(1, std::memory_order_acq_rel);
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
  if (waker_ != nullptr && starved_.load(std::memory_order_acquire) &&
      starved_.exchange(false, std::memory_order_acq_rel)) {
    waker_->WakeAll();
  }
}

}  // namespace fetchd::core
