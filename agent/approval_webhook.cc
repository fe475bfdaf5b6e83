// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "agent/approval_blast.h"
#include "agent/log.h"
#include "agent/version.h"
#include "audit/json_escape.h"
#include "audit/record.h"
#include "common/read_file.h"

namespace dbwarden::agent {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000ull;
constexpr size_t kMinSecretBytes = 16;
constexpr size_t kMaxSecretBytes = 4096;
constexpr size_t kTextStatementBytes = 600;  // in the chat message; the field has more

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t unix_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// The first `max` bytes of `s`, not cutting a UTF-8 sequence in two.
std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// Slack's mrkdwn: &, < and > are its control characters (api.slack.com, "Formatting text
// for app surfaces", escaping); a ``` inside a statement would end its code block early.
std::string slack_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '`' && s.substr(i, 3) == "```") {
      out += "'''";
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string duration_text(uint64_t ns) {
  const uint64_t s = ns / kNsPerSecond;
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

void field(const char* key, std::string_view value, std::string& out) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
  audit::append_json_string(value, out);
}

void number(const char* key, int64_t value, std::string& out) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
  out.append(std::to_string(value));
}

std::string who_text(const approvals::Requester& w) {
  std::string s = "*" + slack_escape(w.db_user) + "@" + slack_escape(w.database) + "*";
  std::string detail;
  auto add = [&](const std::string& part) { detail += (detail.empty() ? "" : ", ") + part; };
  if (!w.application_name.empty()) add(slack_escape(w.application_name));
  if (w.pid != 0) {
    add((w.executable.empty() ? std::string("pid ") : slack_escape(w.executable) + " pid ") +
        std::to_string(w.pid));
    add("uid " + std::to_string(w.uid));
    if (w.login_uid != approvals::kUnknownId) add("login uid " + std::to_string(w.login_uid));
  }
  if (!w.client_address.empty()) add("from " + slack_escape(w.client_address));
  return detail.empty() ? s : s + " (" + detail + ")";
}

std::string slack_text(const approvals::Event& e, std::string_view host) {
  const approvals::RequestSpec& r = *e.request;
  const std::string id = std::to_string(e.id);
  std::string t = "*dbwarden*: approval request " + id + " on `" + slack_escape(host) + "`\n";
  t += who_text(r.who) + " wants to run " + (r.operation.empty() ? "a statement" : r.operation) +
       ", held by rule *" + slack_escape(r.rule) + "*:\n```" +
       slack_escape(utf8_prefix(r.text, kTextStatementBytes)) +
       (r.text.size() > kTextStatementBytes ? " ..." : "") + "```\n";
  if (has_blast_radius(r)) t += "Blast radius: " + slack_escape(blast_line(r)) + "\n";
  t += "Needs " + std::to_string(r.approvals) + " approval" + (r.approvals == 1 ? "" : "s") +
       " within " + duration_text(r.timeout_ns) + ", else it is denied. `dbwarden approvals show " +
       id + "`, `dbwarden approvals approve " + id + "`, `dbwarden approvals deny " + id +
       " --reason ...`";
  return t;
}

size_t discard_body(char* /*data*/, size_t size, size_t n, void* /*user*/) { return size * n; }

int abort_when_stopping(void* stop, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(stop)->load(std::memory_order_relaxed) ? 1 : 0;
}

// Where the notification goes, without its path or credentials: a Slack webhook URL's path
// is its secret, and the agent's log is not the place for it.
std::string url_origin(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "(no scheme)";
  size_t end = url.find_first_of("/?#", scheme + 3);
  std::string origin = url.substr(0, end);
  if (const size_t at = origin.find('@', scheme + 3); at != std::string::npos) {
    origin.erase(scheme + 3, at + 1 - (scheme + 3));  // user:password@
  }
  return origin;
}

}  // namespace

uint64_t webhook_retry_delay_ns(uint32_t failed, const WebhookOptions& o) {
  uint64_t d = o.first_retry_ns;
  for (uint32_t i = 1; i < failed && d < o.max_retry_ns; ++i) d *= 2;
  return std::min(d, o.max_retry_ns);
}

