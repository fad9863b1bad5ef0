// fetchctl: the command-line client of fetchd (usage: FetchctlUsage(), or
// `fetchctl --help`).
//
// Output: one JSON FetchResult per line on stdout, flushed per line, unless
// --quiet. On stderr: an optional progress bar, with -v a block per result
// (VerboseSummary()), a summary line (with the progress bar or --quiet) and
// errors. `health` prints the serving status
// (SERVING, NOT_SERVING, ...) on stdout.
//
// Exit status: ExitCode and kExitCodeMeanings in fetchctl_options.h. When
// the call fails after some results arrived, those results are printed
// first, then the status and how many results arrived.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/fetch_client.h"
#include "client/fetchctl_download.h"
#include "client/fetchctl_messages.h"
#include "client/fetchctl_options.h"
#include "client/result_json.h"
#include "client/result_summary.h"
#include "fetch/v1/fetch.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fetchd::client {
namespace {

double PerSecond(int64_t count, absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

// "[=====>    ] 1234/5000  812 req/s  3 errors" on stderr, redrawn in place.
// Single-threaded.
class ProgressBar {
 public:
  ProgressBar(int64_t total, absl::Time start) : total_(total), start_(start) {}

  // The total so far, for input that is still being read.
  void set_total(int64_t total) { total_ = total; }

  // Redraws unless the last redraw was less than kRedrawInterval ago.
  void Update(int64_t done, int64_t errors, absl::Time now) {
    if (now - last_draw_ < kRedrawInterval) {
      return;
    }
    Draw(done, errors, now);
  }

  // Draws the final state and ends the line.
  void Finish(int64_t done, int64_t errors, absl::Time now) {
    Draw(done, errors, now);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  static constexpr absl::Duration kRedrawInterval = absl::Milliseconds(100);
  static constexpr int64_t kWidth = 30;

  void Draw(int64_t done, int64_t errors, absl::Time now) {
    const int64_t filled =
        total_ > 0 ? kWidth * std::min(done, total_) / total_ : kWidth;
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) {
      bar.push_back('>');
      bar.append(static_cast<size_t>(kWidth - filled - 1), ' ');
    }
    std::string line =
        absl::StrFormat("[%s] %d/%d  %.0f req/s  %d errors", bar, done, total_,
                        PerSecond(done, now - start_), errors);
    // Blank out what is left of a longer previous line.
    const size_t width = line.size();
    if (width < last_width_) {
      line.append(last_width_ - width, ' ');
    }
    last_width_ = width;
    std::fprintf(stderr, "\r%s", line.c_str());
    std::fflush(stderr);
    last_draw_ = now;
  }

  int64_t total_;
  const absl::Time start_;
  absl::Time last_draw_ = absl::InfinitePast();
  size_t last_width_ = 0;
};

// Writes `result` as one line of JSON on stdout and flushes it.
void PrintResult(const fetch::v1::FetchResult& result, bool include_body) {
  absl::StatusOr<std::string> json = ResultJson(result, include_body);
  if (!json.ok()) {
    std::fprintf(stderr, "fetchctl: %s\n",
                 std::string(json.status().message()).c_str());
    return;
  }
  json->push_back('\n');
  std::fwrite(json->data(), 1, json->size(), stdout);
  std::fflush(stdout);
}

// The status of a call that failed: in the user's terms when fetchd
// rejected a value a flag gave (exit 2), else the RPC error (exit 3).
int CallError(const absl::Status& status, const FetchctlOptions& options) {
  if (std::optional<std::string> usage =
          UsageErrorFromServer(status, options)) {
    return UsageError(*usage);
  }
  return RpcError(status);
}

ClientOptions ClientOptionsFrom(const FetchctlOptions& options) {
  ClientOptions client;
  const ServerConnection& c = options.connection;
  client.tls = c.tls;
  client.ca_cert_pem = c.ca_cert_pem;
  client.client_cert_pem = c.client_cert_pem;
  client.client_key_pem = c.client_key_pem;
  client.tls_server_name = c.tls_server_name;
  client.bearer_token = c.bearer_token;
  return client;
}

absl::Time DeadlineFrom(absl::Time start, const FetchctlOptions& options) {
  return options.rpc_deadline == absl::InfiniteDuration()
             ? absl::InfiniteFuture()
             : start + options.rpc_deadline;
}

// `fetchctl health`: Health/Check of FetchService.
int RunHealth(const FetchctlOptions& options) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<FetchClient>> client = FetchClient::Connect(
      options.server, ClientOptionsFrom(options), DeadlineFrom(start, options));
  if (!client.ok()) {
    return RpcError(client.status());
  }
  const absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
      status = (*client)->CheckHealth(kFetchServiceHealthName,
                                      DeadlineFrom(start, options));
  if (!status.ok()) {
    return RpcError(status.status());
  }
  std::printf("%s\n",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status)
                  .c_str());
  return *status == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitFailedResults;
}

