#include "tests/testing/test_http_server.h"

#include <arpa/inet.h>
#include <brotli/encode.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"

namespace fetchd::testing {
namespace {

constexpr char kBinaryType[] = "application/octet-stream";
constexpr char kTextType[] = "text/plain";
constexpr int64_t kMaxWaitMs = int64_t{3600} * 1000;
// Idle keep-alive connections pin a worker, and httplib's Stop() waits for
// them; a short idle timeout bounds that wait (see Stop() in the header).
constexpr time_t kKeepAliveTimeoutSeconds = 1;
// Pending connections the listening socket queues (see Start()).
constexpr int kListenBacklog = 4096;
// Like nginx's default, rather than httplib's 5, so that clients reuse
// connections as they would against a real server.
constexpr size_t kKeepAliveMaxRequests = 1000;

// Reads the integer query parameter `name`; `fallback` if it is absent.
// Returns false if it is present but not an integer in [min, max].
bool IntParam(const httplib::Request& req, const char* name, int64_t fallback,
              int64_t min, int64_t max, int64_t* value) {
  if (!req.has_param(name)) {
    *value = fallback;
    return true;
  }
  return absl::SimpleAtoi(req.get_param_value(name), value) && *value >= min &&
         *value <= max;
}

bool ParseStatusCode(absl::string_view text, int* code) {
  return absl::SimpleAtoi(text, code) && *code >= 200 && *code <= 599;
}

bool StatusHasBody(int code) { return code != 204 && code != 304; }

// Makes `body` the response body, with Content-Length. `request_scope` is
// kept alive until httplib has finished writing the response (or failed
// to), so the request counts as in flight while its body is sent.
void SetBody(httplib::Response& res, std::string body, const char* type,
             std::shared_ptr<const void> request_scope) {
  if (body.empty()) {
    // Nothing to stream, so the request ends with its handler; httplib sends
    // "Content-Length: 0".
    return;
  }
  auto shared_body = std::make_shared<const std::string>(std::move(body));
  const size_t size = shared_body->size();
  res.set_content_provider(
      size, type,
      [shared_body](size_t offset, size_t length, httplib::DataSink& sink) {
        return sink.write(shared_body->data() + offset, length);
      },
      [request_scope = std::move(request_scope)](bool /*success*/) {});
}

void SetStatusBody(httplib::Response& res, int code,
                   std::shared_ptr<const void> request_scope) {
  res.status = code;
  if (StatusHasBody(code)) {
    SetBody(res, absl::StrCat("status ", code), kTextType,
            std::move(request_scope));
  }
}

void BadRequest(httplib::Response& res, absl::string_view what,
                std::shared_ptr<const void> request_scope) {
  res.status = 400;
  SetBody(res, absl::StrCat("bad ", what), kTextType, std::move(request_scope));
}

// Whether `fd` is an internet socket whose local address (or peer address,
// if `peer`) is `ip`:`port`, with `ip` written as httplib writes it.
bool SocketEndpointIs(int fd, bool peer, absl::string_view ip, int port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  auto* generic = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? getpeername(fd, generic, &len)
            : getsockname(fd, generic, &len)) != 0) {
    return false;
  }
  char text[INET6_ADDRSTRLEN] = {};
  int actual_port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) == nullptr) {
      return false;
    }
    actual_port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) == nullptr) {
      return false;
    }
    actual_port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  return actual_port == port && ip == text;
}

// Returns the socket that carries `req`, or -1 if it cannot be found.
//
// httplib 0.11 does not expose the socket, and the only hang-up signal it
// gives a body provider is a failed write (DataSink::is_writable() stays true
// after the peer closes). /stall writes nothing while it stalls and /drip
// should notice between writes, so they find the socket and poll it for the
// hang-up instead. This is safe while
// a handler or provider for `req` runs: httplib keeps the socket open until
// they return, and no other socket in the process has the same local and
// peer addresses (a client socket in this process has them swapped).
int FindConnectionFd(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return -1;
  }
  int found = -1;
  // readdir() is safe here: this thread owns the DIR stream.
  while (const dirent* entry = readdir(dir)) {  // NOLINT(concurrency-mt-unsafe)
    int fd = -1;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dirfd(dir)) {
      continue;
    }
    if (SocketEndpointIs(fd, /*peer=*/false, req.local_addr, req.local_port) &&
        SocketEndpointIs(fd, /*peer=*/true, req.remote_addr, req.remote_port)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// A gzip member whose content is `n` zero bytes: a few kB per 10 MiB.
std::string GzipOfZeros(size_t n) {
  z_stream z{};
  // 15 window bits + 16: a gzip header instead of zlib's.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  static const std::string* const kZeros = new std::string(1 << 20, '\0');
  std::string out;
  char buf[64 * 1024];
  size_t left = n;
  int flush = Z_NO_FLUSH;
  do {
    if (z.avail_in == 0 && left > 0) {
      const size_t chunk = std::min(left, kZeros->size());
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(kZeros->data()));
      z.avail_in = static_cast<uInt>(chunk);
      left -= chunk;
    }
    flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    deflate(&z, flush);
    out.append(buf, sizeof(buf) - z.avail_out);
  } while (!(flush == Z_FINISH && z.avail_out != 0));
  deflateEnd(&z);
  return out;
}

