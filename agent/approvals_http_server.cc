// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_http_server.h"

#include <time.h>

#include <charconv>
#include <thread>

#include "agent/approvals_http.h"
#include "agent/log.h"
#include "proxy/tls.h"

// Built with OpenSSL (CPPHTTPLIB_OPENSSL_SUPPORT comes from its pkg-config file).
#include <httplib.h>

namespace dbwarden::agent {
namespace {

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Approvers are few, but each browser keeps a connection (and with it a thread) open
// between its polls: eight threads, and an idle connection closed after two seconds.
constexpr size_t kThreads = 8;

}  // namespace

Status split_listen_address(const std::string& text, std::string* host, uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::Error("approvals-listen must be HOST:PORT or [IPv6]:PORT, got '" + text + "'");
  }
  std::string h = text.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']') return Status::Error("approvals-listen: unclosed '[' in '" + text + "'");
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return Status::Error("approvals-listen: write an IPv6 address as [ADDRESS]:PORT, got '" + text +
                         "'");
  }
  unsigned p = 0;
  const char* b = text.data() + colon + 1;
  const auto [end, ec] = std::from_chars(b, text.data() + text.size(), p);
  if (ec != std::errc() || end != text.data() + text.size() || p == 0 || p > 65535) {
    return Status::Error("approvals-listen has a bad port: '" + text + "'");
  }
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

struct ApprovalsHttpServer::Impl {
  std::unique_ptr<TokenFile> tokens;
  std::unique_ptr<ApprovalsHttp> api;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  std::string url;
};

ApprovalsHttpServer::ApprovalsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApprovalsHttpServer::~ApprovalsHttpServer() {
  if (impl_->server) impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string ApprovalsHttpServer::url() const { return impl_->url; }

Result<std::unique_ptr<ApprovalsHttpServer>> ApprovalsHttpServer::Start(
    const ApprovalsHttpOptions& o, approvals::Broker& broker, ApprovalHistory& history,
    ApprovalRefusals& refusals) {
  auto impl = std::make_unique<Impl>();
  std::string host;
  uint16_t port = 0;
  if (Status s = split_listen_address(o.listen, &host, &port); !s.ok()) return s;
  const bool tls = !o.tls_cert_file.empty();
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return Status::Error("approvals-tls-cert-file and approvals-tls-key-file go together");
  }
  auto origins = OriginPolicy::Make(host, port, tls, o.url);
  if (!origins.ok()) return origins.status();
  auto tokens = TokenFile::Open(o.tokens_file);
  if (!tokens.ok()) return tokens.status();
  impl->tokens = std::move(tokens.value());
  impl->url = origins.value().origins().front();
  if (tls) {
    // Checked with the proxy's loader first: its errors say which file and why, where
    // httplib only says "not valid".
    auto checked = proxy::TlsContext::Load(o.tls_cert_file, o.tls_key_file);
    if (!checked.ok()) return Status::Error("approvals-tls: " + checked.status().message());
    auto s = std::make_unique<httplib::SSLServer>(o.tls_cert_file.c_str(), o.tls_key_file.c_str());
    if (!s->is_valid()) return Status::Error("approvals-tls: the certificate or key did not load");
    impl->server = std::move(s);
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  impl->api = std::make_unique<ApprovalsHttp>(broker, *impl->tokens, refusals, history,
                                              std::move(origins.value()), tls);
  httplib::Server& srv = *impl->server;
  srv.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  srv.set_payload_max_length(kMaxHttpBody);
  srv.set_read_timeout(10, 0);
  srv.set_write_timeout(10, 0);
  srv.set_keep_alive_max_count(100);
  srv.set_keep_alive_timeout(2);
  ApprovalsHttp* api = impl->api.get();
  auto handler = [api](const httplib::Request& req, httplib::Response& res) {
    HttpRequest r;
    r.method = req.method;
    r.path = req.path;
    r.body = req.body;
    r.authorization = req.get_header_value("Authorization");
    r.cookie = req.get_header_value("Cookie");
    r.origin = req.get_header_value("Origin");
    r.host = req.get_header_value("Host");
    r.sec_fetch_site = req.get_header_value("Sec-Fetch-Site");
    r.csrf = req.get_header_value("X-CSRF-Token");
    r.content_type = req.get_header_value("Content-Type");
    r.peer = req.remote_addr;
    HttpResponse out = api->handle(r, mono_ns());
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(out.body, out.content_type.c_str());
  };
  srv.Get(".*", handler);
  srv.Post(".*", handler);
  srv.Put(".*", handler);
  srv.Delete(".*", handler);
  srv.Patch(".*", handler);
  srv.Options(".*", handler);
  if (!srv.bind_to_port(host, port)) {
    return Status::Error("approvals-listen " + o.listen +
                         ": cannot listen there (in use, or "
                         "not an address of this host)");
  }
  httplib::Server* raw = &srv;
  impl->thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "dbw-appr-http");
    raw->listen_after_bind();
  });
  DBW_LOG(kInfo, "approvals API and web inbox at %s/ (tokens %s)", impl->url.c_str(),
          o.tokens_file.c_str());
  return std::unique_ptr<ApprovalsHttpServer>(new ApprovalsHttpServer(std::move(impl)));
}

}  // namespace dbwarden::agent
