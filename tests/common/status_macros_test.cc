#include "service/common/status_macros.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace fetchd {
namespace {

// Counts its calls, so that the tests see each macro evaluate `expr` once.
struct Source {
  int calls = 0;
  absl::Status Status(absl::Status status) {
    ++calls;
    return status;
  }
  absl::StatusOr<std::unique_ptr<std::string>> Value(
      absl::StatusOr<std::string> value) {
    ++calls;
    if (!value.ok()) return value.status();
    return std::make_unique<std::string>(*std::move(value));
  }
};

absl::Status ReturnIfError(Source& source, absl::Status status,
                           bool* reached_end) {
  FETCHD_RETURN_IF_ERROR(source.Status(std::move(status)));
  *reached_end = true;
  return absl::OkStatus();
}

TEST(ReturnIfError, ReturnsTheErrorOnce) {
  Source source;
  bool reached_end = false;
  const absl::Status s =
      ReturnIfError(source, absl::NotFoundError("no such host"), &reached_end);
  EXPECT_EQ(s, absl::NotFoundError("no such host"));
  EXPECT_FALSE(reached_end);
  EXPECT_EQ(source.calls, 1);
}

TEST(ReturnIfError, GoesOnWhenOk) {
  Source source;
  bool reached_end = false;
  EXPECT_TRUE(ReturnIfError(source, absl::OkStatus(), &reached_end).ok());
  EXPECT_TRUE(reached_end);
  EXPECT_EQ(source.calls, 1);
}

// The error of a StatusOr, returned from a function that returns a StatusOr
// of another type.
absl::StatusOr<int> ReturnIfErrorOfStatusOr(absl::StatusOr<std::string> v) {
  FETCHD_RETURN_IF_ERROR(v);
  FETCHD_RETURN_IF_ERROR(absl::StatusOr<std::string>(std::move(v)));
  return 7;
}

TEST(ReturnIfError, TakesAStatusOr) {
  EXPECT_EQ(ReturnIfErrorOfStatusOr(absl::UnavailableError("down")).status(),
            absl::UnavailableError("down"));
  EXPECT_EQ(ReturnIfErrorOfStatusOr(std::string("up")).value(), 7);
}

// Declares a move-only value, assigns an existing variable, and uses the
// macro twice in one scope.
absl::StatusOr<std::string> AssignOrReturn(Source& source,
                                           absl::StatusOr<std::string> first,
                                           absl::StatusOr<std::string> second) {
  FETCHD_ASSIGN_OR_RETURN(std::unique_ptr<std::string> a,
                          source.Value(std::move(first)));
  std::unique_ptr<std::string> b;
  FETCHD_ASSIGN_OR_RETURN(b, source.Value(std::move(second)));
  return *a + *b;
}

TEST(AssignOrReturn, MovesTheValues) {
  Source source;
  EXPECT_EQ(
      AssignOrReturn(source, std::string("ab"), std::string("cd")).value(),
      "abcd");
  EXPECT_EQ(source.calls, 2);
}

TEST(AssignOrReturn, ReturnsTheFirstErrorOnce) {
  Source source;
  EXPECT_EQ(AssignOrReturn(source, absl::InvalidArgumentError("bad url"),
                           std::string("cd"))
                .status(),
            absl::InvalidArgumentError("bad url"));
  EXPECT_EQ(source.calls, 1);
}

TEST(AssignOrReturn, ReturnsTheSecondError) {
  Source source;
  EXPECT_EQ(AssignOrReturn(source, std::string("ab"),
                           absl::DeadlineExceededError("slow"))
                .status(),
            absl::DeadlineExceededError("slow"));
  EXPECT_EQ(source.calls, 2);
}

// From a function that returns absl::Status.
absl::Status AssignOrReturnToStatus(absl::StatusOr<int> v, int* out) {
  FETCHD_ASSIGN_OR_RETURN(*out, std::move(v));
  return absl::OkStatus();
}

TEST(AssignOrReturn, ReturnsIntoAStatus) {
  int out = 0;
  EXPECT_EQ(AssignOrReturnToStatus(absl::AbortedError("x"), &out),
            absl::AbortedError("x"));
  EXPECT_EQ(out, 0);
  EXPECT_TRUE(AssignOrReturnToStatus(42, &out).ok());
  EXPECT_EQ(out, 42);
}

}  // namespace
}  // namespace fetchd
