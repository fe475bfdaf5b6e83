// SPDX-License-Identifier: Apache-2.0
//
// The approvals HTTP API and web inbox (issue 14), without the transport: one request in,
// one response out, so that unit tests and the fuzz target drive exactly what the server
// (agent/approvals_http_server.h) runs. The same broker calls as the CLI's socket, so the
// same rules: nobody decides their own request (the token owner's passwd uid is compared
// with the requester's uid and login uid), only the rule's approver groups decide, N
// distinct approvers for `approvals: N`.
//
//   GET  /api/requests                 pending requests, oldest first
//   GET  /api/requests/ID              one request
//   POST /api/requests/ID/approve      {"reason": "...", "for": "30m"}   (both optional)
//   POST /api/requests/ID/deny         {"reason": "..."}                 (reason required)
//   GET  /api/history                  the last decisions, newest first
//   POST /api/login {"token": "..."}, GET /api/session, POST /api/logout   (the inbox)
//   GET  /, /inbox.js, /inbox.css       the inbox itself (no inline script or style)
//
// An API caller sends `Authorization: Bearer TOKEN` (channel "api"); the inbox's page uses
// its session cookie and the session's CSRF token in X-CSRF-Token (channel "web"). POSTs
// take application/json only. Every refused request of the API (no or wrong token, a
// cross-site or replayed request, a broker refusal) is counted and recorded by
// ApprovalRefusals (approval_refusals.h: a "refused" approval record, rate-bounded).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/approval_history.h"
#include "agent/approval_refusals.h"
#include "agent/approval_tokens.h"
#include "agent/approvals_web_auth.h"
#include "approvals/broker.h"

namespace dbwarden::agent {

struct HttpRequest {
  std::string method, path;  // path without the query
  std::string body;
  // Headers the API reads ("" when absent).
  std::string authorization, cookie, origin, host, sec_fetch_site, csrf, content_type;
  std::string peer;  // client address, for the records of refusals
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

inline constexpr size_t kMaxHttpBody = 16 * 1024;
inline constexpr size_t kMaxReasonBytes = 1000;

class ApprovalsHttp {
 public:
  // `refusals` counts and records every refusal.
  ApprovalsHttp(approvals::Broker& broker, TokenFile& tokens, ApprovalRefusals& refusals,
                const ApprovalHistory& history, OriginPolicy origins, bool tls);
  HttpResponse handle(const HttpRequest& r, uint64_t now_ns);
  uint64_t refusals_unrecorded() const;

 private:
  struct Principal {
    std::string name;
    TokenHash token_hash{};
    const char* channel = "api";
    std::optional<WebSession> session;
  };
  HttpResponse route(const HttpRequest& r, uint64_t now_ns);
  HttpResponse login(const HttpRequest& r, uint64_t now_ns);
  HttpResponse decide(const HttpRequest& r, const Principal& p, uint64_t id, bool approve,
                      uint64_t now_ns);
  HttpResponse refuse(int status, RefusalReason reason, const std::string& why,
                      const HttpRequest& r, const std::string& by, const char* channel, uint64_t id,
                      uint64_t now_ns);
  std::string session_cookie_name() const;

  approvals::Broker& broker_;
  TokenFile& tokens_;
  ApprovalRefusals& refusals_;
  const ApprovalHistory& history_;
  OriginPolicy origins_;
  const bool tls_;
  WebSessions sessions_;
};

}  // namespace dbwarden::agent
