// SPDX-License-Identifier: Apache-2.0
//
// The approvals HTTP API and inbox (agent/approvals_http.h) on untrusted requests: any path,
// headers and body, with and without a valid token, session cookie or CSRF token, against a
// real broker with pending requests; and the token file parser on the same bytes. The input
// is cut at '\n' into method, path, Authorization, Cookie, Origin, Host, Sec-Fetch-Site,
// X-CSRF-Token, Content-Type, then the body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/approvals_http.h"

using namespace dbwarden::agent;

namespace {

constexpr char kToken[] = "dbwa_fuzz";

struct World {
  ApprovalHistory history{nullptr};
  dbwarden::approvals::Broker broker{&history};
  TokenFile tokens{{TokenEntry{"nobody", hash_token(kToken)}}};
  ApprovalRefusals refusals{broker, history, &history};
  ApprovalsHttp api{
      broker, tokens, refusals, history, OriginPolicy::Make("127.0.0.1", 9978, false, "").value(),
      false};
  std::string cookie, csrf;
  World() {
    HttpRequest login;
    login.method = "POST";
    login.path = "/api/login";
    login.host = "127.0.0.1:9978";
    login.origin = "http://127.0.0.1:9978";
    login.content_type = "application/json";
    login.body = std::string("{\"token\":\"") + kToken + "\"}";
    HttpResponse r = api.handle(login, 1);
    for (const auto& [k, v] : r.headers) {
      if (k == "Set-Cookie") cookie = v.substr(0, v.find(';'));
    }
    const size_t at = r.body.find("\"csrf\":\"");
    if (at != std::string::npos) csrf = r.body.substr(at + 8, 64);
  }
};

std::string_view next_field(std::string_view& in) {
  const size_t nl = in.find('\n');
  std::string_view f = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = new World();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)parse_tokens(in);
  if (w->broker.pending() < 4) {
    dbwarden::approvals::RequestSpec s;
    s.rule = "r";
    s.text = "DELETE FROM t";
    s.approvers = {"nobody"};
    s.who.uid = 1000;
    (void)w->broker.submit(s, 0);
  }
  HttpRequest r;
  r.method = std::string(next_field(in));
  r.path = std::string(next_field(in));
  // A leading '!' in a header field stands for the valid credential, so that the fuzzer
  // reaches the decisions too.
  auto field = [&](std::string_view valid) {
    std::string_view f = next_field(in);
    return !f.empty() && f.front() == '!' ? std::string(valid) : std::string(f);
  };
  r.authorization = field(std::string("Bearer ") + kToken);
  r.cookie = field(w->cookie);
  r.origin = field("http://127.0.0.1:9978");
  r.host = field("127.0.0.1:9978");
  r.sec_fetch_site = field("same-origin");
  r.csrf = field(w->csrf);
  r.content_type = field("application/json");
  r.body = std::string(in);
  r.peer = "127.0.0.1";
  HttpResponse out = w->api.handle(r, 2);
  // Past a decision the request is done with: forgotten, as the proxy forgets it.
  for (uint64_t id = 1; id < 64; ++id) {
    auto st = w->broker.state(id, nullptr);
    if (st && *st != dbwarden::approvals::State::kPending) w->broker.forget(id);
  }
  (void)out;
  return 0;
}