std::string WsJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(message, &json, print);
  return json;
}

// `fetchctl ws URL`: a WebSocket through fetchd. stdin is read on its own
// thread; the process exits (std::_Exit) once the stream has ended, without
// waiting for that thread's blocked read.
int RunWs(const FetchctlOptions& options) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<FetchClient>> client = FetchClient::Connect(
      options.server, ClientOptionsFrom(options), DeadlineFrom(start, options));
  if (!client.ok()) return RpcError(client.status());
  fetch::v1::WsOpen open;
  open.set_url(options.urls.front());
  *open.mutable_headers() = options.batch_template.defaults().headers();
  absl::StatusOr<std::unique_ptr<WebSocketStream>> opened =
      (*client)->OpenWebSocket(open, DeadlineFrom(start, options));
  if (!opened.ok()) return RpcError(opened.status());
  WebSocketStream& ws = **opened;
  const bool interactive = isatty(STDIN_FILENO) == 1;
  const fetch::v1::WsHandshake& handshake = ws.handshake();
  if (interactive) {
    if (handshake.ok()) {
      std::fprintf(stderr,
                   "connected to %s (HTTP %u%s%s); type lines to send\n",
                   open.url().c_str(), handshake.status(),
                   handshake.subprotocol().empty() ? "" : ", subprotocol ",
                   handshake.subprotocol().c_str());
    }
  } else {
    fetch::v1::WsServerMessage m;
    *m.mutable_handshake() = handshake;
    std::printf("%s\n", WsJson(m).c_str());
    std::fflush(stdout);
  }
  if (!handshake.ok()) {
    std::fprintf(stderr, "fetchctl: handshake failed: %s: %s\n",
                 fetch::v1::ErrorKind_Name(handshake.error()).c_str(),
                 handshake.error_message().c_str());
    (void)ws.Finish();
    return kExitFailedResults;
  }

  absl::Mutex mu;
  bool ended = false;  // guarded by mu: no more sends
  std::thread input([&] {
    std::string line;
    int line_number = 0;
    bool closed = false;
    while (std::getline(std::cin, line)) {
      ++line_number;
      fetch::v1::WsClientMessage m;
      if (interactive) {
        m.mutable_frame()->set_text(line);
      } else {
        if (line.empty()) continue;
        const auto parsed =
            google::protobuf::util::JsonStringToMessage(line, &m);
        if (!parsed.ok()) {
          std::fprintf(stderr, "fetchctl: stdin line %d: %s\n", line_number,
                       std::string(parsed.message()).c_str());
          continue;
        }
      }
      absl::MutexLock lock(&mu);
      if (ended) return;
      if (m.has_close()) closed = true;
      if (!ws.Send(m).ok()) return;
    }
    absl::MutexLock lock(&mu);
    if (ended) return;
    if (!closed) (void)ws.Close(1000, "");
    ws.WritesDone();
  });
  input.detach();

  fetch::v1::WsServerMessage m;
  int exit_code = kExitOk;
  while (ws.Read(&m)) {
    if (m.has_close() && m.close().error() != fetch::v1::ERROR_KIND_NONE) {
      exit_code = kExitFailedResults;
    }
    if (!interactive) {
      std::printf("%s\n", WsJson(m).c_str());
    } else if (m.has_frame() && m.frame().has_binary()) {
      std::printf("< [binary %zu bytes]\n", m.frame().binary().size());
    } else if (m.has_frame()) {
      std::printf("< %s\n", m.frame().text().c_str());
    } else if (m.has_close()) {
      std::fprintf(stderr, "closed: %u %s (by %s)%s%s\n", m.close().code(),
                   m.close().reason().c_str(), m.close().initiator().c_str(),
                   m.close().error_message().empty() ? "" : ": ",
                   m.close().error_message().c_str());
    }
    std::fflush(stdout);
  }
  absl::Status status;
  {
    absl::MutexLock lock(&mu);
    ended = true;
    status = ws.Finish();
  }
  if (!status.ok()) exit_code = RpcError(status);
  std::fflush(nullptr);
  std::_Exit(exit_code);
}

// Prints the results of a call as they come (JSON lines, -v summaries, the
// progress bar) and keeps the counts for the summary and the exit status.
class ResultPrinter {
 public:
  ResultPrinter(const FetchctlOptions& options, int64_t total, absl::Time start)
      : options_(options), start_(start) {
    const bool progress =
        options.progress == ProgressMode::kOn ||
        (options.progress == ProgressMode::kAuto && isatty(STDERR_FILENO) == 1);
    if (progress) {
      bar_.emplace(total, start);
      bar_->Update(0, 0, start);
    }
  }

