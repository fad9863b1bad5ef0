// An in-process HTTP/1.1 server on a loopback address, for tests that drive
// real libcurl against real sockets (STYLE.md: hermetic tests, port 0).
//
// TestHttpServer serves a fixed set of routes that model the upstream
// behaviours fetchd must cope with: plain success, large bodies, error codes
// with Retry-After, scripted status sequences, slow responses, bodies that
// stall or drip, and echo. It records how many requests it received and how
// many were being handled at once, so tests can assert on retries and
// concurrency limits without mocks.
//
// Routes (every method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; the
// path is matched without its query; a bad query parameter gives 400):
//   /ok                        200, body "ok".
//   /bytes?n=N                 200, N bytes of 'x', with Content-Length.
//   /status?code=C[&retry_after=S]
//                              status C (200..599), body "status C" (no body
//                              for 204 and 304), header "Retry-After: S" if
//                              given.
//   /sequence?key=K&codes=C0,C1,...[&retry_after=S]
//                              the i-th request (0-based) for key K on this
//                              server gets status C[min(i, last)], body
//                              "status C"; "Retry-After: S" on non-2xx if
//                              given.
//   /delay?ms=M                waits M ms (less if Stop() begins), then 200
//                              "ok".
//   /stall?ms=M                (M defaults to 30000) 200, chunked; sends the
//                              headers and the first body byte "x" at once,
//                              then nothing until M ms have passed, then ends
//                              the body. Ends early, closing the connection
//                              without finishing the body, on Stop() or when
//                              the client hangs up.
//   /drip?bytes=N&interval_ms=I
//                              (defaults 100 and 50) 200, chunked; N bytes of
//                              'x', the first at once and then one every I
//                              ms. Ends early like /stall.
//   /echo                      200; body is the request body; headers
//                              "X-Echo-Method: <method>",
//                              "X-Echo-Body-Bytes: <request body size>",
//                              "X-Echo-Target: <request target, with the
//                              query as received>" and
//                              "X-Echo-Content-Type: <its Content-Type>".
//                              Bodies of any size and Content-Type are read
//                              for POST, PUT, PATCH and DELETE (GET bodies
//                              are ignored). A multipart/form-data body is
//                              parsed: the "request body" is then one line
//                              per part, in order: name="N" filename="F"
//                              type="T" data="D", each C-escaped.
//   /redirect?to=URL[&code=C]  status C (default 302, 300..399) with
//                              "Location: URL".
//   /redirect?loop=1[&code=C]  the same, redirecting to itself.
//   /request-headers           200; body has one "name: value" line per
//                              request header (names lower case); header
//                              "X-Echo-Method: <method>".
//   /gzip-bomb?mib=N           (N defaults to 1) 200, "Content-Encoding:
//                              gzip", a body that decodes to N MiB of zero
//                              bytes (about 1 kB per MiB on the wire).
//   /big-headers?kib=N         (N defaults to 1) 200 "ok" with N headers of
//                              about 1 kB each.
//   /set-cookie?name=N&value=V[&to=URL]
//                              200 "ok" (302 to URL when `to` is given) with
//                              "Set-Cookie: N=V; Path=/".
//   /encoded?encoding=E[&bytes=N][&content=pattern|zeros]
//                              200, "Content-Encoding: E" (gzip, deflate
//                              (zlib format), br or zstd; anything else gives
//                              400) and "X-Decoded-Bytes: N"; the body is N
//                              (default 1000, at most 4 GiB) bytes of
//                              TestBodyPattern(N), or of zeros, compressed
//                              with E when the request comes (a bomb: 1 GiB
//                              of zeros is about 1 MB as gzip, a few kB as
//                              br or zstd).
//   anything else              404, body "status 404".
// Bodies are never compressed, whatever Accept-Encoding says, except
// /gzip-bomb's and /encoded's. Request bodies
// never add query parameters. A Range header gets 206 from the routes that
// answer 200 with a fixed-length body (/ok, /bytes, /delay, /echo).
//
// Connections are kept alive for up to 1000 requests, or 1 s idle.
//
// Each request is counted on the trackers (this server's and the optional
// shared one) from the moment its handler starts until its response,
// including a streamed body, has been written or has failed.
//
// Thread safety: Start(), Stop() and the destructor are called from the
// thread that owns the server, never from inside a request. Every other
// method may be called from any thread at any time. Handlers run on the
// server's own worker threads.
//
// Not supported: TLS, HTTP/2, restarting after Stop().

