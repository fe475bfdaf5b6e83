// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_http.h"

#include <pwd.h>

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/approval_blast.h"
#include "agent/web_assets.h"
#include "audit/json_escape.h"
#include "policy/approval_keys.h"

namespace dbwarden::agent {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000ull;

// A JSON object written in one pass; values are escaped by the audit trail's escaper, so
// any bytes a statement holds come out as valid JSON.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_.push_back('{'); }
  JsonObject& str(std::string_view k, std::string_view v) {
    key(k);
    audit::append_json_string(v, out_);
    return *this;
  }
  JsonObject& num(std::string_view k, int64_t v) {
    key(k);
    out_ += std::to_string(v);
    return *this;
  }
  JsonObject& raw(std::string_view k, std::string_view v) {
    key(k);
    out_ += v;
    return *this;
  }
  void close() { out_.push_back('}'); }

 private:
  void key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    audit::append_json_string(k, out_);
    out_.push_back(':');
  }
  std::string& out_;
  bool first_ = true;
};

std::string json_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    audit::append_json_string(v[i], out);
  }
  return out + "]";
}

std::string user_name(int64_t uid) {
  if (uid == approvals::kUnknownId) return "";
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(static_cast<uid_t>(uid), &pw, buf, sizeof buf, &found) == 0 && found) {
    return found->pw_name;
  }
  return "";
}

// The approver behind a token: its name, and the passwd uid of that name, so the broker's
// own-request check sees the token owner as it sees a CLI caller.
approvals::Approver approver_for(const std::string& name, const char* channel) {
  approvals::Approver a;
  a.name = name;
  a.channel = channel;
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) == 0 && found) {
    a.uid = found->pw_uid;
    a.login_uid = found->pw_uid;
  }
  return a;
}

// The rest of the identity chain and the reviewer's details, where the broker's request
// carries them (the request-details work adds these fields; templates, so that each is
// compiled only where it exists).
template <typename Who>
void identity_details(const Who& w, JsonObject& o) {
  if constexpr (requires { w.client_port; }) {
    if (w.client_port != 0) o.num("client_port", w.client_port);
  }
  if constexpr (requires { w.command; }) {
    if (!w.command.empty()) o.str("command", w.command);
  }
  if constexpr (requires { w.unit; }) {
    if (!w.unit.empty()) o.str("unit", w.unit);
  }
  if constexpr (requires { w.container; }) {
    if (!w.container.empty()) o.str("container", w.container);
  }
}

template <typename Spec>
void request_details(const Spec& s, JsonObject& o) {
  if constexpr (requires { s.tables; }) o.raw("tables", json_strings(s.tables));
  if constexpr (requires { s.why; }) {
    if (!s.why.empty()) o.str("why", s.why);
  }
  if constexpr (requires { s.ran_before; }) {
    if (s.ran_before >= 0) o.raw("ran_before", s.ran_before ? "true" : "false");
  }
  if constexpr (requires { s.approved_before; }) o.num("approved_before", s.approved_before);
  if constexpr (requires { s.blast_rows; }) {
    if (const std::string blast = blast_json(s); !blast.empty()) o.raw("blast_radius", blast);
  }
}

std::string request_json(const approvals::RequestView& r, uint64_t now_ns) {
  std::string out;
  JsonObject o(out);
  char fp[17];
  std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(r.spec.fingerprint));
  o.num("id", static_cast<int64_t>(r.id))
      .str("state", approvals::state_name(r.state))
      .str("rule", r.spec.rule)
      .str("operation", r.spec.operation)
      .str("statement", r.spec.text)
      .str("fingerprint", fp)
      .num("waiting_seconds", static_cast<int64_t>((now_ns - r.created_ns) / kNsPerSecond))
      .num("timeout_in_seconds",
           static_cast<int64_t>(r.deadline_ns > now_ns ? (r.deadline_ns - now_ns) / kNsPerSecond
                                                       : 0))
      .num("approvals_needed", r.spec.approvals)
      .raw("approved_by", json_strings(r.approved_by))
      .raw("approvers", json_strings(r.spec.approvers));
  if (!r.decided_by.empty()) o.str("decided_by", r.decided_by);
  if (!r.reason.empty()) o.str("reason", r.reason);
  const approvals::Requester& w = r.spec.who;
  std::string who;
  JsonObject wo(who);
  wo.str("db_user", w.db_user).str("database", w.database);
  if (!w.application_name.empty()) wo.str("application_name", w.application_name);
  if (!w.client_address.empty()) wo.str("client_address", w.client_address);
  if (w.pid != 0) wo.num("pid", w.pid).str("executable", w.executable);
  if (w.uid != approvals::kUnknownId) wo.num("uid", w.uid).str("user", user_name(w.uid));
  if (w.login_uid != approvals::kUnknownId) {
    wo.num("login_uid", w.login_uid).str("login_user", user_name(w.login_uid));
  }
  identity_details(w, wo);
  wo.close();
  o.raw("who", who);
  request_details(r.spec, o);
  o.close();
  return out;
}

