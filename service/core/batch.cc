#include "service/core/batch.h"

#include <utility>

namespace fetchd::core {

Batch::Batch(const Options& options, DispatchWaker* waker)
    : options_(options), waker_(waker) {}

namespace {
constexpr uint64_t kOneInFlight = 1;
constexpr uint64_t kOneWindow = uint64_t{1} << 32;
}  // namespace

Batch::Shortage Batch::TryAcquireOnce(uint32_t index) {
  const bool head = options_.ordered &&
                    index == next_to_write_.load(std::memory_order_seq_cst);
  uint64_t slots = slots_.load(std::memory_order_seq_cst);
  while (true) {
    const auto in_flight = static_cast<int64_t>(slots & 0xffffffffu);
    const auto window = static_cast<int64_t>(slots >> 32);
    if (in_flight >= options_.max_concurrency) return Shortage::kConcurrency;
    if (window >= options_.window && !head) return Shortage::kWindow;
    if (slots_.compare_exchange_weak(slots, slots + kOneInFlight + kOneWindow,
                                     std::memory_order_seq_cst)) {
      int high = window_high_water_.load(std::memory_order_relaxed);
      while (window + 1 > high && !window_high_water_.compare_exchange_weak(
                                      high, static_cast<int>(window + 1),
                                      std::memory_order_relaxed)) {
      }
      return Shortage::kNone;
    }
  }
}

bool Batch::TryAcquire(uint32_t index, int waiter) {
  const uint64_t bit = uint64_t{1} << (waiter % 64);
  bool waits_concurrency = false;
  bool waits_window = false;
  // Say which slot the job waits for, then look again: a release that ran
  // before it could see the bit happened before the next look, so no wakeup
  // is lost. Ends after at most three looks.
  while (true) {
    switch (TryAcquireOnce(index)) {
      case Shortage::kNone:
        return true;
      case Shortage::kConcurrency:
        if (waits_concurrency) return false;
        waits_concurrency = true;
        starved_concurrency_.fetch_or(bit, std::memory_order_seq_cst);
        break;
      case Shortage::kWindow:
        if (waits_window) return false;
        waits_window = true;
        starved_window_.fetch_or(bit, std::memory_order_seq_cst);
        break;
    }
  }
}

void Batch::ReleaseConcurrency() {
  slots_.fetch_sub(kOneInFlight, std::memory_order_seq_cst);
  WakeIfStarved(starved_concurrency_);
}

void Batch::ReleaseWindow() {
  slots_.fetch_sub(kOneWindow, std::memory_order_seq_cst);
  WakeIfStarved(starved_window_);
}

void Batch::OnResultWritten(bool held_window) {
  if (held_window) ReleaseWindow();
}

void Batch::SendHead(fetch::v1::BodyHead head) {
  const auto bytes = static_cast<int64_t>(head.ByteSizeLong());
  CountStreamed(bytes);
  DeliverHead(std::move(head), bytes);
}

void Batch::SendChunk(fetch::v1::BodyChunk chunk) {
  const auto bytes = static_cast<int64_t>(chunk.data().size());
  CountStreamed(bytes);
  DeliverChunk(std::move(chunk), bytes);
}

void Batch::CountStreamed(int64_t bytes) {
  const int64_t now =
      stream_buffered_.fetch_add(bytes, std::memory_order_seq_cst) + bytes;
  int64_t high = stream_high_water_.load(std::memory_order_relaxed);
  while (now > high && !stream_high_water_.compare_exchange_weak(
                           high, now, std::memory_order_relaxed)) {
  }
}

bool Batch::StreamHasRoom(int waiter) {
  const auto has_room = [this] {
    return stream_buffered_.load(std::memory_order_seq_cst) <
           options_.max_stream_buffer_bytes;
  };
  if (has_room()) return true;
  // As in TryAcquire: say we wait, then look again, so that a drain that
  // ran before the bit was visible is seen by the second look.
  starved_stream_.fetch_or(uint64_t{1} << (waiter % 64),
                           std::memory_order_seq_cst);
  return has_room();
}

void Batch::OnStreamWritten(int64_t bytes) {
  const int64_t left =
      stream_buffered_.fetch_sub(bytes, std::memory_order_seq_cst) - bytes;
  if (left < options_.max_stream_buffer_bytes) {
    WakeIfStarved(starved_stream_);
  }
}

bool Batch::Cancel(fetch::v1::ErrorKind why) {
  auto expected = fetch::v1::ERROR_KIND_NONE;
  return cancel_error_.compare_exchange_strong(expected, why,
                                               std::memory_order_acq_rel);
}

void Batch::WakeIfStarved(std::atomic<uint64_t>& starved) {
  if (waker_ == nullptr || starved.load(std::memory_order_seq_cst) == 0) {
    return;
  }
  if (const uint64_t workers = starved.exchange(0, std::memory_order_seq_cst);
      workers != 0) {
    waker_->Wake(workers);
  }
}

}  // namespace fetchd::core