std::string webhook_payload(const approvals::Event& e, std::string_view host,
                            int64_t requested_unix_ns) {
  const approvals::RequestSpec& r = *e.request;
  std::string out = "{\"text\":";
  audit::append_json_string(slack_text(e, host), out);
  field("event", "approval_requested", out);
  number("request_id", static_cast<int64_t>(e.id), out);
  field("host", host, out);
  field("rule", r.rule, out);
  field("operation", r.operation, out);
  const std::string_view text = utf8_prefix(r.text, kWebhookMaxStatementBytes);
  field("statement", text, out);
  out.append(",\"statement_truncated\":");
  out.append(text.size() < r.text.size() ? "true" : "false");
  char fp[17];
  snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(r.fingerprint));
  field("fingerprint", fp, out);
  number("approvals_needed", r.approvals, out);
  out.append(",\"approvers\":[");
  for (size_t i = 0; i < r.approvers.size(); ++i) {
    if (i != 0) out.push_back(',');
    audit::append_json_string(r.approvers[i], out);
  }
  out.push_back(']');
  number("timeout_seconds", static_cast<int64_t>(r.timeout_ns / kNsPerSecond), out);
  if (const std::string blast = blast_json(r); !blast.empty()) {
    out.append(",\"blast_radius\":");
    out.append(blast);
  }
  std::string at;
  audit::append_rfc3339_nanos(requested_unix_ns, at);
  field("requested_at", at, out);
  at.clear();
  audit::append_rfc3339_nanos(requested_unix_ns + static_cast<int64_t>(r.timeout_ns), at);
  field("expires_at", at, out);
  const approvals::Requester& w = r.who;
  out.append(",\"requester\":{\"db_user\":");
  audit::append_json_string(w.db_user, out);
  field("database", w.database, out);
  if (!w.application_name.empty()) field("application_name", w.application_name, out);
  if (!w.client_address.empty()) field("client_address", w.client_address, out);
  if (w.pid != 0) {
    number("pid", w.pid, out);
    field("executable", w.executable, out);
    number("uid", w.uid, out);
    if (w.login_uid != approvals::kUnknownId) number("login_uid", w.login_uid, out);
  }
  out.append("}}");
  return out;
}

std::string webhook_signature(std::string_view secret, std::string_view timestamp,
                              std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).push_back('.');
  message.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

Result<std::string> load_webhook_secret(const std::string& path) {
  if (access(path.c_str(), R_OK) != 0) {
    return Status::Error("approvals-webhook-secret-file: cannot read " + path);
  }
  std::string s = read_whole_file(path, kMaxSecretBytes + 3);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() < kMinSecretBytes || s.size() > kMaxSecretBytes) {
    return Status::Error("approvals-webhook-secret-file: " + path + " must hold " +
                         std::to_string(kMinSecretBytes) + " to " +
                         std::to_string(kMaxSecretBytes) + " bytes");
  }
  return s;
}

ApprovalWebhook::ApprovalWebhook(WebhookOptions options, approvals::EventSink* records)
    : options_(std::move(options)), records_(records) {}

ApprovalWebhook::~ApprovalWebhook() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
  if (!queue_.empty()) {
    // Their requests were denied as the agent stopped: nobody needs to hear of them now.
    DBW_LOG(kInfo, "approvals webhook: %zu notification(s) not delivered at stop", queue_.size());
  }
}

Status ApprovalWebhook::start() {
  const std::string& u = options_.url;
  if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
    return Status::Error("approvals-webhook-url must start with http:// or https://");
  }
  // Once, before any thread uses libcurl (curl_global_init is not thread-safe everywhere).
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global != CURLE_OK) {
    return Status::Error(std::string("approvals webhook: libcurl: ") + curl_easy_strerror(global));
  }
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::Error("approvals webhook: libcurl: no easy handle");
  curl_ = h;
  curl_easy_setopt(h, CURLOPT_URL, u.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we are threaded
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_when_stopping);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &stop_);
  const std::string agent = std::string("dbwarden/") + kVersion;
  curl_easy_setopt(h, CURLOPT_USERAGENT, agent.c_str());  // copied by libcurl
  thread_ = std::thread([this] { run(); });
  DBW_LOG(kInfo, "approvals webhook: new requests are posted to %s%s", url_origin(u).c_str(),
          options_.secret.empty() ? "" : " (signed)");
  return Status::Ok();
}

void ApprovalWebhook::on_approval_event(const approvals::Event& e) {
  if (e.request == nullptr) return;
  if (e.kind != "requested") {
    if (e.state == approvals::State::kPending) return;  // one approval of several
    // Decided: a notification still waiting is moot.
    std::lock_guard<std::mutex> lock(mu_);
    if (e.id == in_flight_) in_flight_decided_ = true;
    auto it =
        std::find_if(queue_.begin(), queue_.end(), [&](const Item& i) { return i.id == e.id; });
    if (it == queue_.end()) return;
    Item item = std::move(*it);
    queue_.erase(it);
    ++stats_.decided_first;
    if (item.attempts != 0) {
      record(item, "notify_failed",
             "the request was " + std::string(approvals::state_name(e.state)) +
                 " before the webhook accepted it (" + std::to_string(item.attempts) +
                 " failed attempt" + (item.attempts == 1 ? ")" : "s)"));
    }
    return;
  }
  Item item;
  item.id = e.id;
  item.body = webhook_payload(e, options_.host, unix_ns());
  // The records name the rule and the requester; the statement (up to max-query-bytes) is
  // in the body already and is not copied again.
  item.spec.rule = e.request->rule;
  item.spec.operation = e.request->operation;
  item.spec.fingerprint = e.request->fingerprint;
  item.spec.who = e.request->who;
  const uint64_t now = mono_ns();
  item.due_ns = now;
  item.deadline_ns = (e.created_ns != 0 ? e.created_ns : now) + e.request->timeout_ns;
  std::unique_lock<std::mutex> lock(mu_);
  if (queue_.size() >= options_.max_queued) {
    ++stats_.dropped;
    record(item, "notify_failed",
           "webhook queue full (" + std::to_string(options_.max_queued) + " waiting)");
    return;
  }
  queue_.push_back(std::move(item));
  lock.unlock();
  wake_.notify_one();
}