std::string error_json(std::string_view why) {
  std::string out;
  JsonObject(out).str("error", why).close();
  return out;
}

HttpResponse json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

constexpr std::string_view kRequests = "/api/requests/";

// The request id in /api/requests/ID[/verb]; 0 when the path names none.
uint64_t id_in_path(std::string_view path) {
  if (path.rfind(kRequests, 0) != 0) return 0;
  std::string_view rest = path.substr(kRequests.size());
  uint64_t id = 0;
  return parse_u64(rest.substr(0, rest.find('/')), id) ? id : 0;
}

// The headers every answer carries: the inbox runs its own files only, in no frame, and
// nothing is cached or sent on as a referrer.
void secure(HttpResponse& r, bool tls) {
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; script-src 'self'; style-src 'self'; "
                         "img-src 'self'; connect-src 'self'; object-src 'none'; "
                         "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
  if (tls) r.headers.emplace_back("Strict-Transport-Security", "max-age=31536000");
}

}  // namespace

ApprovalsHttp::ApprovalsHttp(approvals::Broker& broker, TokenFile& tokens,
                             ApprovalRefusals& refusals, const ApprovalHistory& history,
                             OriginPolicy origins, bool tls)
    : broker_(broker),
      tokens_(tokens),
      refusals_(refusals),
      history_(history),
      origins_(std::move(origins)),
      tls_(tls) {}

std::string ApprovalsHttp::session_cookie_name() const {
  // Under TLS the __Host- prefix: the browser keeps such a cookie only if it is Secure, for
  // Path=/ and this host alone.
  return tls_ ? "__Host-dbw_session" : "dbw_session";
}

uint64_t ApprovalsHttp::refusals_unrecorded() const { return refusals_.unrecorded(); }

HttpResponse ApprovalsHttp::handle(const HttpRequest& r, uint64_t now_ns) {
  HttpResponse out = route(r, now_ns);
  secure(out, tls_);
  return out;
}

HttpResponse ApprovalsHttp::refuse(int status, RefusalReason reason, const std::string& why,
                                   const HttpRequest& r, const std::string& by, const char* channel,
                                   uint64_t id, uint64_t now_ns) {
  if (id == 0) id = id_in_path(r.path);  // refused before the path was read: still named
  refusals_.refuse(channel, reason, id, by,
                   r.method + " " + r.path.substr(0, 200) + " from " + r.peer + ": " + why, now_ns);
  HttpResponse out = json(status, error_json(why));
  if (status == 401) out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"dbwarden\"");
  return out;
}

HttpResponse ApprovalsHttp::login(const HttpRequest& r, uint64_t now_ns) {
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("token") ||
      !body["token"].is_string()) {
    return refuse(400, RefusalReason::kBadRequest, "give {\"token\": \"...\"}", r, "", "web", 0,
                  now_ns);
  }
  auto owner = tokens_.find(body["token"].get<std::string>());
  if (!owner)
    return refuse(401, RefusalReason::kWrongToken, "wrong token", r, "", "web", 0, now_ns);
  auto s = sessions_.create(owner->name, owner->hash, now_ns);
  if (!s.ok()) return json(500, error_json(s.status().message()));
  HttpResponse out;
  JsonObject(out.body).str("name", owner->name).str("csrf", s.value().csrf).close();
  out.headers.emplace_back("Set-Cookie", session_cookie_name() + "=" + s.value().cookie +
                                             "; Path=/; HttpOnly; SameSite=Strict" +
                                             (tls_ ? "; Secure" : ""));
  return out;
}

