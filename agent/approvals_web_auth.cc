// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_web_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

namespace dbwarden::agent {
namespace {

Result<std::string> random_hex32() {
  uint8_t bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Status::Error("no random bytes from OpenSSL");
  std::string out = to_hex(bytes, sizeof bytes);
  OPENSSL_cleanse(bytes, sizeof bytes);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// An origin as browsers send it: lower case, no default port.
std::string normalize_origin(std::string_view origin) {
  std::string o = lower(origin);
  const std::string_view port = o.rfind("https://", 0) == 0 ? ":443" : ":80";
  if (o.ends_with(port)) o.resize(o.size() - port.size());
  return o;
}

bool expired(const WebSession& s, uint64_t now_ns) {
  return now_ns - s.used_ns >= WebSessions::kIdleNs ||
         now_ns - s.created_ns >= WebSessions::kMaxAgeNs;
}

}  // namespace

Result<NewSession> WebSessions::create(const std::string& name, const TokenHash& token_hash,
                                       uint64_t now_ns) {
  auto cookie = random_hex32();
  auto csrf = random_hex32();
  if (!cookie.ok()) return cookie.status();
  if (!csrf.ok()) return csrf.status();
  WebSession s{name, token_hash, csrf.value(), now_ns, now_ns};
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(by_cookie_hash_, [&](const auto& kv) { return expired(kv.second, now_ns); });
  if (by_cookie_hash_.size() >= kMaxSessions) {
    auto oldest = std::min_element(
        by_cookie_hash_.begin(), by_cookie_hash_.end(),
        [](const auto& a, const auto& b) { return a.second.used_ns < b.second.used_ns; });
    by_cookie_hash_.erase(oldest);
  }
  by_cookie_hash_[hash_token(cookie.value())] = std::move(s);
  return NewSession{cookie.value(), csrf.value()};
}

std::optional<WebSession> WebSessions::find(std::string_view cookie, uint64_t now_ns) {
  if (cookie.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  // Looked up by the cookie's hash: a lookup's timing tells nothing about the cookie itself.
  auto it = by_cookie_hash_.find(hash_token(cookie));
  if (it == by_cookie_hash_.end()) return std::nullopt;
  if (expired(it->second, now_ns)) {
    by_cookie_hash_.erase(it);
    return std::nullopt;
  }
  it->second.used_ns = now_ns;
  return it->second;
}

void WebSessions::end(std::string_view cookie) {
  std::lock_guard<std::mutex> lock(mu_);
  by_cookie_hash_.erase(hash_token(cookie));
}

size_t WebSessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_cookie_hash_.size();
}

bool csrf_matches(const WebSession& s, std::string_view presented) {
  if (s.csrf.empty() || presented.size() != s.csrf.size()) return false;
  return CRYPTO_memcmp(s.csrf.data(), presented.data(), presented.size()) == 0;
}

std::string cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return std::string(pair.substr(eq + 1));
    }
  }
  return "";
}

Result<OriginPolicy> OriginPolicy::Make(const std::string& host, uint16_t port, bool tls,
                                        const std::string& url) {
  const std::string scheme = tls ? "https://" : "http://";
  const std::string p = ":" + std::to_string(port);
  std::vector<std::string> origins;
  if (!url.empty()) {
    std::string u = lower(url);
    while (!u.empty() && u.back() == '/') u.pop_back();
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
      return Status::Error("approvals-url must start with http:// or https://, got '" + url + "'");
    }
    if (u.find('/', u.find("//") + 2) != std::string::npos) {
      return Status::Error("approvals-url is an origin (scheme://host[:port]), no path: '" + url +
                           "'");
    }
    origins.push_back(normalize_origin(u));
  }
  const std::string h = lower(host);
  const bool wildcard = h == "0.0.0.0" || h == "::" || h == "[::]" || h.empty();
  if (wildcard) {
    if (url.empty()) {
      return Status::Error(
          "approvals-listen on all addresses needs approvals-url (the inbox's "
          "address as browsers reach it): requests are checked against it");
    }
  } else {
    const bool v6 = h.find(':') != std::string::npos;
    origins.push_back(normalize_origin(scheme + (v6 && h.front() != '[' ? "[" + h + "]" : h) + p));
    if (h == "127.0.0.1" || h == "::1" || h == "[::1]" || h == "localhost") {
      origins.push_back(normalize_origin(scheme + "localhost" + p));
      origins.push_back(normalize_origin(scheme + "127.0.0.1" + p));
    }
  }
  std::sort(origins.begin(), origins.end());
  origins.erase(std::unique(origins.begin(), origins.end()), origins.end());
  return OriginPolicy(std::move(origins));
}

bool OriginPolicy::host_ok(std::string_view host_header) const {
  if (host_header.empty()) return false;
  const std::string h = lower(host_header);
  for (const std::string& o : origins_) {
    // Host may leave out the scheme's default port, and an origin may too.
    const std::string_view port = o.rfind("https://", 0) == 0 ? ":443" : ":80";
    auto bare = [&](std::string_view a) {
      return a.ends_with(port) ? a.substr(0, a.size() - port.size()) : a;
    };
    if (bare(h) == bare(std::string_view(o).substr(o.find("//") + 2))) return true;
  }
  return false;
}

std::string OriginPolicy::check_write(std::string_view origin, std::string_view sec_fetch_site,
                                      bool browser_session) const {
  if (!sec_fetch_site.empty() && sec_fetch_site != "same-origin" && sec_fetch_site != "none") {
    return "a cross-site request (Sec-Fetch-Site: " + std::string(sec_fetch_site.substr(0, 40)) +
           ")";
  }
  if (origin.empty()) {
    return browser_session ? "a browser request without an Origin header" : "";
  }
  const std::string o = normalize_origin(origin);
  if (std::find(origins_.begin(), origins_.end(), o) == origins_.end()) {
    return "a cross-site request (Origin " + std::string(origin.substr(0, 100)) + ")";
  }
  return "";
}

}  // namespace dbwarden::agent