// `n` bytes of TestBodyPattern (or zeros), fed to `sink` in blocks of at
// most 1 MiB so that a large body is never whole in memory; the last call
// has `last` set.
void FeedBody(size_t n, bool zeros,
              const std::function<void(const char*, size_t, bool)>& sink) {
  static const std::string* const kZeros = new std::string(1 << 20, '\0');
  // A whole number of 26-byte periods, so that every block starts at 'a'.
  static const std::string* const kPattern =
      new std::string(TestBodyPattern(((1 << 20) / 26) * 26));
  const std::string& block = zeros ? *kZeros : *kPattern;
  size_t left = n;
  do {
    const size_t take = std::min(left, block.size());
    left -= take;
    sink(block.data(), take, left == 0);
  } while (left > 0);
}

// `n` bytes of TestBodyPattern (or zeros), compressed as the HTTP content
// coding `encoding` ("gzip", "deflate" (zlib format), "br" or "zstd"); ""
// for an unknown coding or a compressor failure.
std::string Compress(const std::string& encoding, size_t n, bool zeros) {
  std::string out;
  bool ok = true;
  if (encoding == "gzip" || encoding == "deflate") {
    z_stream z{};
    // 15 window bits + 16: a gzip header instead of zlib's.
    if (deflateInit2(&z, 6, Z_DEFLATED, encoding == "gzip" ? 15 + 16 : 15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      return "";
    }
    char buf[64 * 1024];
    FeedBody(n, zeros, [&](const char* data, size_t size, bool last) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
      z.avail_in = static_cast<uInt>(size);
      const int flush = last ? Z_FINISH : Z_NO_FLUSH;
      int rc = Z_OK;
      do {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof(buf);
        rc = deflate(&z, flush);
        if (rc == Z_STREAM_ERROR) ok = false;
        out.append(buf, sizeof(buf) - z.avail_out);
      } while (ok && (z.avail_out == 0 || (last && rc != Z_STREAM_END)));
    });
    deflateEnd(&z);
  } else if (encoding == "br") {
    BrotliEncoderState* br =
        BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
    if (br == nullptr) return "";
    BrotliEncoderSetParameter(br, BROTLI_PARAM_QUALITY, 5);
    FeedBody(n, zeros, [&](const char* data, size_t size, bool last) {
      size_t avail_in = size;
      const auto* next_in = reinterpret_cast<const uint8_t*>(data);
      const BrotliEncoderOperation op =
          last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
      while (ok && (avail_in > 0 || BrotliEncoderHasMoreOutput(br) ||
                    (last && !BrotliEncoderIsFinished(br)))) {
        size_t avail_out = 0;
        if (!BrotliEncoderCompressStream(br, op, &avail_in, &next_in,
                                         &avail_out, nullptr, nullptr)) {
          ok = false;
          break;
        }
        size_t size_out = 0;
        const uint8_t* produced = BrotliEncoderTakeOutput(br, &size_out);
        out.append(reinterpret_cast<const char*>(produced), size_out);
      }
    });
    BrotliEncoderDestroyInstance(br);
  } else if (encoding == "zstd") {
    ZSTD_CCtx* zs = ZSTD_createCCtx();
    if (zs == nullptr) return "";
    std::string buf(ZSTD_CStreamOutSize(), '\0');
    FeedBody(n, zeros, [&](const char* data, size_t size, bool last) {
      ZSTD_inBuffer in{data, size, 0};
      const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
      size_t remaining = 0;
      do {
        ZSTD_outBuffer zout{buf.data(), buf.size(), 0};
        remaining = ZSTD_compressStream2(zs, &zout, &in, mode);
        if (ZSTD_isError(remaining)) {
          ok = false;
          break;
        }
        out.append(buf.data(), zout.pos);
      } while (last ? remaining != 0 : in.pos < in.size);
    });
    ZSTD_freeCCtx(zs);
  } else {
    return "";
  }
  return ok ? out : "";
}

}  // namespace

