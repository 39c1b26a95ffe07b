#include "tokcom/net/http.h"

#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tokcom/core/errors.h"
#include "tokcom/net/credentials.h"
#include "tokcom/net/monitor.h"
#include "tokcom/net/monitor_page.h"
#include "tokcom/net/server.h"

namespace tokcom::net {
namespace {

// "PORT" → loopback; "host:port" (a bracketed IPv6 host keeps its brackets off). Port 0–65535.
std::pair<std::string, int> parse_listen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : listen.substr(0, colon);
  const std::string port = colon == std::string::npos ? listen : listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::optional<int> number = listen_port(port);
  if (host.empty() || !number)
    throw UsageError(fmt::format("--http '{}': expected PORT (on 127.0.0.1) or host:port, with a port in 1–65535 "
                                 "(0 = any free port)",
                                 listen));
  return {host, *number};
}

}  // namespace

class HttpEndpoint::Impl {
 public:
  std::unique_ptr<httplib::Server> http;
};

HttpEndpoint::HttpEndpoint(EdgeServer& server, HttpOptions options, std::string version)
    : server_(server), options_(std::move(options)), version_(std::move(version)), impl_(std::make_unique<Impl>()) {
  if (options_.tls_cert.empty() != options_.tls_key.empty())
    throw UsageError("serve --http: give both --tls-cert and --tls-key, or neither");
  if (!(options_.sample_interval_s > 0)) throw UsageError("serve --http: the sample interval must be > 0 s");
}

HttpEndpoint::~HttpEndpoint() { stop(); }

std::string HttpEndpoint::url() const {
  const std::string host = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
  return fmt::format("{}://{}:{}/", options_.tls_cert.empty() ? "http" : "https", host, port_);
}

void HttpEndpoint::start() {
  const auto [host, port] = parse_listen(options_.listen);
  host_ = host;
  if (options_.tls_cert.empty()) {
    impl_->http = std::make_unique<httplib::Server>();
  } else {
    auto https = std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(), options_.tls_key.c_str());
    if (!https->is_valid())
      throw UsageError(fmt::format("serve --http: cannot use --tls-cert {} / --tls-key {} for HTTPS (unreadable or "
                                   "not a matching PEM pair)",
                                   options_.tls_cert, options_.tls_key));
    impl_->http = std::move(https);
  }
  httplib::Server& http = *impl_->http;
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second server
  // share this port (and its scrapers) silently.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const std::string token = options_.auth_token;
  auto authorised = [token](const httplib::Request& req, httplib::Response& res) {
    if (token.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    const std::string query = req.has_param("token") ? req.get_param_value("token") : "";
    if (same_secret(header, "Bearer " + token) || (!query.empty() && same_secret(query, token))) return true;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content("missing or wrong 'Authorization: Bearer <token>' (or ?token=)\n", "text/plain; charset=utf-8");
    return false;
  };
  EdgeServer* server = &server_;
  const std::string version = version_;
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(embedded::kMonitorPage, "text/html; charset=utf-8");
  });
  http.Get("/api/state", [server, version, authorised](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    res.set_header("Cache-Control", "no-store");
    res.set_content(server->monitor().state_json(server->metrics(), server->served(), version, server->started_unix(),
                                                 unix_now()),
                    "application/json");
  });
  http.Get("/metrics", [server, version, authorised](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    res.set_content(server->monitor().prometheus(server->metrics(), server->served(), version),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/healthz", [server](const httplib::Request&, httplib::Response& res) {
    const bool serving = server->serving();
    res.status = serving ? 200 : 503;
    res.set_content(serving ? "ok\n" : "draining\n", "text/plain; charset=utf-8");
  });

  port_ = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    port_ = 0;
    throw UsageError(fmt::format("serve --http: cannot listen on {}:{} (address in use, or not an address of this "
                                 "machine?)",
                                 host, port));
  }
  listener_ = std::thread([this] { impl_->http->listen_after_bind(); });
  sampler_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto period = std::chrono::milliseconds(static_cast<int64_t>(options_.sample_interval_s * 1000));
    do {
      server_.monitor().sample(server_.metrics(), unix_now());
    } while (!stop_cv_.wait_for(lock, period, [this] { return stopping_; }));
  });
  const bool loopback = host == "127.0.0.1" || host == "::1" || host == "localhost";
  spdlog::info("live page on {}{}{}", url(), options_.auth_token.empty() ? "" : " (add ?token=<token>)",
               loopback ? "" : "; /metrics and /api/state are reachable from other machines");
}

void HttpEndpoint::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (impl_->http) impl_->http->stop();
  if (listener_.joinable()) listener_.join();
  if (sampler_.joinable()) sampler_.join();
}

}  // namespace tokcom::net
