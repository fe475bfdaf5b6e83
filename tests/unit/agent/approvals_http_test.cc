// SPDX-License-Identifier: Apache-2.0
//
// The approvals HTTP API and inbox without a socket (agent/approvals_http.h): tokens
// (agent/approval_tokens.h), sessions, CSRF and origins (agent/approvals_web_auth.h), and
// every refusal recorded, against a real broker.
#include "agent/approvals_http.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "agent/approvals_http_server.h"
#include "agent/approvals_token_cmd.h"
#include "agent/config.h"
#include "common/read_file.h"

using namespace dbwarden::agent;
using dbwarden::approvals::Broker;
using dbwarden::approvals::Event;
using dbwarden::approvals::EventSink;
using dbwarden::approvals::RequestSpec;
using dbwarden::approvals::State;

namespace {

constexpr char kAlice[] = "dbwa_alice-token";
constexpr char kDaemon[] = "dbwa_daemon-token";
constexpr char kNobody[] = "dbwa_nobody-token";
constexpr char kOrigin[] = "http://127.0.0.1:9978";

struct Events : EventSink {
  void on_approval_event(const Event& e) override {
    kinds.push_back(e.kind);
    if (e.kind == "refused") refusals.push_back(e.channel + "|" + e.by + "|" + e.reason);
  }
  std::vector<std::string> kinds, refusals;
};

RequestSpec spec(int64_t uid) {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM t WHERE id = ?";
  s.operation = "DELETE";
  s.approvers = {"alice", "daemon", "nobody"};
  s.who.db_user = "app";
  s.who.database = "shop";
  s.who.uid = uid;
  s.who.pid = 42;
  s.who.executable = "/usr/bin/psql";
  s.timeout_ns = 60'000'000'000ull;
  return s;
}

struct Fixture {
  Events events;
  ApprovalHistory history{&events};
  Broker broker{&history};
  TokenFile tokens{{TokenEntry{"alice", hash_token(kAlice)},
                    TokenEntry{"daemon", hash_token(kDaemon)},
                    TokenEntry{"nobody", hash_token(kNobody)},
                    TokenEntry{"mallory", hash_token("dbwa_mallory")}}};
  ApprovalRefusals refusals{broker, history, &history};
  ApprovalsHttp api{
      broker, tokens, refusals, history, OriginPolicy::Make("127.0.0.1", 9978, false, "").value(),
      false};