std::string TestBodyPattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + i % 26);
  return out;
}

// ---------------------------------------------------------------------------
// ConcurrencyTracker

void ConcurrencyTracker::Enter() {
  absl::MutexLock lock(&mu_);
  ++current_;
  max_ = std::max(max_, current_);
}

void ConcurrencyTracker::Leave() {
  absl::MutexLock lock(&mu_);
  --current_;
}

int ConcurrencyTracker::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

int ConcurrencyTracker::max() const {
  absl::MutexLock lock(&mu_);
  return max_;
}

void ConcurrencyTracker::Reset() {
  absl::MutexLock lock(&mu_);
  max_ = current_;
}

bool ConcurrencyTracker::AwaitCurrent(int n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, n] {
    mu_.AssertReaderHeld();
    return current_ == n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

// ---------------------------------------------------------------------------
// TestHttpServer::Impl

class TestHttpServer::Impl {
 public:
  explicit Impl(TestHttpServerOptions options);
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl();

  absl::Status Start();
  void Stop();

  int port() const { return port_.load(); }
  const std::string& host() const { return options_.host; }
  ConcurrencyTracker& tracker() { return tracker_; }
  int RequestCount(absl::string_view path, absl::string_view method) const;
  std::vector<absl::Time> Arrivals(absl::string_view path) const {
    absl::MutexLock lock(&mu_);
    const auto it = arrivals_.find(path);
    return it == arrivals_.end() ? std::vector<absl::Time>() : it->second;
  }
  int TotalRequests() const;
  int ActiveStreams() const;
  bool WaitForNoActiveStreams(absl::Duration timeout);
  absl::Time LastStreamEnd() const;

 private:
  class RequestScope;
  using ScopePtr = std::shared_ptr<RequestScope>;
  using Handler = std::function<void(const httplib::Request&,
                                     httplib::Response&, ScopePtr)>;
  enum class StreamEvent { kDeadline, kStopping, kClientGone };

  void AddRoutes();
  // Serves `pattern` (a regex over the path) with `handler` for every method.
  void AddRoute(const std::string& pattern, Handler handler);
  void CountRequest(const httplib::Request& req);

  void HandleBytes(const httplib::Request& req, httplib::Response& res,
                   ScopePtr scope);
  void HandleStatus(const httplib::Request& req, httplib::Response& res,
                    ScopePtr scope);
  void HandleSequence(const httplib::Request& req, httplib::Response& res,
                      ScopePtr scope);
  void HandleDelay(const httplib::Request& req, httplib::Response& res,
                   ScopePtr scope);
  void HandleStall(const httplib::Request& req, httplib::Response& res,
                   ScopePtr scope);
  void HandleDrip(const httplib::Request& req, httplib::Response& res,
                  ScopePtr scope);
  static void HandleRedirect(const httplib::Request& req,
                             httplib::Response& res, ScopePtr scope);
  static void HandleRequestHeaders(const httplib::Request& req,
                                   httplib::Response& res, ScopePtr scope);
  static void HandleGzipBomb(const httplib::Request& req,
                             httplib::Response& res, ScopePtr scope);
  static void HandleBigHeaders(const httplib::Request& req,
                               httplib::Response& res, ScopePtr scope);
  static void HandleSetCookie(const httplib::Request& req,
                              httplib::Response& res, ScopePtr scope);
  static void HandleEncoded(const httplib::Request& req, httplib::Response& res,
                            ScopePtr scope);
  static void HandleEcho(const httplib::Request& req, httplib::Response& res,
                         ScopePtr scope);

  // Blocks until `deadline`, Stop(), or the peer of `conn_fd` hanging up
  // (not watched if `conn_fd` is -1), and says which came first.
  StreamEvent WaitForStreamEvent(int conn_fd, absl::Time deadline) const;
  void StreamStarted();
  void StreamFinished();
  void ClientGone();

  const TestHttpServerOptions options_;
  ConcurrencyTracker tracker_;
  httplib::Server server_;

  // Used only by the thread that calls Start() and Stop().
  bool started_ = false;
  bool running_ = false;
  std::thread listener_;

  std::atomic<int> port_{0};
  absl::Notification listener_exited_;
  // Notified when Stop() begins.
  absl::Notification stopping_;
  // An eventfd that becomes readable when Stop() begins: `stopping_` in a
  // form poll() can wait on together with a socket. Set by Start() before
  // any handler can run; -1 before that.
  int stop_fd_ = -1;

  mutable absl::Mutex mu_;
  int total_requests_ ABSL_GUARDED_BY(mu_) = 0;
  // Path -> method -> requests.
  std::map<std::string, std::map<std::string, int, std::less<>>, std::less<>>
      requests_ ABSL_GUARDED_BY(mu_);
  // Path -> when each request's handler started, in order.
  std::map<std::string, std::vector<absl::Time>, std::less<>> arrivals_
      ABSL_GUARDED_BY(mu_);
  // /sequence key -> requests seen.
  std::map<std::string, int> sequence_positions_ ABSL_GUARDED_BY(mu_);
  int active_streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_stream_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Counts one request on the trackers, and for /stall and /drip as an active
// stream, for as long as it lives. The handler and the response's body
// provider share it, so it ends when httplib has finished with the response.
class TestHttpServer::Impl::RequestScope {
 public:
  explicit RequestScope(Impl* impl) : impl_(impl) {
    impl_->tracker_.Enter();
    if (impl_->options_.shared_tracker != nullptr) {
      impl_->options_.shared_tracker->Enter();
    }
  }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
  ~RequestScope() {
    if (stream_) {
      impl_->StreamFinished();
    }
    if (impl_->options_.shared_tracker != nullptr) {
      impl_->options_.shared_tracker->Leave();
    }
    impl_->tracker_.Leave();
  }

  // Counts this request as an active stream until it ends. Call once.
  void MarkStream() {
    stream_ = true;
    impl_->StreamStarted();
  }

 private:
  Impl* const impl_;
  bool stream_ = false;
};

TestHttpServer::Impl::Impl(TestHttpServerOptions options)
    : options_(std::move(options)) {
  server_.set_tcp_nodelay(true);
  server_.set_keep_alive_timeout(kKeepAliveTimeoutSeconds);
  server_.set_keep_alive_max_count(kKeepAliveMaxRequests);
  AddRoutes();
}

TestHttpServer::Impl::~Impl() {
  Stop();
  if (stop_fd_ >= 0) {
    close(stop_fd_);
  }
}

absl::Status TestHttpServer::Impl::Start() {
  if (started_) {
    return absl::FailedPreconditionError("TestHttpServer started twice");
  }
  started_ = true;
  if (options_.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 1, got ", options_.threads));
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd failed, errno ", errno));
  }
  const size_t threads = static_cast<size_t>(options_.threads);
  server_.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };

  // Debian's cpp-httplib (0.11, a compiled library) listens with a backlog
  // of 5: a burst of new connections (a worker opens up to max_per_host at
  // once) overflowed it, the kernel dropped SYNs and the client's SYN
  // retransmission showed up as 1 s stalls. Keep the listening socket and
  // listen on it again with a real backlog.
  int listen_fd = -1;
  server_.set_socket_options([&listen_fd](int sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  const int port = server_.bind_to_any_port(options_.host);
  if (port < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind ", options_.host, " on a free port"));
  }
  if (listen_fd < 0 || ::listen(listen_fd, kListenBacklog) != 0) {
    return absl::InternalError("cannot raise the listen backlog");
  }
  port_.store(port);
  listener_ = std::thread([this] {
    server_.listen_after_bind();
    listener_exited_.Notify();
  });
  // The socket already accepts connections (the kernel queues them), but
  // httplib's stop() does nothing until its accept loop has started, so wait
  // for that. httplib has no signal for it; the loop starts at once.
  while (!server_.is_running()) {
    if (listener_exited_.WaitForNotificationWithTimeout(
            absl::Milliseconds(1))) {
      listener_.join();
      return absl::InternalError("httplib listener exited at start");
    }
  }
  running_ = true;
  return absl::OkStatus();
}

void TestHttpServer::Impl::Stop() {
  if (!running_) {
    return;
  }
  running_ = false;
  stopping_.Notify();
  // Cannot fail: the counter is far from overflowing.
  (void)eventfd_write(stop_fd_, 1);
  server_.stop();
  // Returns after httplib has joined its workers, so no handler is running.
  listener_.join();
}

int TestHttpServer::Impl::RequestCount(absl::string_view path,
                                       absl::string_view method) const {
  absl::MutexLock lock(&mu_);
  const auto by_path = requests_.find(path);
  if (by_path == requests_.end()) {
    return 0;
  }
  const auto& by_method = by_path->second;
  if (!method.empty()) {
    const auto it = by_method.find(method);
    return it == by_method.end() ? 0 : it->second;
  }
  int total = 0;
  for (const auto& [unused_method, count] : by_method) {
    total += count;
  }
  return total;
}

int TestHttpServer::Impl::TotalRequests() const {
  absl::MutexLock lock(&mu_);
  return total_requests_;
}

int TestHttpServer::Impl::ActiveStreams() const {
  absl::MutexLock lock(&mu_);
  return active_streams_;
}

bool TestHttpServer::Impl::WaitForNoActiveStreams(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto none = [this] {
    mu_.AssertReaderHeld();
    return active_streams_ == 0;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&none), timeout);
}

absl::Time TestHttpServer::Impl::LastStreamEnd() const {
  absl::MutexLock lock(&mu_);
  return last_stream_end_;
}

void TestHttpServer::Impl::AddRoutes() {
  AddRoute("/ok",
           [](const httplib::Request&, httplib::Response& res, ScopePtr scope) {
             SetBody(res, "ok", kTextType, std::move(scope));
           });
  AddRoute("/bytes",
           [this](const httplib::Request& req, httplib::Response& res,
                  ScopePtr scope) { HandleBytes(req, res, std::move(scope)); });
  AddRoute("/status", [this](const httplib::Request& req,
                             httplib::Response& res, ScopePtr scope) {
    HandleStatus(req, res, std::move(scope));
  });
  AddRoute("/sequence", [this](const httplib::Request& req,
                               httplib::Response& res, ScopePtr scope) {
    HandleSequence(req, res, std::move(scope));
  });
  AddRoute("/delay",
           [this](const httplib::Request& req, httplib::Response& res,
                  ScopePtr scope) { HandleDelay(req, res, std::move(scope)); });
  AddRoute("/stall",
           [this](const httplib::Request& req, httplib::Response& res,
                  ScopePtr scope) { HandleStall(req, res, std::move(scope)); });
  AddRoute("/drip",
           [this](const httplib::Request& req, httplib::Response& res,
                  ScopePtr scope) { HandleDrip(req, res, std::move(scope)); });
  AddRoute("/echo", &HandleEcho);
  AddRoute("/redirect", &HandleRedirect);
  AddRoute("/request-headers", &HandleRequestHeaders);
  AddRoute("/gzip-bomb", &HandleGzipBomb);
  AddRoute("/big-headers", &HandleBigHeaders);
  AddRoute("/set-cookie", &HandleSetCookie);
  AddRoute("/encoded", &HandleEncoded);
  // Last, so that it only sees paths no other route matched.
  AddRoute(".*",
           [](const httplib::Request&, httplib::Response& res, ScopePtr scope) {
             SetStatusBody(res, 404, std::move(scope));
           });
}

void TestHttpServer::Impl::AddRoute(const std::string& pattern,
                                    Handler handler) {
  auto shared_handler = std::make_shared<const Handler>(std::move(handler));
  const httplib::Server::Handler counted = [this, shared_handler](
                                               const httplib::Request& req,
                                               httplib::Response& res) {
    CountRequest(req);
    (*shared_handler)(req, res, std::make_shared<RequestScope>(this));
  };
  // For requests with a body. httplib reads a body itself only for plain
  // handlers, and then refuses form-encoded bodies over 8 KiB (413) and
  // merges form-encoded bodies into the query parameters. libcurl labels
  // every POSTFIELDS body form-encoded, so read bodies here instead.
  const httplib::Server::HandlerWithContentReader reading =
      [this, shared_handler](const httplib::Request& req,
                             httplib::Response& res,
                             const httplib::ContentReader& content_reader) {
        CountRequest(req);
        auto scope = std::make_shared<RequestScope>(this);
        httplib::Request with_body = req;
        if (req.is_multipart_form_data()) {
          // httplib parses it into parts; the body becomes their
          // description (see /echo in the header).
          std::vector<httplib::MultipartFormData> parts;
          if (!content_reader(
                  [&parts](const httplib::MultipartFormData& part) {
                    parts.push_back(part);
                    return true;
                  },
                  [&parts](const char* data, size_t size) {
                    parts.back().content.append(data, size);
                    return true;
                  })) {
            BadRequest(res, "multipart body", std::move(scope));
            return;
          }
          for (const httplib::MultipartFormData& part : parts) {
            absl::StrAppend(&with_body.body, "name=\"",
                            absl::CHexEscape(part.name), "\" filename=\"",
                            absl::CHexEscape(part.filename), "\" type=\"",
                            absl::CHexEscape(part.content_type), "\" data=\"",
                            absl::CHexEscape(part.content), "\"\n");
          }
          (*shared_handler)(with_body, res, std::move(scope));
          return;
        }
        // Without either header a request has no body (RFC 9112 6.3), but
        // httplib's reader fails on it.
        const bool has_body = req.has_header("Content-Length") ||
                              req.has_header("Transfer-Encoding");
        if (has_body &&
            !content_reader([&with_body](const char* data, size_t size) {
              with_body.body.append(data, size);
              return true;
            })) {
          BadRequest(res, "body", std::move(scope));
          return;
        }
        (*shared_handler)(with_body, res, std::move(scope));
      };
  // GET handlers also serve HEAD. httplib picks the content-reading handler
  // when it expects a body (POST, PUT, PATCH; DELETE with a body).
  server_.Get(pattern, counted);
  server_.Post(pattern, counted);
  server_.Post(pattern, reading);
  server_.Put(pattern, counted);
  server_.Put(pattern, reading);
  server_.Patch(pattern, counted);
  server_.Patch(pattern, reading);
  server_.Delete(pattern, counted);
  server_.Delete(pattern, reading);
  server_.Options(pattern, counted);
}

void TestHttpServer::Impl::CountRequest(const httplib::Request& req) {
  absl::MutexLock lock(&mu_);
  ++total_requests_;
  ++requests_[req.path][req.method];
  arrivals_[req.path].push_back(absl::Now());
}

void TestHttpServer::Impl::HandleBytes(const httplib::Request& req,
                                       httplib::Response& res, ScopePtr scope) {
  int64_t n = 0;
  if (!IntParam(req, "n", 0, 0, INT64_MAX, &n)) {
    BadRequest(res, "n", std::move(scope));
    return;
  }
  if (n == 0) {
    return;
  }
  res.set_content_provider(
      static_cast<size_t>(n), kBinaryType,
      [](size_t /*offset*/, size_t length, httplib::DataSink& sink) {
        static const std::string* const kChunk =
            new std::string(size_t{64} * 1024, 'x');
        return sink.write(kChunk->data(), std::min(length, kChunk->size()));
      },
      [scope = std::move(scope)](bool /*success*/) {});
}

void TestHttpServer::Impl::HandleStatus(const httplib::Request& req,
                                        httplib::Response& res,
                                        ScopePtr scope) {
  int code = 0;
  if (!ParseStatusCode(req.get_param_value("code"), &code)) {
    BadRequest(res, "code", std::move(scope));
    return;
  }
  if (req.has_param("retry_after")) {
    res.set_header("Retry-After", req.get_param_value("retry_after"));
  }
  SetStatusBody(res, code, std::move(scope));
}

void TestHttpServer::Impl::HandleSequence(const httplib::Request& req,
                                          httplib::Response& res,
                                          ScopePtr scope) {
  std::vector<int> codes;
  for (absl::string_view text :
       absl::StrSplit(req.get_param_value("codes"), ',')) {
    int code = 0;
    if (!ParseStatusCode(text, &code)) {
      BadRequest(res, "codes", std::move(scope));
      return;
    }
    codes.push_back(code);
  }
  if (!req.has_param("key")) {
    BadRequest(res, "key", std::move(scope));
    return;
  }
  size_t position = 0;
  {
    absl::MutexLock lock(&mu_);
    position =
        static_cast<size_t>(sequence_positions_[req.get_param_value("key")]++);
  }
  const int code = codes[std::min(position, codes.size() - 1)];
  if ((code < 200 || code > 299) && req.has_param("retry_after")) {
    res.set_header("Retry-After", req.get_param_value("retry_after"));
  }
  SetStatusBody(res, code, std::move(scope));
}

void TestHttpServer::Impl::HandleDelay(const httplib::Request& req,
                                       httplib::Response& res, ScopePtr scope) {
  int64_t ms = 0;
  if (!IntParam(req, "ms", 0, 0, kMaxWaitMs, &ms)) {
    BadRequest(res, "ms", std::move(scope));
    return;
  }
  stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(ms));
  SetBody(res, "ok", kTextType, std::move(scope));
}

void TestHttpServer::Impl::HandleStall(const httplib::Request& req,
                                       httplib::Response& res, ScopePtr scope) {
  int64_t ms = 0;
  if (!IntParam(req, "ms", 30000, 0, kMaxWaitMs, &ms)) {
    BadRequest(res, "ms", std::move(scope));
    return;
  }
  const absl::Time deadline = absl::Now() + absl::Milliseconds(ms);
  const int conn_fd = FindConnectionFd(req);
  scope->MarkStream();
  res.status = 200;
  res.set_chunked_content_provider(
      kBinaryType,
      [this, deadline, conn_fd](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) {
          if (sink.write("x", 1)) {
            return true;
          }
          ClientGone();
          return false;
        }
        switch (WaitForStreamEvent(conn_fd, deadline)) {
          case StreamEvent::kDeadline:
            sink.done();
            return true;
          case StreamEvent::kClientGone:
            ClientGone();
            return false;
          case StreamEvent::kStopping:
            return false;
        }
        return false;
      },
      [scope = std::move(scope)](bool /*success*/) {});
}

