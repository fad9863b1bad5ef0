#include "tests/api/fake_fetcher.h"

#include <utility>

#include "gtest/gtest.h"

namespace fetchd::testing {
namespace {

class FakeCookieStore final : public core::CookieStore {};

// The message a worker gives a job its batch's cancellation ends.
std::string CancelMessage(fetch::v1::ErrorKind why, bool running) {
  if (why == fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED) {
    return running ? "the call's deadline came while this request was running"
                   : "the call's deadline came before this request started";
  }
  return running ? "batch cancelled while this request was running"
                 : "batch cancelled before this request finished";
}

}  // namespace

void FakeFetcher::Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs) {
  absl::MutexLock lock(&mu_);
  for (auto& job : jobs) entries_.push_back(Entry{std::move(job)});
  DispatchLocked();
}

void FakeFetcher::CancelBatch(const std::shared_ptr<core::Batch>& batch) {
  EXPECT_TRUE(batch->cancelled()) << "CancelBatch() before Batch::Cancel()";
  absl::MutexLock lock(&mu_);
  ++cancel_requests_;
}

void FakeFetcher::Wake(uint64_t workers) {
  (void)workers;
  absl::MutexLock lock(&mu_);
  ++wakes_;
  DispatchLocked();
}

core::FetcherStats FakeFetcher::stats() const {
  absl::MutexLock lock(&mu_);
  core::FetcherStats stats;
  for (const Entry& e : entries_) {
    if (e.state == State::kQueued) ++stats.queued;
    if (e.state == State::kRunning) ++stats.in_flight;
  }
  return stats;
}

absl::StatusOr<std::shared_ptr<core::CookieStore>> FakeFetcher::NewCookieStore(
    const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
    absl::string_view field) {
  (void)initial;
  (void)field;
  return std::make_shared<FakeCookieStore>();
}

size_t FakeFetcher::submitted() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

size_t FakeFetcher::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

size_t FakeFetcher::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

int FakeFetcher::cancel_requests() const {
  absl::MutexLock lock(&mu_);
  return cancel_requests_;
}

int FakeFetcher::wakes() const {
  absl::MutexLock lock(&mu_);
  return wakes_;
}

template <typename Pred>
bool FakeFetcher::Await(Pred reached) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&reached), kWait);
}

bool FakeFetcher::AwaitSubmitted(size_t n) {
  return Await([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return entries_.size() >= n;
  });
}

bool FakeFetcher::AwaitStarted(size_t n) {
  return Await(
      [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_ >= n; });
}

bool FakeFetcher::AwaitCancelRequests(int n) {
  return Await([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancel_requests_ >= n;
  });
}

FakeFetcher::State FakeFetcher::state(size_t job) const {
  absl::MutexLock lock(&mu_);
  return entries_.at(job).state;
}

const core::FetchJob& FakeFetcher::job(size_t job) const {
  absl::MutexLock lock(&mu_);
  return *entries_.at(job).job;
}

void FakeFetcher::DispatchLocked() {
  for (Entry& e : entries_) {
    if (e.state != State::kQueued || e.job->batch->cancelled()) continue;
    if (e.job->batch->TryAcquire(e.job->index, /*waiter=*/0)) {
      e.state = State::kRunning;
      ++started_;
    }
  }
}

std::shared_ptr<core::Batch> FakeFetcher::TakeRunning(size_t job) {
  absl::MutexLock lock(&mu_);
  if (job >= entries_.size() || entries_[job].state != State::kRunning) {
    ADD_FAILURE() << "job " << job << " is not running";
    return nullptr;
  }
  entries_[job].state = State::kDone;
  ++done_;
  return std::move(entries_[job].job->batch);
}

void FakeFetcher::Finish(size_t job, fetch::v1::FetchResult result) {
  {
    absl::MutexLock lock(&mu_);
    if (job < entries_.size()) {
      const core::FetchJob& j = *entries_[job].job;
      result.set_id(j.id);
      result.set_index(j.index);
      if (result.final_url().empty()) result.set_final_url(j.url);
    }
  }
  const std::shared_ptr<core::Batch> batch = TakeRunning(job);
  if (batch == nullptr) return;
  // As a worker: the attempt's slot goes back when the transfer is
  // detached, the window slot with the result.
  batch->ReleaseConcurrency();
  batch->Deliver(std::move(result), /*holds_window=*/true);
  batch->Flush();
  absl::MutexLock lock(&mu_);
  DispatchLocked();
}

void FakeFetcher::FinishOk(size_t job, const std::string& body) {
  fetch::v1::FetchResult result;
  result.set_status(200);
  result.set_body(body);
  result.set_attempts(1);
  Finish(job, std::move(result));
}

void FakeFetcher::SendHead(size_t job, fetch::v1::BodyHead head) {
  std::shared_ptr<core::Batch> batch;
  {
    absl::MutexLock lock(&mu_);
    ASSERT_LT(job, entries_.size());
    ASSERT_EQ(entries_[job].state, State::kRunning) << "job " << job;
    batch = entries_[job].job->batch;
    head.set_index(entries_[job].job->index);
  }
  batch->SendHead(std::move(head));
}

void FakeFetcher::SendChunk(size_t job, fetch::v1::BodyChunk chunk) {
  std::shared_ptr<core::Batch> batch;
  {
    absl::MutexLock lock(&mu_);
    ASSERT_LT(job, entries_.size());
    ASSERT_EQ(entries_[job].state, State::kRunning) << "job " << job;
    batch = entries_[job].job->batch;
    chunk.set_index(entries_[job].job->index);
  }
  batch->SendChunk(std::move(chunk));
}

size_t FakeFetcher::RunCancellations() {
  struct Ending {
    std::shared_ptr<core::Batch> batch;
    fetch::v1::FetchResult result;
    bool running = false;
  };
  std::vector<Ending> ending;
  {
    absl::MutexLock lock(&mu_);
    for (Entry& e : entries_) {
      if (e.state == State::kDone || !e.job->batch->cancelled()) continue;
      Ending end;
      end.running = e.state == State::kRunning;
      const fetch::v1::ErrorKind why = e.job->batch->cancel_error();
      end.result.set_id(e.job->id);
      end.result.set_index(e.job->index);
      end.result.set_final_url(e.job->url);
      end.result.set_error(why);
      end.result.set_error_message(CancelMessage(why, end.running));
      end.batch = std::move(e.job->batch);
      e.state = State::kDone;
      ++done_;
      ending.push_back(std::move(end));
    }
  }
  for (Ending& end : ending) {
    if (end.running) end.batch->ReleaseConcurrency();
    end.batch->Deliver(std::move(end.result), /*holds_window=*/end.running);
  }
  for (size_t i = 0; i < ending.size(); ++i) {
    if (i == 0 || ending[i].batch != ending[i - 1].batch) {
      ending[i].batch->Flush();
    }
  }
  return ending.size();
}

}  // namespace fetchd::testing