#ifndef FETCHD_TESTS_TESTING_TEST_HTTP_SERVER_H_
#define FETCHD_TESTS_TESTING_TEST_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fetchd::testing {

// Counts requests being handled right now, and the most handled at once.
// Several servers may share one tracker to measure load across hosts.
// Thread-safe.
class ConcurrencyTracker {
 public:
  ConcurrencyTracker() = default;
  ConcurrencyTracker(const ConcurrencyTracker&) = delete;
  ConcurrencyTracker& operator=(const ConcurrencyTracker&) = delete;

  // A request starts / stops being handled. Each Leave() must follow an
  // Enter().
  void Enter();
  void Leave();

  // Requests being handled now.
  int current() const;
  // The largest current() seen since construction or the last Reset().
  int max() const;

  // Restarts the high-water mark from current(); requests in flight stay
  // counted and will still Leave().
  void Reset();

  // Blocks until current() == n or `timeout` passes; returns whether n was
  // reached. A client sees its response complete slightly before the server
  // has finished with the request, so wait for n = 0 before asserting that a
  // server is idle.
  bool AwaitCurrent(int n, absl::Duration timeout) const;

 private:
  mutable absl::Mutex mu_;
  int current_ ABSL_GUARDED_BY(mu_) = 0;
  int max_ ABSL_GUARDED_BY(mu_) = 0;
};

struct TestHttpServerOptions {
  // Address to listen on. Any 127.x.y.z works on Linux, so a second server on
  // 127.0.0.2 looks like a second host to a client.
  std::string host = "127.0.0.1";
  // Worker threads. A worker serves one connection for the connection's
  // whole life (including idle keep-alive time), so this bounds the number of
  // connections served at once; further connections wait to be served.
  int threads = 64;
  // If set, requests are also counted here. Not owned; must outlive the
  // server.
  ConcurrencyTracker* shared_tracker = nullptr;
};

class TestHttpServer {
 public:
  explicit TestHttpServer(TestHttpServerOptions options = {});
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;
  // Calls Stop().
  ~TestHttpServer();

  // Binds options.host on a free port chosen by the kernel and starts
  // serving; connections succeed once it returns. May be called once.
  // Errors: FailedPrecondition if called twice, InvalidArgument for
  // threads < 1, Unavailable if the address cannot be bound, Internal if the
  // listener fails to start.
  absl::Status Start();

  // Ends /delay, /stall and /drip early, stops accepting connections (later
  // connects are refused) and waits for the requests in flight to finish.
  // Idempotent; a no-op before Start(). Returns promptly unless a client
  // holds an idle keep-alive connection open: httplib then waits for it to
  // send another request or to close, for at most 1 s.
  void Stop();

  // The bound port (0 before Start()); still valid after Stop().
  int port() const;
  std::string host() const;
  // "http://HOST:PORT" followed by `path_and_query` (which should start with
  // '/').
  std::string Url(absl::string_view path_and_query) const;

  // Counts this server's requests only.
  ConcurrencyTracker& tracker();

  // Requests whose handler has started for `path` (no query), for any
  // method if `method` is empty, else only that method ("HEAD" is distinct
  // from "GET"). Counted before the response is sent, so a client that has
  // its response is already counted. Unknown paths count too.
  int RequestCount(absl::string_view path, absl::string_view method = "") const;
  // When each request for `path` (no query, any method) reached its
  // handler, in that order (the real clock: for the politeness tests'
  // rate and spacing checks).
  std::vector<absl::Time> Arrivals(absl::string_view path) const;
  int TotalRequests() const;

  // /stall and /drip responses not yet finished (sent, failed or abandoned).
  int ActiveStreams() const;
  // Blocks until ActiveStreams() == 0 or `timeout` passes; returns whether it
  // reached 0.
  bool WaitForNoActiveStreams(absl::Duration timeout);
  // When a /stall or /drip response most recently ended because its client
  // had gone; absl::InfinitePast() if never.
  absl::Time LastStreamEnd() const;

 private:
  class Impl;  // Holds the httplib server, so this header does not.
  std::unique_ptr<Impl> impl_;
};

// "abc...xyzabc...": `n` bytes, byte i being 'a' + i % 26 (the content of
// /encoded).
std::string TestBodyPattern(size_t n);

// A loopback TCP port on which nothing listens right now: connecting to
// 127.0.0.1 on it is refused. Found by binding port 0 and closing the
// socket, so another process could take the port later; good enough for
// tests. Returns 0 if no socket could be bound.
int UnusedLoopbackPort();

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_TEST_HTTP_SERVER_H_