void TestHttpServer::Impl::HandleDrip(const httplib::Request& req,
                                      httplib::Response& res, ScopePtr scope) {
  int64_t bytes = 0;
  int64_t interval_ms = 0;
  if (!IntParam(req, "bytes", 100, 0, INT64_MAX, &bytes)) {
    BadRequest(res, "bytes", std::move(scope));
    return;
  }
  if (!IntParam(req, "interval_ms", 50, 0, kMaxWaitMs, &interval_ms)) {
    BadRequest(res, "interval_ms", std::move(scope));
    return;
  }
  const absl::Duration interval = absl::Milliseconds(interval_ms);
  const int conn_fd = FindConnectionFd(req);
  scope->MarkStream();
  res.status = 200;
  res.set_chunked_content_provider(
      kBinaryType,
      [this, bytes, interval, conn_fd](size_t offset, httplib::DataSink& sink) {
        if (offset >= static_cast<uint64_t>(bytes)) {
          sink.done();
          return true;
        }
        if (offset > 0) {
          switch (WaitForStreamEvent(conn_fd, absl::Now() + interval)) {
            case StreamEvent::kDeadline:
              break;
            case StreamEvent::kClientGone:
              ClientGone();
              return false;
            case StreamEvent::kStopping:
              return false;
          }
        }
        if (sink.write("x", 1)) {
          return true;
        }
        ClientGone();
        return false;
      },
      [scope = std::move(scope)](bool /*success*/) {});
}

