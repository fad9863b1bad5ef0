#include "client/fetchctl_download.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/byte_progress.h"
#include "client/fetchctl_messages.h"
#include "client/result_json.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {
namespace {

// Closes the output file (never stdout) when the download ends.
class Output {
 public:
  explicit Output(const std::string& path)
      : path_(path),
        file_(path == "-" ? stdout : std::fopen(path.c_str(), "wb")) {}
  ~Output() { (void)Close(); }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  bool is_open() const { return file_ != nullptr; }
  absl::Status Write(absl::string_view data) {
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
      return Failed("write");
    }
    return absl::OkStatus();
  }
  absl::Status Close() {
    if (file_ == nullptr) return absl::OkStatus();
    std::FILE* file = file_;
    file_ = nullptr;
    const int rc = file == stdout ? std::fflush(file) : std::fclose(file);
    return rc == 0 ? absl::OkStatus() : Failed("close");
  }
  absl::Status Failed(absl::string_view what) const {
    return absl::DataLossError(absl::StrCat("-o/--output: cannot ", what, " '",
                                            path_,
                                            "': ", std::strerror(errno)));
  }

 private:
  const std::string path_;
  std::FILE* file_;
};

void WriteStderr(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

int RunDownload(FetchClient& client, const FetchctlOptions& options,
                absl::Time deadline) {
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(options);
  if (!batch.ok() || batch->requests_size() != 1) {
    std::fprintf(stderr, "fetchctl: -o/--output needs exactly one URL\n");
    return kExitUsage;
  }
  Output output(options.output_path);
  if (!output.is_open()) {
    std::fprintf(stderr, "fetchctl: %s\n",
                 std::string(output.Failed("open").message()).c_str());
    return kExitUsage;
  }
  const bool show = options.progress != ProgressMode::kOff;
  const bool terminal = isatty(STDERR_FILENO) == 1;
  const absl::Time start = absl::Now();
  std::optional<ByteProgress> progress;
  uint64_t bytes = 0;
  // The whole batch, so every request option (batch defaults and batch
  // options such as -b's cookies) applies as it does without -o.
  absl::StatusOr<fetch::v1::FetchResult> result = client.FetchStreamed(
      *batch,
      [&](const fetch::v1::BodyHead& head) {
        if (!show) return;
        progress.emplace(head.has_content_length()
                             ? std::optional<uint64_t>(head.content_length())
                             : std::nullopt,
                         start, terminal);
      },
      [&](absl::string_view data) {
        if (absl::Status s = output.Write(data); !s.ok()) return s;
        bytes += data.size();
        if (progress.has_value()) {
          if (auto text = progress->Update(bytes, absl::Now())) {
            WriteStderr(*text);
          }
        }
        return absl::OkStatus();
      },
      deadline);
  const absl::Time end = absl::Now();
  if (progress.has_value()) WriteStderr(progress->Finish(bytes, end));
  const absl::Status closed = output.Close();
  if (!result.ok()) {
    const absl::Status& s = result.status();
    if (std::optional<std::string> usage = UsageErrorFromServer(s, options)) {
      return UsageError(*usage);
    }
    std::fprintf(stderr, "fetchctl: %s: %s\n",
                 absl::StatusCodeToString(s.code()).c_str(),
                 std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kDataLoss ? kExitUsage : kExitRpcError;
  }
  if (!closed.ok()) {
    std::fprintf(stderr, "fetchctl: %s\n",
                 std::string(closed.message()).c_str());
    return kExitUsage;
  }
  if (!options.quiet && options.output_path != "-") {
    absl::StatusOr<std::string> json =
        ResultJson(*result, /*include_body=*/false);
    if (json.ok()) {
      json->push_back('\n');
      std::fwrite(json->data(), 1, json->size(), stdout);
      std::fflush(stdout);
    }
  }
  const bool failed = result->error() != fetch::v1::ERROR_KIND_NONE;
  if (show || options.quiet) {
    const double seconds = absl::ToDoubleSeconds(end - start);
    std::fprintf(
        stderr, "fetchctl: %s %s to %s in %.2fs (%s/s)\n",
        failed ? "failed after" : "wrote", FormatBytes(bytes).c_str(),
        options.output_path == "-" ? "stdout" : options.output_path.c_str(),
        seconds,
        FormatBytes(seconds > 0 ? static_cast<uint64_t>(
                                      static_cast<double>(bytes) / seconds)
                                : bytes)
            .c_str());
  }
  if (failed) {
    std::fprintf(stderr, "fetchctl: %s: %s\n",
                 fetch::v1::ErrorKind_Name(result->error()).c_str(),
                 result->error_message().c_str());
    if (result->error() == fetch::v1::ERROR_KIND_BODY_TOO_LARGE) {
      const std::string hint = BodyTooLargeHint(*result, options);
      std::fwrite(hint.data(), 1, hint.size(), stderr);
    }
    return kExitFailedResults;
  }
  return kExitOk;
}

}  // namespace fetchd::client
