// LoopbackListener: the socket plumbing of the hand-rolled test servers
// (Socks5Server, FaultServer): listens on 127.0.0.1, port 0, and serves each
// accepted connection on a thread of its own with the handler it was given.
// The listener owns the connection: it closes it when the handler returns,
// and Stop() shuts every open one down (a handler blocked reading it sees
// end of file) before joining the threads.
//
// Thread safety: Start() and Stop() from the owning thread; port() and
// stopping() from any thread.
#ifndef FETCHD_TESTS_TESTING_LOOPBACK_LISTENER_H_
#define FETCHD_TESTS_TESTING_LOOPBACK_LISTENER_H_

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fetchd::testing {

class LoopbackListener {
 public:
  // Serves one connection; must not close `fd`.
  using Handler = std::function<void(int fd)>;

  explicit LoopbackListener(Handler handler) : handler_(std::move(handler)) {}
  ~LoopbackListener() { Stop(); }
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  absl::Status Start();
  // Idempotent.
  void Stop();

  int port() const { return port_; }
  bool stopping() const { return stopping_.load(); }

 private:
  void AcceptLoop();

  const Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_LOOPBACK_LISTENER_H_
