// SPDX-License-Identifier: Apache-2.0
//
// The approvals webhook (agent/approval_webhook.h): its retry schedule, its body (the
// request's details and a Slack `text`), its signature, its bounded queue, and real
// deliveries with libcurl to an HTTP receiver on loopback that answers as the test says.
#include "agent/approval_webhook.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using dbwarden::agent::ApprovalWebhook;
using dbwarden::agent::WebhookOptions;
using dbwarden::approvals::Event;
using dbwarden::approvals::EventSink;
using dbwarden::approvals::RequestSpec;
using dbwarden::approvals::State;

constexpr uint64_t kMs = 1'000'000ull;
constexpr uint64_t kSecond = 1000 * kMs;

RequestSpec request() {
  RequestSpec s;
  s.rule = "big-deletes";
  s.text = "DELETE FROM accounts WHERE id = 7 AND note <> '<b>&'";
  s.operation = "DELETE";
  s.fingerprint = 0xabc;
  s.approvers = {"alice", "bob"};
  s.approvals = 2;
  s.timeout_ns = 600 * kSecond;
  s.who.db_user = "app";
  s.who.database = "shop";
  s.who.application_name = "psql";
  s.who.client_address = "127.0.0.1";
  s.who.pid = 4242;
  s.who.executable = "/usr/bin/psql";
  s.who.uid = 1000;
  s.who.login_uid = 1001;
  return s;
}

Event requested(uint64_t id, const RequestSpec& spec) {
  Event e;
  e.kind = "requested";
  e.id = id;
  e.rule = spec.rule;
  e.request = &spec;
  e.state = State::kPending;
  return e;
}

struct Records : EventSink {
  void on_approval_event(const Event& e) override {
    std::lock_guard<std::mutex> lock(mu);
    kinds.push_back(e.kind);
    reasons.push_back(e.reason);
    channels.push_back(e.channel);
    ids.push_back(e.id);
    users.push_back(e.request != nullptr ? e.request->who.db_user : "");
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return kinds.size();
  }
  std::mutex mu;
  std::vector<std::string> kinds, reasons, channels, users;
  std::vector<uint64_t> ids;
};

// A one-thread HTTP/1.1 server on 127.0.0.1: each connection gets one answer, the status
// taken from `statuses` in turn (the last one repeats), then "Connection: close".
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(listen(fd_, 16) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  struct Request {
    std::string head, body;
  };
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      close(c);
    }
  }
  void serve(int c) {
    std::string in;
    char buf[4096];
    size_t head_end = std::string::npos, want = 0;
    for (;;) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 5000) != 1) return;
      const ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        const size_t cl = in.find("Content-Length: ");
        want = cl < head_end ? std::stoul(in.substr(cl + 16)) : 0;
      }
      if (head_end != std::string::npos && in.size() >= head_end + 4 + want) break;
    }
    int status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back({in.substr(0, head_end), in.substr(head_end + 4, want)});
      status = statuses_[std::min(requests_.size(), statuses_.size()) - 1];
    }
    const std::string reply = "HTTP/1.1 " + std::to_string(status) +
                              " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    (void)!write(c, reply.data(), reply.size());
  }

  std::vector<int> statuses_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> requests_;
  std::thread thread_;
};

bool wait_for(const std::function<bool()>& done, int seconds = 20) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::string header(const std::string& head, const std::string& name) {
  const size_t at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  const size_t from = at + name.size() + 4;
  return head.substr(from, head.find("\r\n", from) - from);
}

}  // namespace

TEST_CASE("approvals webhook: retries wait 1 s, 2 s, 4 s ... up to the cap", "[approvals][agent]") {
  WebhookOptions o;
  CHECK(dbwarden::agent::webhook_retry_delay_ns(1, o) == 1 * kSecond);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(2, o) == 2 * kSecond);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(3, o) == 4 * kSecond);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(6, o) == 32 * kSecond);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(7, o) == 60 * kSecond);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(40, o) == 60 * kSecond);  // no overflow
  o.first_retry_ns = 250 * kMs;
  o.max_retry_ns = 900 * kMs;
  CHECK(dbwarden::agent::webhook_retry_delay_ns(1, o) == 250 * kMs);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(2, o) == 500 * kMs);
  CHECK(dbwarden::agent::webhook_retry_delay_ns(3, o) == 900 * kMs);
}

