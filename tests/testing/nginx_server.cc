#include "tests/testing/nginx_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/testing/test_http_server.h"

extern char** environ;

namespace fetchd::testing {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

NginxServer::~NginxServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

absl::Status NginxServer::Start() {
  if (access(kNginx, X_OK) != 0) {
    return absl::FailedPreconditionError(
        "/usr/sbin/nginx missing: install the Debian package nginx "
        "(scripts/install-deps.sh)");
  }
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "fetchd_nginx.XXXXXX").string();
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  dir_ = dir_template;
  port_ = UnusedLoopbackPort();
  const bool tls = !options_.cert_file.empty() && !options_.key_file.empty();

  std::string server =
      absl::StrCat("    listen 127.0.0.1:", port_, tls ? " ssl" : "",
                   tls && options_.http2 ? " http2" : "", ";\n");
  if (tls) {
    absl::StrAppend(&server, "    ssl_certificate ", options_.cert_file,
                    ";\n    ssl_certificate_key ", options_.key_file, ";\n");
    if (!options_.client_ca_file.empty()) {
      absl::StrAppend(&server, "    ssl_client_certificate ",
                      options_.client_ca_file, ";\n",
                      "    ssl_verify_client on;\n");
    }
  }
  if (options_.proxy_to_port != 0) {
    absl::StrAppend(&server, "    location / {\n");
    if (!options_.proxy_credentials.empty()) {
      absl::StrAppend(&server,
                      "      if ($http_proxy_authorization != \"Basic ",
                      absl::Base64Escape(options_.proxy_credentials),
                      "\") { return 407; }\n");
    }
    absl::StrAppend(
        &server, "      proxy_pass http://127.0.0.1:", options_.proxy_to_port,
        ";\n", "      proxy_set_header X-Via nginx-proxy;\n",
        "      proxy_set_header Proxy-Authorization \"\";\n", "    }\n");
  } else {
    absl::StrAppend(&server, "    location / { return 200 \"ok\"; }\n");
  }
  const std::string conf = absl::StrCat(
      "daemon off;\nmaster_process off;\nworker_processes 1;\n", "pid ", dir_,
      "/nginx.pid;\nerror_log ", dir_, "/error.log warn;\n",
      "events { worker_connections 1024; }\n", "http {\n",
      "  log_format conn '$connection $server_protocol $status "
      "$request_uri';\n",
      "  access_log ", dir_, "/access.log conn;\n", "  client_body_temp_path ",
      dir_, "/tmp_body;\n", "  proxy_temp_path ", dir_, "/tmp_proxy;\n",
      "  fastcgi_temp_path ", dir_, "/tmp_fastcgi;\n", "  uwsgi_temp_path ",
      dir_, "/tmp_uwsgi;\n", "  scgi_temp_path ", dir_, "/tmp_scgi;\n",
      "  server {\n", server, "  }\n}\n");
  const std::string conf_path = dir_ + "/nginx.conf";
  std::ofstream(conf_path) << conf;

  std::vector<std::string> args = {
      kNginx, "-e", dir_ + "/error.log", "-p", dir_, "-c", conf_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, kNginx, nullptr, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
    return absl::InternalError("posix_spawn nginx failed");
  }
  // Another process: poll, boundedly, until it accepts.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Accepts(port_)) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("nginx exited at start: ",
                                              ReadFile(dir_ + "/error.log")));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "nginx did not accept connections: ", ReadFile(dir_ + "/error.log")));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::OkStatus();
}

void NginxServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string NginxServer::Url(const std::string& path) const {
  const bool tls = !options_.cert_file.empty() && !options_.key_file.empty();
  return absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", port_, path);
}

std::vector<std::string> NginxServer::AccessLog() const {
  return absl::StrSplit(ReadFile(dir_ + "/access.log"), '\n',
                        absl::SkipEmpty());
}

}  // namespace fetchd::testing
