#include "service/core/batch.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::core {
namespace {

class CountingWaker : public DispatchWaker {
 public:
  void Wake(uint64_t workers) override {
    ++wakes;
    last_workers = workers;
  }
  uint64_t last_workers = 0;
  int wakes = 0;
};

// Batch is abstract; the flow control under test is the base class's.
class TestBatch : public Batch {
 public:
  using Batch::Batch;
  void Deliver(fetch::v1::FetchResult /*result*/,
               bool /*holds_window*/) override {}
};

Batch::Options Limits(int max_concurrency, int window, bool ordered = false) {
  Batch::Options options;
  options.max_concurrency = max_concurrency;
  options.window = window;
  options.ordered = ordered;
  return options;
}

TEST(BatchTest, ConcurrencyLimitsAcquisitionUntilReleased) {
  TestBatch batch(Limits(/*max_concurrency=*/2, /*window=*/100), nullptr);
  EXPECT_TRUE(batch.TryAcquire(0));
  EXPECT_TRUE(batch.TryAcquire(1));
  EXPECT_FALSE(batch.TryAcquire(2));
  EXPECT_EQ(batch.window_in_use(), 2);

  batch.ReleaseConcurrency();
  EXPECT_TRUE(batch.TryAcquire(2));
  EXPECT_FALSE(batch.TryAcquire(3));
  // Concurrency slots are not window slots: three results hold the window.
  EXPECT_EQ(batch.window_in_use(), 3);
}

TEST(BatchTest, WindowLimitsAcquisitionUntilResultsAreWritten) {
  TestBatch batch(Limits(/*max_concurrency=*/100, /*window=*/2), nullptr);
  EXPECT_TRUE(batch.TryAcquire(0));
  EXPECT_TRUE(batch.TryAcquire(1));
  // Both attempts ended, their results are not written yet.
  batch.ReleaseConcurrency();
  batch.ReleaseConcurrency();
  EXPECT_FALSE(batch.TryAcquire(2));
  EXPECT_EQ(batch.window_in_use(), 2);

  // A result delivered without a window slot returns nothing.
  batch.OnResultWritten(/*held_window=*/false);
  EXPECT_FALSE(batch.TryAcquire(2));

  batch.OnResultWritten(/*held_window=*/true);
  EXPECT_EQ(batch.window_in_use(), 1);
  EXPECT_TRUE(batch.TryAcquire(2));
  EXPECT_EQ(batch.window_in_use(), 2);
}

TEST(BatchTest, FailedWindowAcquisitionGivesTheConcurrencySlotBack) {
  TestBatch batch(Limits(/*max_concurrency=*/2, /*window=*/1), nullptr);
  EXPECT_TRUE(batch.TryAcquire(0));
  // Window full: must not leak the concurrency slot it took first.
  EXPECT_FALSE(batch.TryAcquire(1));
  EXPECT_FALSE(batch.TryAcquire(1));
  batch.ReleaseWindow();
  EXPECT_TRUE(batch.TryAcquire(1));
}

TEST(BatchTest, WindowHighWaterKeepsTheMaximum) {
  TestBatch batch(Limits(100, 100), nullptr);
  EXPECT_EQ(batch.window_high_water(), 0);
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(batch.TryAcquire(i));
  EXPECT_EQ(batch.window_high_water(), 3);
  batch.ReleaseWindow();
  batch.ReleaseWindow();
  EXPECT_EQ(batch.window_in_use(), 1);
  EXPECT_EQ(batch.window_high_water(), 3);
  ASSERT_TRUE(batch.TryAcquire(3));
  EXPECT_EQ(batch.window_high_water(), 3);
  for (uint32_t i = 4; i < 7; ++i) ASSERT_TRUE(batch.TryAcquire(i));
  EXPECT_EQ(batch.window_in_use(), 5);
  EXPECT_EQ(batch.window_high_water(), 5);
}

TEST(BatchTest, OrderedHeadBypassesAFullWindow) {
  TestBatch batch(Limits(/*max_concurrency=*/100, /*window=*/1,
                         /*ordered=*/true),
                  nullptr);
  // Index 1 holds the only window slot; index 0 is what the stream waits
  // for, so it may still start. Index 2 may not.
  EXPECT_TRUE(batch.TryAcquire(1));
  EXPECT_TRUE(batch.TryAcquire(0));
  EXPECT_FALSE(batch.TryAcquire(2));
  EXPECT_EQ(batch.window_in_use(), 2);

  // Once 0 and 1 are written the stream waits for 2, which becomes the head.
  batch.set_next_to_write(2);
  EXPECT_TRUE(batch.TryAcquire(2));
  EXPECT_FALSE(batch.TryAcquire(3));
}

TEST(BatchTest, UnorderedBatchHasNoHeadBypass) {
  TestBatch batch(Limits(/*max_concurrency=*/100, /*window=*/1), nullptr);
  EXPECT_TRUE(batch.TryAcquire(1));
  EXPECT_FALSE(batch.TryAcquire(0));
}

TEST(BatchTest, HeadBypassStillRespectsConcurrency) {
  TestBatch batch(Limits(/*max_concurrency=*/1, /*window=*/1,
                         /*ordered=*/true),
                  nullptr);
  EXPECT_TRUE(batch.TryAcquire(1));
  EXPECT_FALSE(batch.TryAcquire(0));
}

TEST(BatchTest, CancelSucceedsOnceAndKeepsTheFirstReason) {
  TestBatch batch(Batch::Options{}, nullptr);
  EXPECT_FALSE(batch.cancelled());
  EXPECT_EQ(batch.cancel_error(), fetch::v1::ERROR_KIND_NONE);

  EXPECT_TRUE(batch.Cancel(fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED));
  EXPECT_TRUE(batch.cancelled());
  EXPECT_EQ(batch.cancel_error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);

  EXPECT_FALSE(batch.Cancel(fetch::v1::ERROR_KIND_CANCELLED));
  EXPECT_EQ(batch.cancel_error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
}

TEST(BatchTest, OptionsAreExposed) {
  Batch::Options options = Limits(1, 1, /*ordered=*/true);
  options.deadline = absl::UnixEpoch() + absl::Seconds(5);
  TestBatch batch(options, nullptr);
  EXPECT_TRUE(batch.ordered());
  EXPECT_EQ(batch.deadline(), absl::UnixEpoch() + absl::Seconds(5));
  EXPECT_EQ(TestBatch(Batch::Options{}, nullptr).deadline(),
            absl::InfiniteFuture());
}

TEST(BatchTest, WakesOnlyTheWorkersThatWait) {
  CountingWaker waker;
  TestBatch batch(Limits(/*max_concurrency=*/1, /*window=*/100), &waker);
  ASSERT_TRUE(batch.TryAcquire(0, /*waiter=*/1));
  EXPECT_FALSE(batch.TryAcquire(1, /*waiter=*/3));
  EXPECT_FALSE(batch.TryAcquire(2, /*waiter=*/5));
  batch.ReleaseConcurrency();
  EXPECT_EQ(waker.wakes, 1);
  EXPECT_EQ(waker.last_workers, (uint64_t{1} << 3) | (uint64_t{1} << 5));
}

TEST(BatchTest, StarvedBatchWakesOnceWhenAConcurrencySlotFrees) {
  CountingWaker waker;
  TestBatch batch(Limits(/*max_concurrency=*/1, /*window=*/100), &waker);
  ASSERT_TRUE(batch.TryAcquire(0));
  // Nobody waits yet: a release wakes nobody.
  batch.ReleaseConcurrency();
  EXPECT_EQ(waker.wakes, 0);

  ASSERT_TRUE(batch.TryAcquire(1));
  EXPECT_FALSE(batch.TryAcquire(2));
  EXPECT_EQ(waker.wakes, 0);
  batch.ReleaseConcurrency();
  EXPECT_EQ(waker.wakes, 1);

  // The wake consumed the starvation: another release is silent.
  ASSERT_TRUE(batch.TryAcquire(2));
  batch.ReleaseConcurrency();
  EXPECT_EQ(waker.wakes, 1);
}

TEST(BatchTest, StarvedBatchWakesWhenAWindowSlotFrees) {
  const struct {
    const char* name;
    void (*free_slot)(Batch&);
  } kCases[] = {
      {"ReleaseWindow", [](Batch& b) { b.ReleaseWindow(); }},
      {"OnResultWritten", [](Batch& b) { b.OnResultWritten(true); }},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    CountingWaker waker;
    TestBatch batch(Limits(/*max_concurrency=*/100, /*window=*/1), &waker);
    ASSERT_TRUE(batch.TryAcquire(0));
    EXPECT_FALSE(batch.TryAcquire(1));
    c.free_slot(batch);
    EXPECT_EQ(waker.wakes, 1);
    EXPECT_TRUE(batch.TryAcquire(1));
  }
}

TEST(BatchTest, NewHeadWakesAStarvedOrderedBatch) {
  CountingWaker waker;
  TestBatch batch(Limits(100, /*window=*/1, /*ordered=*/true), &waker);
  ASSERT_TRUE(batch.TryAcquire(0));
  EXPECT_FALSE(batch.TryAcquire(1));
  // Index 1 becomes the head: it may start now, so the workers must look.
  batch.set_next_to_write(1);
  EXPECT_EQ(waker.wakes, 1);
  EXPECT_TRUE(batch.TryAcquire(1));
}

}  // namespace
}  // namespace fetchd::core

