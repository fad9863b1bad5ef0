// LogCapture: replaces spdlog's default logger by one that records every
// message, for the lifetime of the object. Install it before any thread
// logs, destroy it after they stop (spdlog's default logger is not meant to
// be swapped while in use).
#ifndef FETCHD_TESTS_METRICS_LOG_CAPTURE_H_
#define FETCHD_TESTS_METRICS_LOG_CAPTURE_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace fetchd::testing {

class LogCapture {
 public:
  LogCapture()
      : previous_(spdlog::default_logger()), sink_(std::make_shared<Sink>()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The messages logged so far (payloads, without level or time).
  std::vector<std::string> lines() const { return sink_->lines(); }

 private:
  class Sink final : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::vector<std::string> lines() const {
      absl::MutexLock lock(&mu_);
      return lines_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(msg.payload.data(), msg.payload.size());
    }
    void flush_() override {}

   private:
    mutable absl::Mutex mu_;
    std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  };

  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<Sink> sink_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_METRICS_LOG_CAPTURE_H_
