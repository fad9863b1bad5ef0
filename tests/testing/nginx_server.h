// NginxServer: a private nginx (Debian's /usr/sbin/nginx) on 127.0.0.1, for
// tests that need what the in-process test server can't do: TLS with
// HTTP/2, client-certificate checks, and an HTTP forward proxy. One process
// (no master), its own directory, config and logs; stopped with the object.
//
// Every response is "ok" (status 200) unless `proxy_to_port` makes it a
// proxy. The access log has one line per request: "<connection serial>
// <protocol> <status> <request URI>", so a test can count the connections
// its requests used.
#ifndef FETCHD_TESTS_TESTING_NGINX_SERVER_H_
#define FETCHD_TESTS_TESTING_NGINX_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fetchd::testing {

struct NginxOptions {
  // PEM files; with both set nginx serves TLS (and HTTP/2 when `http2`).
  std::string cert_file;
  std::string key_file;
  bool http2 = true;
  // With TLS: require a client certificate that chains to this CA.
  std::string client_ca_file;
  // Non-zero: a forward proxy to 127.0.0.1:proxy_to_port that adds
  // "X-Via: nginx-proxy" and, when `proxy_credentials` ("user:password")
  // is set, answers 407 to requests without that Basic
  // Proxy-Authorization.
  int proxy_to_port = 0;
  std::string proxy_credentials;
};

class NginxServer {
 public:
  explicit NginxServer(NginxOptions options) : options_(std::move(options)) {}
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // Writes the config, starts nginx and waits (boundedly) until it accepts
  // connections. Errors name what failed, with nginx's error log.
  absl::Status Start();
  void Stop();

  int port() const { return port_; }
  // "http(s)://127.0.0.1:PORT" + path.
  std::string Url(const std::string& path) const;
  // The access log's lines so far.
  std::vector<std::string> AccessLog() const;

 private:
  NginxOptions options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_NGINX_SERVER_H_