HttpResponse ApprovalsHttp::decide(const HttpRequest& r, const Principal& p, uint64_t id,
                                   bool approve, uint64_t now_ns) {
  auto view = broker_.show(id);
  if (!view) {
    // The proxy forgets a request once it has acted on the decision; the history has not.
    if (const std::string kind = refusals_.decided_as(id); !kind.empty()) {
      return refuse(409, RefusalReason::kAlreadyDecided,
                    "request " + std::to_string(id) + " is already " + kind, r, p.name, p.channel,
                    id, now_ns);
    }
    return refuse(404, RefusalReason::kUnknownRequest, "no request " + std::to_string(id), r,
                  p.name, p.channel, id, now_ns);
  }
  if (view->state != approvals::State::kPending) {
    // A decided request decided again: a replay, or a second look too late.
    return refuse(409, RefusalReason::kAlreadyDecided,
                  "request " + std::to_string(id) + " is already " +
                      std::string(approvals::state_name(view->state)),
                  r, p.name, p.channel, id, now_ns);
  }
  auto body = nlohmann::json::parse(r.body.empty() ? std::string("{}") : r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return refuse(400, RefusalReason::kBadRequest, "the body must be a JSON object", r, p.name,
                  p.channel, id, now_ns);
  }
  std::string reason;
  if (body.contains("reason")) {
    if (!body["reason"].is_string()) {
      return refuse(400, RefusalReason::kBadRequest, "\"reason\" must be a string", r, p.name,
                    p.channel, id, now_ns);
    }
    reason = body["reason"].get<std::string>();
  }
  if (reason.size() > kMaxReasonBytes) {
    return refuse(400, RefusalReason::kBadRequest, "the reason is longer than 1000 bytes", r,
                  p.name, p.channel, id, now_ns);
  }
  uint64_t for_ms = 0;
  if (body.contains("for")) {
    const auto& f = body["for"];
    bool ok = false;
    if (f.is_string()) {
      ok = policy::parse_duration_ms(f.get<std::string>(), &for_ms);
    } else if (f.is_number_unsigned() &&
               f.get<uint64_t>() <= policy::kMaxApprovalTimeoutMs / 1000) {
      for_ms = f.get<uint64_t>() * 1000;
      ok = true;
    }
    if (!ok || for_ms < 1000 || !approve) {
      return refuse(400, RefusalReason::kBadRequest,
                    approve ? "\"for\" takes a duration such as \"90s\", \"30m\" or \"2h\", or "
                              "seconds"
                            : "\"for\" goes with approve only",
                    r, p.name, p.channel, id, now_ns);
    }
  }
  const approvals::Approver who = approver_for(p.name, p.channel);
  approvals::Refusal why = approvals::Refusal::kNone;
  auto s = approve ? broker_.approve(id, who, reason, for_ms * 1'000'000, now_ns, &why)
                   : broker_.deny(id, who, reason, now_ns, &why);
  if (!s.ok()) {
    return refuse(403, reason_of(why), s.status().message(), r, p.name, p.channel, id, now_ns);
  }
  HttpResponse out;
  std::string message = "request " + std::to_string(id) + " ";
  if (s.value() == approvals::State::kPending) {
    message += "stays pending: your approval is recorded, it needs more";
  } else {
    message += std::string(approvals::state_name(s.value()));
    if (for_ms) message += " (and granted for " + std::to_string(for_ms / 1000) + "s)";
  }
  JsonObject(out.body)
      .num("id", static_cast<int64_t>(id))
      .str("state", approvals::state_name(s.value()))
      .str("message", message)
      .close();
  return out;
}