  void OnEvent(const fetch::v1::FetchEvent& event, int64_t total) {
    for (const fetch::v1::FetchResult& result : event.results()) {
      ++received_;
      if (result.error() != fetch::v1::ERROR_KIND_NONE) {
        ++failed_;
      }
      if (result.error() == fetch::v1::ERROR_KIND_BODY_TOO_LARGE &&
          !too_large_.has_value()) {
        too_large_.emplace(result);
        too_large_->clear_body();
      }
      if (!options_.quiet) {
        PrintResult(result, options_.include_body);
      }
      if (options_.verbose) {
        const std::string summary = VerboseSummary(result);
        std::fwrite(summary.data(), 1, summary.size(), stderr);
        std::fflush(stderr);
      }
    }
    if (bar_.has_value()) {
      bar_->set_total(total);
      bar_->Update(received_, failed_, absl::Now());
    }
  }

  // The call ended with `status` after `total` requests were sent: prints
  // the end of the output and returns the exit status. `not_read`: fetchd
  // read no further (fail_fast), so requests without a result are expected.
  int Finish(const absl::Status& status, int64_t total, bool not_read) {
    const absl::Time end = absl::Now();
    if (bar_.has_value()) {
      bar_->set_total(total);
      bar_->Finish(received_, failed_, end);
    }
    if (too_large_.has_value()) {
      const std::string hint = BodyTooLargeHint(*too_large_, options_);
      std::fwrite(hint.data(), 1, hint.size(), stderr);
    }
    if (!status.ok() && !not_read) {
      // Every result that arrived has been printed; say how many.
      const int code = CallError(status, options_);
      if (code == kExitRpcError) {
        std::fprintf(stderr, "fetchctl: %lld of %lld results received\n",
                     static_cast<long long>(received_),
                     static_cast<long long>(total));
      }
      return code;
    }
    if (not_read) {
      std::fprintf(stderr, "fetchctl: %s; %lld of %lld requests were not run\n",
                   std::string(status.message()).c_str(),
                   static_cast<long long>(total - received_),
                   static_cast<long long>(total));
    } else if (received_ != total) {
      std::fprintf(
          stderr, "fetchctl: fetchd sent %lld results for %lld requests\n",
          static_cast<long long>(received_), static_cast<long long>(total));
      return kExitRpcError;
    }
    if (bar_.has_value() || options_.quiet) {
      std::fprintf(stderr,
                   "fetchctl: %lld result%s in %.2fs (%.0f req/s): %lld ok, "
                   "%lld failed\n",
                   static_cast<long long>(received_), received_ == 1 ? "" : "s",
                   absl::ToDoubleSeconds(end - start_),
                   PerSecond(received_, end - start_),
                   static_cast<long long>(received_ - failed_),
                   static_cast<long long>(failed_));
    }
    return failed_ > 0 || not_read ? kExitFailedResults : kExitOk;
  }

 private:
  const FetchctlOptions& options_;
  const absl::Time start_;
  int64_t received_ = 0;
  int64_t failed_ = 0;
  // The first BODY_TOO_LARGE result, for one hint after the results.
  std::optional<fetch::v1::FetchResult> too_large_;
  std::optional<ProgressBar> bar_;
};

// Most requests per FetchStream message: input read faster than that goes
// out in messages of this many; slower input goes out line by line.
constexpr size_t kMaxRequestsPerMessage = 256;

