// The allocator figures behind fetch_process_heap_bytes. Built twice: with
// tcmalloc linked (as fetchd is), where they must follow what the test
// allocates and frees, and in the sanitizer builds without it, where there
// is nothing to report.
#include "service/metrics/heap_stats.h"

#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>

#include "gtest/gtest.h"

namespace fetchd::metrics {
namespace {

#if FETCHD_TEST_TCMALLOC

constexpr uint64_t kBlock = 64 << 20;

TEST(HeapStatsTest, FollowsWhatTheProgramHoldsAndFrees) {
  const std::optional<HeapStats> before = ReadHeapStats();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->in_use, 0u);

  auto block = std::make_unique<char[]>(kBlock);
  std::memset(block.get(), 1, kBlock);
  // Keeps the allocation observable, so it can't be elided.
  volatile char* const touched = block.get();
  EXPECT_EQ(touched[kBlock - 1], 1);
  const std::optional<HeapStats> holding = ReadHeapStats();
  ASSERT_TRUE(holding.has_value());
  EXPECT_GE(holding->in_use, before->in_use + kBlock);

  block.reset();
  const std::optional<HeapStats> freed = ReadHeapStats();
  ASSERT_TRUE(freed.has_value());
  EXPECT_LE(freed->in_use + kBlock, holding->in_use);
  // Free now, and either still mapped or already given back.
  EXPECT_GE(freed->free_mapped + freed->released, kBlock);

  ASSERT_TRUE(ReleaseFreeHeap());
  const std::optional<HeapStats> released = ReadHeapStats();
  ASSERT_TRUE(released.has_value());
  EXPECT_GE(released->released, kBlock);
  EXPECT_LT(released->free_mapped, kBlock);
}

#else

TEST(HeapStatsTest, NothingToReportWithoutTcmalloc) {
  EXPECT_FALSE(ReadHeapStats().has_value());
  EXPECT_FALSE(ReleaseFreeHeap());
}

#endif

}  // namespace
}  // namespace fetchd::metrics
