// SPDX-License-Identifier: Apache-2.0
//
// What keeps the approvals web inbox's browser sessions honest (issue 14):
// - WebSessions: a login by token opens a session, named by a 256-bit random cookie value
//   (kept only as its SHA-256) and holding a 256-bit CSRF token that the page sends back in
//   the X-CSRF-Token header on every state-changing request. A session ends at logout, after
//   30 idle minutes, after 12 hours, or when its approver's token leaves the tokens file.
// - OriginPolicy: the inbox answers only to its own origins. Every request's Host must be one
//   of them (a DNS-rebinding page has its own name in Host); a state-changing request whose
//   Origin is another, or that the browser marks cross-site (Sec-Fetch-Site), is refused.
//   A browser session's request must carry an Origin (browsers send one on every POST).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/approval_tokens.h"
#include "common/status.h"

namespace dbwarden::agent {

struct WebSession {
  std::string name;
  TokenHash token_hash{};  // the token that logged in
  std::string csrf;
  uint64_t created_ns = 0;
  uint64_t used_ns = 0;
};

struct NewSession {
  std::string cookie;  // the cookie's value
  std::string csrf;
};

class WebSessions {
 public:
  static constexpr uint64_t kIdleNs = 30ull * 60 * 1'000'000'000;
  static constexpr uint64_t kMaxAgeNs = 12ull * 3600 * 1'000'000'000;
  static constexpr size_t kMaxSessions = 256;  // beyond: the least recently used one ends

  Result<NewSession> create(const std::string& name, const TokenHash& token_hash, uint64_t now_ns);
  // The live session named by `cookie` (touched: its idle clock restarts); nullopt when none.
  std::optional<WebSession> find(std::string_view cookie, uint64_t now_ns);
  void end(std::string_view cookie);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<TokenHash, WebSession> by_cookie_hash_;
};

// The presented header equals the session's token, compared in constant time.
bool csrf_matches(const WebSession& s, std::string_view presented);
// The value of cookie `name` in a Cookie header ("" when absent).
std::string cookie_value(std::string_view header, std::string_view name);

class OriginPolicy {
 public:
  // `host`/`port`: where the server listens; `tls`: https; `url`: the inbox's address as
  // browsers reach it (approvals-url), "" for none. Loopback listeners also answer to
  // localhost. A wildcard address needs `url`.
  static Result<OriginPolicy> Make(const std::string& host, uint16_t port, bool tls,
                                   const std::string& url);
  explicit OriginPolicy(std::vector<std::string> origins) : origins_(std::move(origins)) {}
  bool host_ok(std::string_view host_header) const;
  // "" when a state-changing request may go on, else why it may not.
  std::string check_write(std::string_view origin, std::string_view sec_fetch_site,
                          bool browser_session) const;
  const std::vector<std::string>& origins() const { return origins_; }

 private:
  std::vector<std::string> origins_;  // scheme://host:port, lower case
};

}  // namespace dbwarden::agent