// `batch`: the input, read as it comes, sent through FetchStream; results
// are printed as they arrive, before the input ends. Never returns when
// the call ends while the input is still being read (the reading thread
// can't be stopped): exits the process with its status instead.
int RunStream(FetchClient& client, const FetchctlOptions& options,
              absl::Time start, absl::Time deadline) {
  const std::string input_name = BatchInputName(options);
  std::ifstream file;
  absl::StatusOr<std::istream*> input = OpenBatchInput(options, file);
  if (!input.ok()) return UsageError(input.status().message());
  BatchInputReader reader(**input);
  std::unique_ptr<FetchStreamCall> call =
      client.OpenFetchStream(options.batch_template, deadline);

  // The sender reads the input and sends; the calling thread reads results.
  std::atomic<int64_t> sent{0};
  absl::Mutex mu;
  bool call_over = false;  // guarded by mu: no more sends
  absl::Status input_error;
  absl::Notification input_done;
  std::thread sender([&] {
    std::vector<fetch::v1::FetchRequest> pending;
    const auto send = [&] {
      absl::MutexLock lock(&mu);
      if (call_over) return false;
      // Counted first: a result may arrive before Send() returns.
      sent.fetch_add(static_cast<int64_t>(pending.size()));
      const bool ok = call->Send(std::move(pending)).ok();
      pending.clear();
      return ok;
    };
    while (true) {
      absl::StatusOr<std::optional<fetch::v1::FetchRequest>> next =
          reader.Next();
      if (!next.ok()) {
        input_error = absl::InvalidArgumentError(
            absl::StrCat(input_name, ": ", next.status().message()));
        break;
      }
      if (!next->has_value()) break;
      pending.push_back(**std::move(next));
      if ((pending.size() >= kMaxRequestsPerMessage || !reader.Ready()) &&
          !send()) {
        break;
      }
    }
    // What was read before a bad line still goes.
    if (!pending.empty()) send();
    if (input_error.ok() && sent.load() == 0) {
      input_error =
          absl::InvalidArgumentError(absl::StrCat(input_name, ": no requests"));
    }
    {
      absl::MutexLock lock(&mu);
      if (!call_over) call->WritesDone();
    }
    input_done.Notify();
  });

  ResultPrinter printer(options, 0, start);
  fetch::v1::FetchEvent event;
  while (call->Read(&event)) printer.OnEvent(event, sent.load());
  {
    absl::MutexLock lock(&mu);
    call_over = true;
  }
  const absl::Status status = call->Finish();
  const bool read_all = input_done.HasBeenNotified();
  int code = 0;
  if (read_all && !input_error.ok()) {
    // What was sent before the bad line has its results printed.
    printer.Finish(absl::OkStatus(), sent.load(), /*not_read=*/false);
    code = UsageError(input_error.message());
  } else {
    const bool not_read = status.code() == absl::StatusCode::kAborted &&
                          options.batch_template.fail_fast();
    code = printer.Finish(status, sent.load(), not_read);
  }
  if (read_all) {
    sender.join();
    return code;
  }
  std::fflush(nullptr);
  std::_Exit(code);
}

int Run(const FetchctlOptions& options) {
  if (options.command == Command::kHealth) {
    return RunHealth(options);
  }
  if (options.command == Command::kWs) {
    return RunWs(options);
  }
  // `get` sends its URLs as one FetchBatch; `batch` streams its input.
  std::optional<fetch::v1::BatchRequest> batch;
  if (options.command != Command::kBatch) {
    absl::StatusOr<fetch::v1::BatchRequest> built = BuildBatchRequest(options);
    if (!built.ok()) {
      return UsageError(built.status().message());
    }
    batch = *std::move(built);
  }

  // --deadline counts from here: connecting to fetchd is part of the call.
  const absl::Time start = absl::Now();
  const absl::Time deadline = DeadlineFrom(start, options);
  absl::StatusOr<std::unique_ptr<FetchClient>> client = FetchClient::Connect(
      options.server, ClientOptionsFrom(options), deadline);
  if (!client.ok()) {
    return RpcError(client.status());
  }
  if (!options.output_path.empty()) {
    return RunDownload(**client, options, deadline);
  }
  if (!batch.has_value()) {
    return RunStream(**client, options, start, deadline);
  }
  const int64_t total = batch->requests_size();
  ResultPrinter printer(options, total, start);
  const absl::Status status = (*client)->FetchBatch(
      *batch,
      [&](const fetch::v1::FetchEvent& event) {
        printer.OnEvent(event, total);
      },
      deadline);
  return printer.Finish(status, total, /*not_read=*/false);
}

}  // namespace
}  // namespace fetchd::client

int main(int argc, char** argv) {
  using fetchd::client::Command;
  // Batch input is read with std::cin only; stdout and stderr use stdio.
  std::ios::sync_with_stdio(false);

  // Still single-threaded: nothing can call setenv() concurrently.
  const char* env_server =
      std::getenv("FETCHD_SERVER");  // NOLINT(concurrency-mt-unsafe)
  const char* env_token =
      std::getenv("FETCHD_TOKEN");  // NOLINT(concurrency-mt-unsafe)
  const absl::StatusOr<fetchd::client::FetchctlOptions> options =
      fetchd::client::ParseFetchctlArgs(
          std::vector<std::string>(argv, argv + argc),
          env_server == nullptr ? "" : env_server,
          env_token == nullptr ? "" : env_token);
  if (!options.ok()) {
    return fetchd::client::UsageError(options.status().message());
  }
  if (options->command == Command::kHelp ||
      options->command == Command::kVersion) {
    const std::string text = options->command == Command::kHelp
                                 ? fetchd::client::FetchctlUsage()
                                 : fetchd::client::FetchctlVersion();
    std::fwrite(text.data(), 1, text.size(), stdout);
    return fetchd::client::kExitOk;
  }
  return fetchd::client::Run(*options);
}