void TestHttpServer::Impl::HandleRedirect(const httplib::Request& req,
                                          httplib::Response& res,
                                          ScopePtr scope) {
  int code = 302;
  if (req.has_param("code") &&
      (!ParseStatusCode(req.get_param_value("code"), &code) || code < 300 ||
       code > 399)) {
    BadRequest(res, "code", std::move(scope));
    return;
  }
  if (req.has_param("loop")) {
    res.set_header("Location", req.target);
    SetStatusBody(res, code, std::move(scope));
    return;
  }
  if (!req.has_param("to")) {
    BadRequest(res, "to", std::move(scope));
    return;
  }
  res.set_header("Location", req.get_param_value("to"));
  SetStatusBody(res, code, std::move(scope));
}

void TestHttpServer::Impl::HandleRequestHeaders(const httplib::Request& req,
                                                httplib::Response& res,
                                                ScopePtr scope) {
  std::string body;
  for (const auto& [name, value] : req.headers) {
    // httplib adds these itself.
    if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" ||
        name == "LOCAL_ADDR" || name == "LOCAL_PORT") {
      continue;
    }
    absl::StrAppend(&body, absl::AsciiStrToLower(name), ": ", value, "\n");
  }
  res.set_header("X-Echo-Method", req.method);
  SetBody(res, body, kTextType, std::move(scope));
}