TEST_CASE("approvals webhook: the body has the request's details and a Slack text",
          "[approvals][agent]") {
  RequestSpec spec = request();
  spec.text += " /* ```rm``` */";
  // 2026-12-06T12:00:00Z
  const std::string body =
      dbwarden::agent::webhook_payload(requested(7, spec), "db1", 1796558400'000000000);
  const auto j = nlohmann::json::parse(body);
  CHECK(j["event"] == "approval_requested");
  CHECK(j["request_id"] == 7);
  CHECK(j["host"] == "db1");
  CHECK(j["rule"] == "big-deletes");
  CHECK(j["operation"] == "DELETE");
  CHECK(j["statement"] == spec.text);
  CHECK(j["statement_truncated"] == false);
  CHECK(j["fingerprint"] == "0000000000000abc");
  CHECK(j["approvals_needed"] == 2);
  CHECK(j["approvers"] == nlohmann::json::array({"alice", "bob"}));
  CHECK(j["timeout_seconds"] == 600);
  CHECK(j["requested_at"] == "2026-12-06T12:00:00.000000000Z");
  CHECK(j["expires_at"] == "2026-12-06T12:10:00.000000000Z");
  const auto& r = j["requester"];
  CHECK(r["db_user"] == "app");
  CHECK(r["database"] == "shop");
  CHECK(r["application_name"] == "psql");
  CHECK(r["client_address"] == "127.0.0.1");
  CHECK(r["pid"] == 4242);
  CHECK(r["executable"] == "/usr/bin/psql");
  CHECK(r["uid"] == 1000);
  CHECK(r["login_uid"] == 1001);
  const std::string text = j["text"];
  CHECK(text.find("approval request 7 on `db1`") != std::string::npos);
  CHECK(text.find("*app@shop* (psql, /usr/bin/psql pid 4242, uid 1000, login uid 1001, from "
                  "127.0.0.1)") != std::string::npos);
  CHECK(text.find("rule *big-deletes*") != std::string::npos);
  // Slack's control characters are escaped in the text, never in the statement field.
  CHECK(text.find("note &lt;&gt; '&lt;b&gt;&amp;'") != std::string::npos);
  // A ``` inside the statement would close the message's code block early.
  CHECK(text.find("/* '''rm''' */```") != std::string::npos);
  CHECK(text.find("Needs 2 approvals within 10m") != std::string::npos);
  CHECK(text.find("dbwarden approvals approve 7") != std::string::npos);
}

TEST_CASE(
    "approvals webhook: a long statement is cut whole characters short, hostile bytes "
    "stay valid JSON",
    "[approvals][agent]") {
  RequestSpec spec = request();
  spec.text = std::string(dbwarden::agent::kWebhookMaxStatementBytes - 1, 'x') + "\xc3\xa9" +
              std::string(100, 'y') + "```\xff\x01\"";
  spec.who.pid = 0;  // from elsewhere: no process fields
  const auto j =
      nlohmann::json::parse(dbwarden::agent::webhook_payload(requested(1, spec), "h", 0));
  CHECK(j["statement_truncated"] == true);
  CHECK(j["statement"] == std::string(dbwarden::agent::kWebhookMaxStatementBytes - 1, 'x'));
  CHECK_FALSE(j["requester"].contains("pid"));
  CHECK_FALSE(j["requester"].contains("uid"));
  const std::string text = j["text"];
  size_t fences = 0;
  for (size_t at = text.find("```"); at != std::string::npos; at = text.find("```", at + 3)) {
    ++fences;
  }
  CHECK(fences == 2);                                                        // one code block
  CHECK(text.find(std::string(600, 'x') + " ...```") != std::string::npos);  // cut shorter
}

TEST_CASE("approvals webhook: the signature is HMAC-SHA-256 of timestamp.body",
          "[approvals][agent]") {
  // Python: hmac.new(b"0123456789abcdef-secret", b'1765000000.{"a":1}', "sha256").hexdigest()
  CHECK(dbwarden::agent::webhook_signature("0123456789abcdef-secret", "1765000000", "{\"a\":1}") ==
        "sha256=c705c3a9ecf102a3e353a81ac60250d034bed2c9b10649b244185f7cd907693f");
}

TEST_CASE("approvals webhook: a full queue drops the notification, counted and recorded",
          "[approvals][agent]") {
  Records records;
  WebhookOptions o;
  o.url = "http://127.0.0.1:9/never-started";
  o.max_queued = 2;
  ApprovalWebhook hook(o, &records);  // not started: requests only queue
  const RequestSpec spec = request();
  for (uint64_t id = 1; id <= 5; ++id) hook.on_approval_event(requested(id, spec));
  const auto s = hook.stats();
  CHECK(s.queued == 2);
  CHECK(s.dropped == 3);
  CHECK(s.delivered == 0);
  REQUIRE(records.kinds ==
          std::vector<std::string>{"notify_failed", "notify_failed", "notify_failed"});
  CHECK(records.ids == std::vector<uint64_t>{3, 4, 5});
  CHECK(records.reasons[0] == "webhook queue full (2 waiting)");
  CHECK(records.channels[0] == "webhook");
  CHECK(records.users[0] == "app");  // the record names the requester

  // A request decided before its notification went out is not notified any more; an
  // approval of several (still pending) changes nothing.
  Event partial = requested(1, spec);
  partial.kind = "approved";
  hook.on_approval_event(partial);
  CHECK(hook.stats().queued == 2);
  Event decided = partial;
  decided.state = State::kApproved;
  hook.on_approval_event(decided);
  CHECK(hook.stats().queued == 1);
  CHECK(hook.stats().decided_first == 1);
  CHECK(records.size() == 3);  // never attempted: nothing failed
}

TEST_CASE("approvals webhook: retried after failures until the receiver takes it, signed",
          "[approvals][agent]") {
  Receiver receiver({503, 500, 200});
  Records records;
  WebhookOptions o;
  o.url = receiver.url();
  o.secret = "0123456789abcdef-secret";
  o.host = "db1";
  o.first_retry_ns = 20 * kMs;
  ApprovalWebhook hook(o, &records);
  REQUIRE(hook.start().ok());
  const RequestSpec spec = request();
  Event e = requested(7, spec);
  hook.on_approval_event(e);
  REQUIRE(wait_for([&] { return records.size() == 1; }));
  CHECK(records.kinds[0] == "notified");
  CHECK(records.reasons[0] == "HTTP 200 on attempt 3");
  CHECK(records.channels[0] == "webhook");
  CHECK(records.ids[0] == 7);
  const auto s = hook.stats();
  CHECK(s.failures == 2);
  CHECK(s.delivered == 1);
  CHECK(s.gave_up == 0);
  CHECK(s.queued == 0);
  const auto got = receiver.requests();
  REQUIRE(got.size() == 3);
  CHECK(got[0].body == got[2].body);  // the same notification each time
  const auto j = nlohmann::json::parse(got[2].body);
  CHECK(j["request_id"] == 7);
  CHECK(got[2].head.rfind("POST /hook HTTP/1.1\r\n", 0) == 0);
  CHECK(header(got[2].head, "Content-Type") == "application/json");
  const std::string ts = header(got[2].head, "X-Dbwarden-Timestamp");
  REQUIRE_FALSE(ts.empty());
  CHECK(std::abs(std::stoll(ts) - static_cast<long long>(time(nullptr))) < 60);
  CHECK(header(got[2].head, "X-Dbwarden-Signature") ==
        dbwarden::agent::webhook_signature(o.secret, ts, got[2].body));
}

TEST_CASE("approvals webhook: a refusal (4xx) is not retried, a deadline ends the retries",
          "[approvals][agent]") {
  const RequestSpec spec = request();
  SECTION("400") {
    Receiver receiver({400});
    Records records;
    WebhookOptions o;
    o.url = receiver.url();
    o.first_retry_ns = 10 * kMs;
    ApprovalWebhook hook(o, &records);
    REQUIRE(hook.start().ok());
    hook.on_approval_event(requested(3, spec));
    REQUIRE(wait_for([&] { return records.size() == 1; }));
    CHECK(records.kinds[0] == "notify_failed");
    CHECK(records.reasons[0] == "HTTP 400 on attempt 1: refused, not retried");
    CHECK(hook.stats().failures == 1);
    CHECK(hook.stats().gave_up == 1);
    CHECK(receiver.requests().size() == 1);
  }
  SECTION("503 until the request's own timeout") {
    Receiver receiver({503});
    Records records;
    WebhookOptions o;
    o.url = receiver.url();
    o.first_retry_ns = 50 * kMs;
    o.max_attempts = 1000;
    ApprovalWebhook hook(o, &records);
    REQUIRE(hook.start().ok());
    RequestSpec quick = spec;
    quick.timeout_ns = 300 * kMs;
    hook.on_approval_event(requested(4, quick));
    REQUIRE(wait_for([&] { return records.size() == 1; }));
    CHECK(records.kinds[0] == "notify_failed");
    CHECK(records.reasons[0].find("the request times out before the next attempt") !=
          std::string::npos);
    CHECK(hook.stats().gave_up == 1);
    CHECK(hook.stats().failures >= 1);
    CHECK(hook.stats().failures == receiver.requests().size());
  }
  SECTION("nobody listens: at most max_attempts") {
    Records records;
    WebhookOptions o;
    {
      Receiver closed({200});  // a port that was just free: nothing listens after this
      o.url = closed.url();
    }
    o.first_retry_ns = 5 * kMs;
    o.max_attempts = 3;
    ApprovalWebhook hook(o, &records);
    REQUIRE(hook.start().ok());
    hook.on_approval_event(requested(5, spec));
    REQUIRE(wait_for([&] { return records.size() == 1; }));
    CHECK(records.kinds[0] == "notify_failed");
    CHECK(records.reasons[0].find("on attempt 3: gave up") != std::string::npos);
    CHECK(hook.stats().failures == 3);
  }
}

TEST_CASE("approvals webhook: only http and https URLs", "[approvals][agent]") {
  WebhookOptions o;
  o.url = "file:///etc/passwd";
  ApprovalWebhook hook(o, nullptr);
  CHECK_FALSE(hook.start().ok());
}

TEST_CASE("approvals webhook: the secret file holds 16 to 4096 bytes, its line end dropped",
          "[approvals][agent]") {
  char path[] = "/tmp/dbw-webhook-key-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  auto write_key = [&](const std::string& text) {
    REQUIRE(ftruncate(fd, 0) == 0);
    REQUIRE(pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
  };
  write_key("0123456789abcdef\n");
  auto k = dbwarden::agent::load_webhook_secret(path);
  REQUIRE(k.ok());
  CHECK(k.value() == "0123456789abcdef");
  write_key("too short\n");
  CHECK_FALSE(dbwarden::agent::load_webhook_secret(path).ok());
  write_key(std::string(4097, 'k'));
  CHECK_FALSE(dbwarden::agent::load_webhook_secret(path).ok());
  close(fd);
  unlink(path);
  auto gone = dbwarden::agent::load_webhook_secret(path);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.status().message().find("cannot read") != std::string::npos);
}