namespace fetchd::core {
namespace {

// A batch that keeps what it is streamed until the test "writes" it.
class StreamingBatch : public Batch {
 public:
  using Batch::Batch;
  void Deliver(fetch::v1::FetchResult /*result*/,
               bool /*holds_window*/) override {}
  void Write() {
    OnStreamWritten(held_);
    held_ = 0;
  }
  int64_t held() const { return held_; }

 protected:
  void DeliverHead(fetch::v1::BodyHead /*head*/, int64_t bytes) override {
    held_ += bytes;
  }
  void DeliverChunk(fetch::v1::BodyChunk /*chunk*/, int64_t bytes) override {
    held_ += bytes;
  }

 private:
  int64_t held_ = 0;
};

fetch::v1::BodyChunk Chunk(size_t bytes) {
  fetch::v1::BodyChunk chunk;
  chunk.set_data(std::string(bytes, 'x'));
  return chunk;
}

TEST(BatchStreamTest, NoRoomAtTheBoundUntilWrittenThenTheWaiterIsWoken) {
  CountingWaker waker;
  Batch::Options options = Limits(10, 10);
  options.max_stream_buffer_bytes = 1000;
  StreamingBatch batch(options, &waker);
  EXPECT_TRUE(batch.StreamHasRoom(/*waiter=*/3));
  batch.SendChunk(Chunk(600));
  EXPECT_TRUE(batch.StreamHasRoom(3));
  batch.SendChunk(Chunk(600));
  EXPECT_EQ(batch.stream_buffered(), 1200);
  EXPECT_EQ(batch.held(), 1200);
  EXPECT_FALSE(batch.StreamHasRoom(3));
  EXPECT_EQ(waker.wakes, 0);

  batch.Write();
  EXPECT_EQ(batch.stream_buffered(), 0);
  EXPECT_EQ(waker.wakes, 1);
  EXPECT_EQ(waker.last_workers, uint64_t{1} << 3);
  EXPECT_TRUE(batch.StreamHasRoom(3));
  EXPECT_EQ(batch.stream_buffered_high_water(), 1200);
}

TEST(BatchStreamTest, ABatchThatCantStreamDropsWhatItIsSent) {
  TestBatch batch(Limits(10, 10), nullptr);
  batch.SendHead(fetch::v1::BodyHead());
  batch.SendChunk(Chunk(5000));
  EXPECT_EQ(batch.stream_buffered(), 0);
  EXPECT_EQ(batch.stream_buffered_high_water(), 5000);
}

}  // namespace
}  // namespace fetchd::core