void TestHttpServer::Impl::HandleGzipBomb(const httplib::Request& req,
                                          httplib::Response& res,
                                          ScopePtr scope) {
  int64_t mib = 0;
  if (!IntParam(req, "mib", 1, 1, 4096, &mib)) {
    BadRequest(res, "mib", std::move(scope));
    return;
  }
  res.set_header("Content-Encoding", "gzip");
  SetBody(res, GzipOfZeros(static_cast<size_t>(mib) << 20), kBinaryType,
          std::move(scope));
}

void TestHttpServer::Impl::HandleEncoded(const httplib::Request& req,
                                         httplib::Response& res,
                                         ScopePtr scope) {
  int64_t bytes = 0;
  if (!IntParam(req, "bytes", 1000, 0, int64_t{4} << 30, &bytes)) {
    BadRequest(res, "bytes", std::move(scope));
    return;
  }
  const std::string encoding = req.get_param_value("encoding");
  const bool zeros = req.get_param_value("content") == "zeros";
  if (!zeros && req.has_param("content") &&
      req.get_param_value("content") != "pattern") {
    BadRequest(res, "content", std::move(scope));
    return;
  }
  std::string body = Compress(encoding, static_cast<size_t>(bytes), zeros);
  if (body.empty()) {
    BadRequest(res, "encoding", std::move(scope));
    return;
  }
  res.set_header("Content-Encoding", encoding);
  res.set_header("X-Decoded-Bytes", absl::StrCat(bytes));
  SetBody(res, std::move(body), kBinaryType, std::move(scope));
}