  HttpResponse call(const std::string& method, const std::string& path,
                    const std::string& token = "", const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.host = "127.0.0.1:9978";
    r.peer = "127.0.0.1";
    r.body = body;
    if (!token.empty()) r.authorization = "Bearer " + token;
    if (method == "POST") r.content_type = "application/json";
    return api.handle(r, 2'000'000'000ull);
  }
};

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace

TEST_CASE("approval tokens: hash, parse, format, constant-time find", "[approvals][http]") {
  const TokenHash h = hash_token("abc");
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  CHECK(to_hex(h.data(), h.size()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(same_hash(h, hash_token("abc")));
  CHECK_FALSE(same_hash(h, hash_token("abd")));

  auto parsed = parse_tokens("# comment\n\nalice  " + to_hex(h.data(), h.size()) + "\n  bob\t" +
                             std::string(64, 'A') + "  \r\n");
  REQUIRE(parsed.ok());
  REQUIRE(parsed.value().size() == 2);
  CHECK(parsed.value()[0].name == "alice");
  CHECK(parsed.value()[1].hash[0] == 0xaa);
  auto again = parse_tokens(format_tokens(parsed.value()));
  REQUIRE(again.ok());
  CHECK(again.value().size() == 2);
  CHECK(same_hash(again.value()[1].hash, parsed.value()[1].hash));

  CHECK(find_token(parsed.value(), "abc")->name == "alice");
  CHECK_FALSE(find_token(parsed.value(), "abcd"));
  CHECK_FALSE(find_token(parsed.value(), ""));

  auto bad_hex = parse_tokens("alice 1234\n");
  REQUIRE_FALSE(bad_hex.ok());
  CHECK(bad_hex.status().message().rfind("line 1: expected NAME", 0) == 0);
  auto bad_name = parse_tokens("# x\nal ice " + std::string(64, '0') + "\n");
  REQUIRE_FALSE(bad_name.ok());
  CHECK(bad_name.status().message().rfind("line 2:", 0) == 0);
  auto twice = parse_tokens("a " + std::string(64, '0') + "\na " + std::string(64, '1') + "\n");
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.status().message().find("listed twice") != std::string::npos);

  auto t1 = new_token(), t2 = new_token();
  REQUIRE(t1.ok());
  CHECK(t1.value().size() == 5 + 64);
  CHECK(t1.value().rfind(kTokenPrefix, 0) == 0);
  CHECK(t1.value() != t2.value());
  CHECK(valid_approver_name("db.admin-2_x"));
  CHECK_FALSE(valid_approver_name(""));
  CHECK_FALSE(valid_approver_name(std::string(65, 'a')));
  CHECK_FALSE(valid_approver_name("a/b"));
}

TEST_CASE("approval tokens: the token verb stores hashes only, the file follows changes",
          "[approvals][http]") {
  char dir_template[] = "/tmp/dbw-tokens-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string file = dir + "/tokens";
  std::ostringstream out, err;
  const char* add[] = {"token", "add", "alice", "--tokens", file.c_str()};
  REQUIRE(approvals_token_main(5, add, out, err) == 0);
  const std::string token = out.str().substr(0, out.str().size() - 1);
  CHECK(token.rfind(kTokenPrefix, 0) == 0);
  const std::string text = dbwarden::read_whole_file(file);
  CHECK(text.find(token) == std::string::npos);  // the token itself is never stored
  const TokenHash h = hash_token(token);
  CHECK(text.find("alice " + to_hex(h.data(), h.size())) != std::string::npos);
  struct stat st {};
  REQUIRE(stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // One token per name.
  CHECK(approvals_token_main(5, add, out, err) == 1);

  auto tf = TokenFile::Open(file);
  REQUIRE(tf.ok());
  CHECK(tf.value()->find(token)->name == "alice");
  CHECK(tf.value()->holds("alice", h));
  std::ostringstream out2;
  const char* add_bob[] = {"token", "add", "bob", "--tokens", file.c_str()};
  REQUIRE(approvals_token_main(5, add_bob, out2, err) == 0);
  const std::string bob = out2.str().substr(0, out2.str().size() - 1);
  CHECK(tf.value()->find(bob)->name == "bob");  // read again: no restart
  const char* remove[] = {"token", "remove", "alice", "--tokens", file.c_str()};
  REQUIRE(approvals_token_main(5, remove, out, err) == 0);
  CHECK_FALSE(tf.value()->find(token));
  CHECK_FALSE(tf.value()->holds("alice", h));
  CHECK(approvals_token_main(5, remove, out, err) == 1);
  std::ostringstream listed;
  const char* list[] = {"token", "list", "--tokens", file.c_str()};
  REQUIRE(approvals_token_main(4, list, listed, err) == 0);
  CHECK(listed.str() == "bob\n");
  const char* bad[] = {"token", "add", "no/slash", "--tokens", file.c_str()};
  CHECK(approvals_token_main(5, bad, out, err) == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("approvals web: sessions, CSRF and origins", "[approvals][http]") {
  WebSessions sessions;
  const TokenHash h = hash_token("t");
  auto s = sessions.create("alice", h, 1'000);
  REQUIRE(s.ok());
  CHECK(s.value().cookie.size() == 64);
  CHECK(s.value().csrf.size() == 64);
  auto found = sessions.find(s.value().cookie, 2'000);
  REQUIRE(found);
  CHECK(found->name == "alice");
  CHECK(csrf_matches(*found, s.value().csrf));
  CHECK_FALSE(csrf_matches(*found, ""));
  std::string wrong = s.value().csrf;
  wrong[63] = wrong[63] == '0' ? '1' : '0';
  CHECK_FALSE(csrf_matches(*found, wrong));
  CHECK_FALSE(sessions.find("", 2'000));
  CHECK_FALSE(sessions.find(s.value().csrf, 2'000));
  // Idle for 30 minutes: gone.
  CHECK_FALSE(sessions.find(s.value().cookie, 2'000 + WebSessions::kIdleNs));
  auto s2 = sessions.create("bob", h, 5'000);
  sessions.end(s2.value().cookie);
  CHECK_FALSE(sessions.find(s2.value().cookie, 6'000));
  for (size_t i = 0; i < WebSessions::kMaxSessions + 5; ++i)
    (void)sessions.create("x", h, 7'000 + i);
  CHECK(sessions.size() == WebSessions::kMaxSessions);

  CHECK(cookie_value("a=1; dbw_session=abc; b=2", "dbw_session") == "abc");
  CHECK(cookie_value("xdbw_session=abc", "dbw_session") == "");

  auto o = OriginPolicy::Make("127.0.0.1", 9978, false, "").value();
  CHECK(o.host_ok("127.0.0.1:9978"));
  CHECK(o.host_ok("localhost:9978"));
  CHECK_FALSE(o.host_ok("evil.example:9978"));  // DNS rebinding
  CHECK_FALSE(o.host_ok(""));
  CHECK(o.check_write("http://127.0.0.1:9978", "same-origin", true).empty());
  CHECK(o.check_write("", "", false).empty());  // an API client (curl)
  CHECK_FALSE(o.check_write("", "", true).empty());
  CHECK_FALSE(o.check_write("https://evil.example", "", false).empty());
  CHECK_FALSE(o.check_write("http://127.0.0.1:9978", "cross-site", true).empty());
  auto v6 = OriginPolicy::Make("::1", 443, true, "").value();
  CHECK(v6.host_ok("[::1]"));
  CHECK(v6.check_write("https://[::1]:443", "", true).empty());
  CHECK(v6.check_write("https://[::1]", "", true).empty());  // browsers leave out :443
  CHECK(v6.host_ok("[::1]:443"));
  auto named = OriginPolicy::Make("0.0.0.0", 9978, true, "https://DB1.example.com:9978/");
  REQUIRE(named.ok());
  CHECK(named.value().host_ok("db1.example.com:9978"));
  CHECK_FALSE(named.value().host_ok("127.0.0.1:9978"));
  CHECK_FALSE(OriginPolicy::Make("0.0.0.0", 9978, false, "").ok());
  CHECK_FALSE(OriginPolicy::Make("127.0.0.1", 9978, false, "ftp://x").ok());
}

TEST_CASE("approvals API: list, show, approve, deny by token, refusals recorded",
          "[approvals][http]") {
  Fixture f;
  const uint64_t id = f.broker.submit(spec(1000), 0).value();

  auto none = f.call("GET", "/api/requests");
  CHECK(none.status == 401);
  CHECK(header(none, "WWW-Authenticate").rfind("Bearer", 0) == 0);
  auto wrong = f.call("GET", "/api/requests", "dbwa_guess");
  CHECK(wrong.status == 401);
  REQUIRE(f.events.refusals.size() == 2);
  CHECK(f.events.refusals[0] == "api||GET /api/requests from 127.0.0.1: no token");
  CHECK(f.events.refusals[1] == "api||GET /api/requests from 127.0.0.1: wrong token");

  auto list = f.call("GET", "/api/requests", kAlice);
  REQUIRE(list.status == 200);
  auto j = nlohmann::json::parse(list.body);
  REQUIRE(j.size() == 1);
  CHECK(j[0]["id"] == id);
  CHECK(j[0]["statement"] == "DELETE FROM t WHERE id = ?");
  CHECK(j[0]["who"]["uid"] == 1000);
  CHECK(j[0]["who"]["executable"] == "/usr/bin/psql");
  CHECK(header(list, "Content-Security-Policy").rfind("default-src 'self'", 0) == 0);
  CHECK(f.call("GET", "/api/requests/" + std::to_string(id), kAlice).status == 200);
  CHECK(f.call("GET", "/api/requests/99", kAlice).status == 404);

  // Outside the rule's groups.
  auto outsider =
      f.call("POST", "/api/requests/" + std::to_string(id) + "/approve", "dbwa_mallory");
  CHECK(outsider.status == 403);
  CHECK(outsider.body.find("not an approver") != std::string::npos);
  CHECK(f.events.refusals.back().rfind("api|mallory|POST /api/requests/1/approve", 0) == 0);
  // Bad bodies.
  CHECK(f.call("POST", "/api/requests/1/approve", kAlice, "[1]").status == 400);
  CHECK(f.call("POST", "/api/requests/1/approve", kAlice, R"({"for":"soon"})").status == 400);
  CHECK(f.call("POST", "/api/requests/1/deny", kAlice, R"({"reason":""})").status == 403);

  auto ok =
      f.call("POST", "/api/requests/1/approve", kAlice, R"({"reason":"ticket 7","for":"30m"})");
  REQUIRE(ok.status == 200);
  CHECK(nlohmann::json::parse(ok.body)["state"] == "approved");
  CHECK(f.broker.state(id, nullptr) == State::kApproved);
  CHECK(f.broker.granted(0, "", 3'000'000'000ull));
  // The same request again: a replay, refused and recorded.
  auto replay = f.call("POST", "/api/requests/1/approve", kAlice, R"({"reason":"ticket 7"})");
  CHECK(replay.status == 409);
  CHECK(f.events.refusals.back().find("is already approved") != std::string::npos);
  auto history = nlohmann::json::parse(f.call("GET", "/api/history", kAlice).body);
  REQUIRE(history.size() == 1);
  CHECK(history[0]["event"] == "approved");
  CHECK(history[0]["by"] == "alice");
  CHECK(history[0]["channel"] == "api");
  CHECK(history[0]["grant_seconds"] == 1800);

  const uint64_t id2 = f.broker.submit(spec(1000), 0).value();
  auto denied = f.call("POST", "/api/requests/" + std::to_string(id2) + "/deny", kNobody,
                       R"({"reason":"not now"})");
  CHECK(denied.status == 200);
  std::string reason;
  CHECK(f.broker.state(id2, &reason) == State::kDenied);
  CHECK(reason == "not now");
}

TEST_CASE("approvals API: nobody decides their own request, by token either", "[approvals][http]") {
  Fixture f;
  // Requested by a process of uid 1 (daemon in every passwd database).
  const uint64_t id = f.broker.submit(spec(1), 0).value();
  auto self = f.call("POST", "/api/requests/" + std::to_string(id) + "/approve", kDaemon, "{}");
  CHECK(self.status == 403);
  CHECK(self.body.find("nobody decides their own request") != std::string::npos);
  CHECK(f.events.refusals.back().rfind("api|daemon|", 0) == 0);
  CHECK(f.broker.state(id, nullptr) == State::kPending);
  CHECK(f.call("POST", "/api/requests/" + std::to_string(id) + "/approve", kNobody, "{}").status ==
        200);
}

TEST_CASE("approvals API: cross-site requests are refused before anything else",
          "[approvals][http]") {
  Fixture f;
  const uint64_t id = f.broker.submit(spec(1000), 0).value();
  HttpRequest r;
  r.method = "POST";
  r.path = "/api/requests/" + std::to_string(id) + "/approve";
  r.host = "127.0.0.1:9978";
  r.authorization = std::string("Bearer ") + kAlice;
  r.content_type = "application/json";
  r.origin = "https://evil.example";
  r.body = "{}";
  CHECK(f.api.handle(r, 1).status == 403);
  CHECK(f.events.refusals.back().find("cross-site request (Origin https://evil.example)") !=
        std::string::npos);
  r.origin = "";
  r.sec_fetch_site = "cross-site";
  CHECK(f.api.handle(r, 1).status == 403);
  r.sec_fetch_site = "";
  r.content_type = "text/plain";  // what a cross-site form can send without a preflight
  CHECK(f.api.handle(r, 1).status == 415);
  r.content_type = "application/json";
  r.host = "evil.example:9978";
  CHECK(f.api.handle(r, 1).status == 421);
  CHECK(f.broker.state(id, nullptr) == State::kPending);
}

TEST_CASE("approvals inbox: login, CSRF-bound decisions, logout ends replays",
          "[approvals][http]") {
  Fixture f;
  const uint64_t id = f.broker.submit(spec(1000), 0).value();
  auto page = f.call("GET", "/");
  REQUIRE(page.status == 200);
  CHECK(page.content_type.rfind("text/html", 0) == 0);
  CHECK(page.body.find("<script src=\"/inbox.js\"") != std::string::npos);
  CHECK(page.body.find("<script>") == std::string::npos);  // nothing inline
  CHECK(page.body.find("style=") == std::string::npos);
  CHECK(f.call("GET", "/inbox.js").content_type.rfind("text/javascript", 0) == 0);
  CHECK(f.call("GET", "/inbox.css").status == 200);
  CHECK(f.call("GET", "/secret").status == 404);
  CHECK(f.call("GET", "/api/session").status == 401);

  HttpRequest login;
  login.method = "POST";
  login.path = "/api/login";
  login.host = "127.0.0.1:9978";
  login.origin = kOrigin;
  login.content_type = "application/json";
  login.body = R"({"token":"dbwa_nope"})";
  CHECK(f.api.handle(login, 1).status == 401);
  CHECK(f.events.refusals.back() == "web||POST /api/login from : wrong token");
  login.body = std::string(R"({"token":")") + kNobody + "\"}";
  auto in = f.api.handle(login, 1);
  REQUIRE(in.status == 200);
  const std::string set_cookie = header(in, "Set-Cookie");
  CHECK(set_cookie.find("HttpOnly") != std::string::npos);
  CHECK(set_cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(set_cookie.find("Secure") == std::string::npos);  // plain HTTP
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  const std::string csrf = nlohmann::json::parse(in.body)["csrf"];

  HttpRequest approve = login;
  approve.path = "/api/requests/" + std::to_string(id) + "/approve";
  approve.cookie = cookie;
  approve.body = R"({"reason":"looked at it"})";
  CHECK(f.api.handle(approve, 2).status == 403);  // no CSRF token
  CHECK(f.events.refusals.back().find("web|nobody|") == 0);
  CHECK(f.events.refusals.back().find("missing or wrong CSRF token") != std::string::npos);
  approve.csrf = csrf;
  approve.origin = "";
  CHECK(f.api.handle(approve, 2).status == 403);  // a browser always sends Origin
  approve.origin = kOrigin;
  CHECK(f.api.handle(approve, 2).status == 200);
  CHECK(f.broker.state(id, nullptr) == State::kApproved);
  CHECK(f.history.recent().front().channel == "web");

  const uint64_t id2 = f.broker.submit(spec(1000), 0).value();
  HttpRequest logout = approve;
  logout.path = "/api/logout";
  logout.body = "{}";
  CHECK(f.api.handle(logout, 3).status == 200);
  HttpRequest replay = approve;
  replay.path = "/api/requests/" + std::to_string(id2) + "/approve";
  auto refused = f.api.handle(replay, 4);
  CHECK(refused.status == 401);
  CHECK(f.events.refusals.back().find("the session has ended") != std::string::npos);
  CHECK(f.broker.state(id2, nullptr) == State::kPending);
}

TEST_CASE("approvals API: a flood of refusals is recorded at a bounded rate", "[approvals][http]") {
  Fixture f;
  for (int i = 0; i < 200; ++i) f.call("GET", "/api/requests", "dbwa_guess");
  CHECK(f.events.refusals.size() == 50);
  CHECK(f.api.refusals_unrecorded() == 150);
  // Counted, every one, for dbwarden_approvals_refused_total{channel="api",reason=...}.
  dbwarden::metrics::ApprovalCounters c;
  f.refusals.snapshot(c);
  CHECK(c.refused[1][static_cast<size_t>(RefusalReason::kWrongToken)] == 200);
  CHECK(c.refused[0][static_cast<size_t>(RefusalReason::kWrongToken)] == 0);
}

TEST_CASE("approvals API settings: keys, defaults and the listen address",
          "[approvals][http][config]") {
  auto parse = [](std::vector<const char*> args) {
    args.insert(args.begin(), "run");
    std::ostringstream out;
    return parse_run_config(static_cast<int>(args.size()), args.data(), out);
  };
  auto d = parse({});
  REQUIRE(d.ok());
  CHECK(d.value()->approvals_tokens.empty());  // nothing served by default
  CHECK(d.value()->approvals_listen == "127.0.0.1:9978");
  auto c = parse({"--approvals-tokens", "/etc/t", "--approvals-listen", "[::1]:9443",
                  "--approvals-tls-cert-file", "/c", "--approvals-tls-key-file", "/k",
                  "--approvals-url", "https://db1:9443"});
  REQUIRE(c.ok());
  CHECK(c.value()->approvals_tokens == "/etc/t");
  CHECK(c.value()->approvals_listen == "[::1]:9443");
  CHECK(c.value()->approvals_tls_key_file == "/k");
  CHECK(c.value()->approvals_url == "https://db1:9443");
  auto half = parse({"--approvals-tokens", "/etc/t", "--approvals-tls-cert-file", "/c"});
  REQUIRE_FALSE(half.ok());
  CHECK(half.status().message().find("go together") != std::string::npos);
  CHECK_FALSE(parse({"--approvals-url", "https://db1"}).ok());  // without tokens: nothing to serve

  std::string host;
  uint16_t port = 0;
  REQUIRE(split_listen_address("[::1]:9443", &host, &port).ok());
  CHECK(host == "::1");
  CHECK(port == 9443);
  REQUIRE(split_listen_address("127.0.0.1:9978", &host, &port).ok());
  CHECK(host == "127.0.0.1");
  CHECK_FALSE(split_listen_address("::1:9443", &host, &port).ok());
  CHECK_FALSE(split_listen_address("127.0.0.1:0", &host, &port).ok());
  CHECK_FALSE(split_listen_address("127.0.0.1", &host, &port).ok());
  CHECK_FALSE(split_listen_address("[::1:9443", &host, &port).ok());
}

TEST_CASE("approvals API: a request's blast radius, as the inbox renders it", "[approvals][http]") {
  Fixture f;
  RequestSpec s = spec(1000);
  s.blast_rows = 42;
  s.blast_via = "explain on the client's session";
  const uint64_t id = f.broker.submit(s, 0).value();
  RequestSpec t = spec(1000);
  t.blast_unavailable = "the session is inside a transaction";
  const uint64_t id2 = f.broker.submit(t, 0).value();
  const uint64_t id3 = f.broker.submit(spec(1000), 0).value();
  const auto get = [&](uint64_t n) {
    return nlohmann::json::parse(f.call("GET", "/api/requests/" + std::to_string(n), kAlice).body);
  };
  CHECK(get(id)["blast_radius"] ==
        nlohmann::json({{"rows", 42}, {"via", "explain on the client's session"}}));
  CHECK(get(id2)["blast_radius"] ==
        nlohmann::json({{"unavailable", "the session is inside a transaction"}}));
  CHECK_FALSE(get(id3).contains("blast_radius"));
}