WebhookStats ApprovalWebhook::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  WebhookStats s = stats_;
  s.queued = queue_.size();
  return s;
}

void ApprovalWebhook::record(const Item& item, const char* kind, std::string reason) {
  if (records_ == nullptr) return;
  approvals::Event e;
  e.kind = kind;
  e.id = item.id;
  e.rule = item.spec.rule;
  e.reason = std::move(reason);
  e.channel = "webhook";
  e.request = &item.spec;
  records_->on_approval_event(e);
}

void ApprovalWebhook::finish(const Item& item, const char* kind, std::string reason) {
  if (std::string_view(kind) == "notified") {
    ++stats_.delivered;
  } else {
    ++stats_.gave_up;
    DBW_LOG(kWarning, "approvals webhook: request %llu not notified: %s",
            static_cast<unsigned long long>(item.id), reason.c_str());
  }
  record(item, kind, std::move(reason));
}

ApprovalWebhook::Attempt ApprovalWebhook::post(const std::string& body) {
  CURL* h = static_cast<CURL*>(curl_);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (!options_.secret.empty()) {
    const std::string ts = std::to_string(unix_ns() / 1'000'000'000);
    headers = curl_slist_append(headers, ("X-Dbwarden-Timestamp: " + ts).c_str());
    headers = curl_slist_append(
        headers, ("X-Dbwarden-Signature: " + webhook_signature(options_.secret, ts, body)).c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  Attempt a;
  if (rc != CURLE_OK) {
    a.what = error[0] != '\0' ? error : curl_easy_strerror(rc);
    return a;
  }
  a.what = "HTTP " + std::to_string(status);
  a.ok = status >= 200 && status < 300;
  a.permanent = status >= 400 && status < 500 && status != 408 && status != 425 && status != 429;
  return a;
}

void ApprovalWebhook::run() {
  pthread_setname_np(pthread_self(), "dbw-webhook");
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto next = std::min_element(queue_.begin(), queue_.end(),
                                 [](const Item& a, const Item& b) { return a.due_ns < b.due_ns; });
    const uint64_t now = mono_ns();
    if (next->due_ns > now) {
      wake_.wait_for(lock, std::chrono::nanoseconds(next->due_ns - now));
      continue;
    }
    Item item = std::move(*next);
    queue_.erase(next);
    in_flight_ = item.id;
    in_flight_decided_ = false;
    lock.unlock();
    const Attempt a = post(item.body);
    lock.lock();
    in_flight_ = 0;
    ++item.attempts;
    const std::string n = std::to_string(item.attempts);
    if (a.ok) {
      finish(item, "notified", a.what + " on attempt " + n);
      continue;
    }
    ++stats_.failures;
    if (stop_) break;
    if (in_flight_decided_) {
      ++stats_.decided_first;
      record(item, "notify_failed",
             "the request was decided before the webhook accepted it (" + n + " failed attempt" +
                 (item.attempts == 1 ? ")" : "s)") + ": " + a.what);
      continue;
    }
    const uint64_t after = mono_ns() + webhook_retry_delay_ns(item.attempts, options_);
    if (a.permanent) {
      finish(item, "notify_failed", a.what + " on attempt " + n + ": refused, not retried");
    } else if (item.attempts >= options_.max_attempts) {
      finish(item, "notify_failed", a.what + " on attempt " + n + ": gave up");
    } else if (after >= item.deadline_ns) {
      finish(item, "notify_failed",
             a.what + " on attempt " + n + ": the request times out before the next attempt");
    } else {
      DBW_LOG(kDebug, "approvals webhook: request %llu: %s on attempt %s, retried",
              static_cast<unsigned long long>(item.id), a.what.c_str(), n.c_str());
      item.due_ns = after;
      queue_.push_back(std::move(item));
    }
  }
}

}  // namespace dbwarden::agent