void TestHttpServer::Impl::HandleBigHeaders(const httplib::Request& req,
                                            httplib::Response& res,
                                            ScopePtr scope) {
  int64_t kib = 0;
  if (!IntParam(req, "kib", 1, 1, 1024, &kib)) {
    BadRequest(res, "kib", std::move(scope));
    return;
  }
  for (int64_t i = 0; i < kib; ++i) {
    res.set_header(absl::StrCat("X-Pad-", i), std::string(1000, 'p'));
  }
  SetBody(res, "ok", kTextType, std::move(scope));
}

void TestHttpServer::Impl::HandleSetCookie(const httplib::Request& req,
                                           httplib::Response& res,
                                           ScopePtr scope) {
  if (!req.has_param("name")) {
    BadRequest(res, "name", std::move(scope));
    return;
  }
  res.set_header("Set-Cookie",
                 absl::StrCat(req.get_param_value("name"), "=",
                              req.get_param_value("value"), "; Path=/"));
  if (req.has_param("to")) {
    res.set_header("Location", req.get_param_value("to"));
    SetStatusBody(res, 302, std::move(scope));
    return;
  }
  SetBody(res, "ok", kTextType, std::move(scope));
}

void TestHttpServer::Impl::HandleEcho(const httplib::Request& req,
                                      httplib::Response& res, ScopePtr scope) {
  res.set_header("X-Echo-Method", req.method);
  res.set_header("X-Echo-Body-Bytes", absl::StrCat(req.body.size()));
  res.set_header("X-Echo-Target", req.target);
  res.set_header("X-Echo-Content-Type", req.get_header_value("Content-Type"));
  SetBody(res, req.body, kBinaryType, std::move(scope));
}