HttpResponse ApprovalsHttp::route(const HttpRequest& r, uint64_t now_ns) {
  if (!origins_.host_ok(r.host)) {
    // Not recorded: whatever sent it never reached the API (a rebinding page, a typo).
    return json(421, error_json("this server answers to " + origins_.origins().front() +
                                ", not to Host '" + r.host.substr(0, 100) + "'"));
  }
  const bool post = r.method == "POST";
  if (r.method != "GET" && r.method != "HEAD" && !post) {
    HttpResponse out = json(405, error_json("GET or POST only"));
    out.headers.emplace_back("Allow", "GET, POST");
    return out;
  }
  if (r.path.rfind("/api/", 0) != 0) {
    std::optional<WebAsset> asset;
    if (!post) asset = find_web_asset(r.path == "/index.html" ? "/" : r.path);
    if (!asset) return json(404, error_json("no such page"));
    HttpResponse out;
    out.content_type = asset->content_type;
    out.body = asset->body;
    return out;
  }
  // A browser session, when its cookie is live and its token still in the file.
  std::optional<WebSession> session =
      sessions_.find(cookie_value(r.cookie, session_cookie_name()), now_ns);
  if (session && !tokens_.holds(session->name, session->token_hash)) {
    sessions_.end(cookie_value(r.cookie, session_cookie_name()));
    session.reset();
  }
  const bool bearer = !r.authorization.empty();
  // A request with neither a token nor a cookie counts as the API's.
  const char* channel = bearer || r.cookie.empty() ? "api" : "web";
  if (post) {
    // Cross-site first: a forged request is refused whatever credentials it carries.
    if (std::string why = origins_.check_write(r.origin, r.sec_fetch_site, !bearer); !why.empty()) {
      return refuse(403, RefusalReason::kCrossSite, why, r, bearer || !session ? "" : session->name,
                    channel, 0, now_ns);
    }
    if (r.content_type.rfind("application/json", 0) != 0) {
      return refuse(415, RefusalReason::kBadRequest, "POST bodies are application/json", r, "",
                    channel, 0, now_ns);
    }
  }
  if (r.path == "/api/login") {
    if (!post) return json(405, error_json("POST {\"token\": \"...\"}"));
    return login(r, now_ns);
  }
  if (r.path == "/api/session" && !post) {
    // The page's "am I logged in" question: a no is not a refusal.
    if (!session) return json(401, error_json("not logged in"));
    HttpResponse out;
    JsonObject(out.body).str("name", session->name).str("csrf", session->csrf).close();
    return out;
  }
  Principal p;
  if (bearer) {
    constexpr std::string_view kScheme = "Bearer ";
    std::optional<TokenEntry> owner;
    if (r.authorization.size() > kScheme.size() && r.authorization.rfind(kScheme, 0) == 0) {
      owner = tokens_.find(std::string_view(r.authorization).substr(kScheme.size()));
    }
    if (!owner)
      return refuse(401, RefusalReason::kWrongToken, "wrong token", r, "", "api", 0, now_ns);
    p.name = owner->name;
    p.token_hash = owner->hash;
    p.channel = "api";
  } else if (session) {
    p.name = session->name;
    p.token_hash = session->token_hash;
    p.channel = "web";
    p.session = session;
    if (post && !csrf_matches(*session, r.csrf)) {
      return refuse(403, RefusalReason::kCsrf, "missing or wrong CSRF token", r, p.name, "web", 0,
                    now_ns);
    }
  } else {
    return refuse(401, RefusalReason::kNoToken,
                  r.cookie.empty() ? "no token" : "no token (the session has ended: log in again)",
                  r, "", channel, 0, now_ns);
  }
  if (r.path == "/api/logout") {
    if (!post) return json(405, error_json("POST"));
    if (p.session) sessions_.end(cookie_value(r.cookie, session_cookie_name()));
    HttpResponse out = json(200, "{}");
    out.headers.emplace_back("Set-Cookie", session_cookie_name() +
                                               "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" +
                                               (tls_ ? "; Secure" : ""));
    return out;
  }
  if (r.path == "/api/history" && !post) {
    std::string out = "[";
    bool first = true;
    for (const HistoryEntry& h : history_.recent()) {
      if (!first) out.push_back(',');
      first = false;
      JsonObject o(out);
      o.num("time_unix_ms", h.unix_ns / 1'000'000)
          .num("id", static_cast<int64_t>(h.id))
          .str("event", h.kind)
          .str("rule", h.rule)
          .str("by", h.by)
          .str("reason", h.reason)
          .str("channel", h.channel)
          .str("db_user", h.db_user)
          .str("database", h.database)
          .str("operation", h.operation)
          .str("statement", h.statement)
          .num("grant_seconds", static_cast<int64_t>(h.grant_ns / kNsPerSecond));
      o.close();
    }
    return json(200, out + "]");
  }
  if (r.path == "/api/requests" && !post) {
    std::string out = "[";
    bool first = true;
    for (const approvals::RequestView& v : broker_.list()) {
      if (!first) out.push_back(',');
      first = false;
      out += request_json(v, now_ns);
    }
    return json(200, out + "]");
  }
  if (r.path.rfind(kRequests, 0) == 0) {
    std::string_view rest = std::string_view(r.path).substr(kRequests.size());
    const size_t slash = rest.find('/');
    uint64_t id = 0;
    if (!parse_u64(rest.substr(0, slash), id)) return json(404, error_json("no such request"));
    const std::string_view verb = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (verb.empty() && !post) {
      auto v = broker_.show(id);
      if (!v) return json(404, error_json("no request " + std::to_string(id)));
      return json(200, request_json(*v, now_ns));
    }
    if ((verb == "approve" || verb == "deny") && post) {
      return decide(r, p, id, verb == "approve", now_ns);
    }
  }
  return json(404, error_json("no such API call"));
}

}  // namespace dbwarden::agent