TEST_CASE("approvals webhook: the blast radius in the body and the Slack text",
          "[approvals][agent][blast]") {
  RequestSpec spec = request();
  spec.blast_rows = 1;
  spec.blast_via = "explain on the client's session";
  auto j = nlohmann::json::parse(dbwarden::agent::webhook_payload(requested(7, spec), "db1", 0));
  CHECK(j["blast_radius"] ==
        nlohmann::json({{"rows", 1}, {"via", "explain on the client's session"}}));
  CHECK(j["text"].get<std::string>().find(
            "Blast radius: about 1 row (explain on the client's session)\n") != std::string::npos);
  spec.blast_rows = -1;
  spec.blast_unavailable = "timed out <2 s>";
  j = nlohmann::json::parse(dbwarden::agent::webhook_payload(requested(7, spec), "db1", 0));
  CHECK(j["blast_radius"] == nlohmann::json({{"unavailable", "timed out <2 s>"}}));
  CHECK(j["text"].get<std::string>().find(
            "Blast radius: estimate unavailable: timed out &lt;2 s&gt;\n") != std::string::npos);
  spec.blast_unavailable.clear();
  j = nlohmann::json::parse(dbwarden::agent::webhook_payload(requested(7, spec), "db1", 0));
  CHECK_FALSE(j.contains("blast_radius"));
  CHECK(j["text"].get<std::string>().find("Blast radius") == std::string::npos);
}