TestHttpServer::Impl::StreamEvent TestHttpServer::Impl::WaitForStreamEvent(
    int conn_fd, absl::Time deadline) const {
  pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {conn_fd, POLLRDHUP, 0}};
  const nfds_t count = conn_fd >= 0 ? 2 : 1;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return StreamEvent::kDeadline;
    }
    const int64_t left_ms =
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
    const int ready =
        poll(fds, count, static_cast<int>(std::min<int64_t>(left_ms, INT_MAX)));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      // Cannot watch the sockets; still honour Stop() and the deadline.
      return stopping_.WaitForNotificationWithTimeout(left)
                 ? StreamEvent::kStopping
                 : StreamEvent::kDeadline;
    }
    if (fds[0].revents != 0) {
      return StreamEvent::kStopping;
    }
    // POLLRDHUP, or POLLHUP/POLLERR after a reset: the client is gone.
    if (count == 2 && fds[1].revents != 0) {
      return StreamEvent::kClientGone;
    }
  }
}

void TestHttpServer::Impl::StreamStarted() {
  absl::MutexLock lock(&mu_);
  ++active_streams_;
}

void TestHttpServer::Impl::StreamFinished() {
  absl::MutexLock lock(&mu_);
  --active_streams_;
}

void TestHttpServer::Impl::ClientGone() {
  absl::MutexLock lock(&mu_);
  last_stream_end_ = absl::Now();
}

// ---------------------------------------------------------------------------
// TestHttpServer

TestHttpServer::TestHttpServer(TestHttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

TestHttpServer::~TestHttpServer() = default;

absl::Status TestHttpServer::Start() { return impl_->Start(); }

void TestHttpServer::Stop() { impl_->Stop(); }

int TestHttpServer::port() const { return impl_->port(); }

std::string TestHttpServer::host() const { return impl_->host(); }

std::string TestHttpServer::Url(absl::string_view path_and_query) const {
  const std::string& host = impl_->host();
  // An IPv6 literal needs brackets in a URL.
  const bool ipv6 = host.find(':') != std::string::npos;
  return absl::StrCat(
      "http://", ipv6 ? "[" : "", host, ipv6 ? "]" : "", ":", impl_->port(),
      absl::string_view(path_and_query.data(), path_and_query.size()));
}

ConcurrencyTracker& TestHttpServer::tracker() { return impl_->tracker(); }

int TestHttpServer::RequestCount(absl::string_view path,
                                 absl::string_view method) const {
  return impl_->RequestCount(path, method);
}

std::vector<absl::Time> TestHttpServer::Arrivals(absl::string_view path) const {
  return impl_->Arrivals(path);
}

int TestHttpServer::TotalRequests() const { return impl_->TotalRequests(); }

int TestHttpServer::ActiveStreams() const { return impl_->ActiveStreams(); }

bool TestHttpServer::WaitForNoActiveStreams(absl::Duration timeout) {
  return impl_->WaitForNoActiveStreams(timeout);
}

absl::Time TestHttpServer::LastStreamEnd() const {
  return impl_->LastStreamEnd();
}

int UnusedLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace fetchd::testing
