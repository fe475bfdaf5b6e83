// SPDX-License-Identifier: Apache-2.0
#include "proxy/pg_catalog.h"

#include <algorithm>
#include <charconv>

#include "protocol/pgsql/messages.h"
#include "sql/lineage.h"

namespace dbwarden::proxy {

namespace {

using pgsql::ReadBe16;

constexpr size_t npos = std::string_view::npos;

// pg_temp, or a session's pg_temp_N / pg_toast_temp_N written out.
bool TempSchema(std::string_view schema) { return schema.starts_with("pg_temp"); }

bool EqualsCi(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

// An E'...' literal: backslashes and quotes escaped, whatever standard_conforming_strings
// says in the client's session.
void AppendLiteral(std::string_view s, std::string& sql) {
  sql += "E'";
  for (const char c : s) {
    if (c == '\\' || c == '\'') sql += '\\';
    sql += c;
  }
  sql += '\'';
}

// The answer's columns: kind ('s' scope, 'r' relation, 'c' column, 'f' function), the
// asked name's index, then five text values by kind. The scope row: the database, the
// effective search_path, whether the session is at its start (search_path at its reset
// value, no SET ROLE: PgStartKey's scope), the session user. Every function, type, operator and
// table is named in pg_catalog: the client's search_path (and what it may have put in
// front of pg_catalog) must not change what the lookup says.
// Settings that change neither the search_path nor the role (nor which schemas the role may
// use): a connection pool's members differ in these at most, and drivers set them on connect
// (pgJDBC: extra_float_digits, application_name; psycopg2: DateStyle).
bool NeutralSetting(std::string_view name) {
  static constexpr std::string_view kNeutral[] = {"application_name", "fallback_application_name",
                                                  "client_encoding",  "datestyle",
                                                  "timezone",         "extra_float_digits",
                                                  "intervalstyle",    "lc_messages",
                                                  "lc_monetary",      "lc_numeric",
                                                  "lc_time",          "bytea_output",
                                                  "statement_timeout"};
  for (const std::string_view n : kNeutral) {
    if (EqualsCi(name, n)) return true;
  }
  return false;
}

// `SET [SESSION | LOCAL] name {TO | =} ...` (`rest`: after SET) of a NeutralSetting.
bool SetsNeutral(std::string_view rest) {
  const auto word = [&rest]() {
    size_t i = 0;
    while (i < rest.size() &&
           (rest[i] == ' ' || rest[i] == '\t' || rest[i] == '\n' || rest[i] == '\r')) {
      ++i;
    }
    size_t j = i;
    while (j < rest.size() && (((rest[j] | 0x20) >= 'a' && (rest[j] | 0x20) <= 'z') ||
                               rest[j] == '_' || (rest[j] >= '0' && rest[j] <= '9'))) {
      ++j;
    }
    const std::string_view w = rest.substr(i, j - i);
    rest.remove_prefix(j);
    return w;
  };
  std::string_view name = word();
  if (EqualsCi(name, "session") || EqualsCi(name, "local")) name = word();
  if (!NeutralSetting(name)) return false;
  // Then TO or '=': anything else (a quoted or dotted name, SET SESSION AUTHORIZATION) is
  // not this form.
  while (!rest.empty() &&
         (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r')) {
    rest.remove_prefix(1);
  }
  return rest.starts_with("=") || EqualsCi(word(), "to");
}

constexpr std::string_view kLookupHead =
    "/* dbwarden catalog lookup */ WITH RECURSIVE q(i, k, s, n) AS (VALUES ";
constexpr std::string_view kLookupNames =
    "), r AS (SELECT q.i, pg_catalog.to_regclass(CASE WHEN q.s OPERATOR(pg_catalog.=) '' "
    "THEN pg_catalog.quote_ident(q.n) ELSE pg_catalog.quote_ident(q.s) "
    "OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(q.n) END)"
    "::pg_catalog.oid AS o FROM q WHERE q.k OPERATOR(pg_catalog.=) 'r')";
constexpr std::string_view kLookupSelect =
    " SELECT 's', -1, pg_catalog.current_database()::pg_catalog.text, "
    "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x::pg_catalog.text), ',') "
    "FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) AS x), "
    "CASE WHEN pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.=) (SELECT "
    "st.reset_val FROM pg_catalog.pg_settings st WHERE st.name OPERATOR(pg_catalog.=) "
    "'search_path') AND CURRENT_USER OPERATOR(pg_catalog.=) SESSION_USER THEN 't' ELSE 'f' END, "
    "SESSION_USER::pg_catalog.text, NULL::pg_catalog.text "
    "UNION ALL SELECT 'r', r.i, c.oid::pg_catalog.text, n.nspname::pg_catalog.text, "
    "c.relname::pg_catalog.text, c.relkind::pg_catalog.text, CASE WHEN c.relkind "
    "OPERATOR(pg_catalog.=) 'v' OR c.relkind OPERATOR(pg_catalog.=) 'm' THEN "
    "pg_catalog.pg_get_viewdef(c.oid) END FROM r LEFT JOIN pg_catalog.pg_class c ON c.oid "
    "OPERATOR(pg_catalog.=) r.o LEFT JOIN pg_catalog.pg_namespace n ON n.oid "
    "OPERATOR(pg_catalog.=) c.relnamespace "
    "UNION ALL SELECT 'c', r.i, a.attnum::pg_catalog.text, a.attname::pg_catalog.text, NULL, "
    "NULL, NULL FROM r JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) r.o "
    "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
    "UNION ALL SELECT 'f', q.i, CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN "
    "pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.pronamespace WHERE "
    "p.proname::pg_catalog.text OPERATOR(pg_catalog.=) q.n AND CASE WHEN q.s "
    "OPERATOR(pg_catalog.=) '' THEN pn.nspname OPERATOR(pg_catalog.=) ANY "
    "(pg_catalog.current_schemas(true)) ELSE pn.nspname::pg_catalog.text "
    "OPERATOR(pg_catalog.=) q.s END AND NOT (pn.nspname OPERATOR(pg_catalog.=) 'pg_catalog' "
    "AND p.prolang OPERATOR(pg_catalog.=) 12)) THEN 't' ELSE 'f' END, NULL, NULL, NULL, NULL "
    "FROM q WHERE q.k OPERATOR(pg_catalog.=) 'f'";
// The reach set (pg_catalog.h), after the names' CTEs: g holds the rules' patterns; seed the
// relations with a column they match; rr those and every view or materialized view whose
// rewrite rule depends on one, transitively (UNION: each relation once, so it ends); su the
// other relations those views read. Rows: 'R'/'U' (flag: visible by the bare name) with
// the 'r' row's values, 'a' columns of those (oid, attnum, name), 'F' functions that may
// read tables (flag: their schema is on the path; schema, name), then 'e' marking the end.
// Each list is cut one past its bound, so that an overflow shows.
constexpr std::string_view kReachCtes =
    "), seed AS (SELECT DISTINCT a.attrelid AS o FROM pg_catalog.pg_attribute a JOIN "
    "pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid JOIN "
    "pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace JOIN g ON "
    "n.nspname::pg_catalog.text OPERATOR(pg_catalog.~~*) g.s AND c.relname::pg_catalog.text "
    "OPERATOR(pg_catalog.~~*) g.t AND a.attname::pg_catalog.text OPERATOR(pg_catalog.~~*) g.c "
    "WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped), "
    "rr(o) AS (SELECT seed.o FROM seed UNION SELECT w.ev_class FROM rr JOIN pg_catalog.pg_depend "
    "d ON d.refobjid OPERATOR(pg_catalog.=) rr.o AND d.refclassid OPERATOR(pg_catalog.=) "
    "'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid AND d.classid "
    "OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid JOIN "
    "pg_catalog.pg_rewrite w ON w.oid OPERATOR(pg_catalog.=) d.objid), "
    "su(o) AS (SELECT DISTINCT d.refobjid FROM rr JOIN pg_catalog.pg_rewrite w ON w.ev_class "
    "OPERATOR(pg_catalog.=) rr.o JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) "
    "w.oid AND d.classid OPERATOR(pg_catalog.=) "
    "'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid AND d.refclassid "
    "OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid WHERE "
    "NOT EXISTS (SELECT 1 FROM rr x WHERE x.o OPERATOR(pg_catalog.=) d.refobjid)), "
    "rl(o, k) AS (SELECT * FROM (SELECT rr.o, 'R'::pg_catalog.text FROM rr UNION ALL SELECT "
    "su.o, 'U'::pg_catalog.text FROM su) x LIMIT 4097)";
constexpr std::string_view kReachSelect =
    " UNION ALL SELECT rl.k, CASE WHEN pg_catalog.pg_table_is_visible(c.oid) THEN 1 ELSE 0 "
    "END, c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, "
    "c.relkind::pg_catalog.text, CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'v' OR c.relkind "
    "OPERATOR(pg_catalog.=) 'm' THEN pg_catalog.pg_get_viewdef(c.oid) END FROM rl JOIN "
    "pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rl.o JOIN pg_catalog.pg_namespace n "
    "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "UNION ALL SELECT 'a', -1, a.attrelid::pg_catalog.text, a.attnum::pg_catalog.text, "
    "a.attname::pg_catalog.text, NULL, NULL FROM rl JOIN pg_catalog.pg_attribute a ON "
    "a.attrelid OPERATOR(pg_catalog.=) rl.o AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT "
    "a.attisdropped "
    "UNION ALL (SELECT 'F', CASE WHEN pn.nspname OPERATOR(pg_catalog.=) ANY "
    "(pg_catalog.current_schemas(true)) THEN 1 ELSE 0 END, pn.nspname::pg_catalog.text, "
    "p.proname::pg_catalog.text, NULL, NULL, NULL FROM pg_catalog.pg_proc p JOIN "
    "pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.pronamespace WHERE NOT "
    "(pn.nspname OPERATOR(pg_catalog.=) 'pg_catalog' AND p.prolang OPERATOR(pg_catalog.=) 12) "
    "GROUP BY pn.nspname, p.proname LIMIT 32769) "
    "UNION ALL SELECT 'e', -1, NULL, NULL, NULL, NULL, NULL";
constexpr size_t kColumns = 7;

}  // namespace

// --- the cache ---

std::string PgCatalogCache::Scope::key(std::string_view schema, std::string_view name) {
  std::string k;
  k.reserve(schema.size() + 1 + name.size());
  k.append(schema);
  k.push_back('\0');
  k.append(name);
  return k;
}

const std::shared_ptr<const PgRelation>* PgCatalogCache::Scope::relation(
    std::string_view schema, std::string_view name) const {
  auto it = relations_.find(key(schema, name));
  return it == relations_.end() ? nullptr : &it->second;
}

const bool* PgCatalogCache::Scope::function_opaque(std::string_view schema,
                                                   std::string_view name) const {
  auto it = functions_.find(key(schema, name));
  return it == functions_.end() ? nullptr : &it->second;
}

const PgRelation* PgCatalogCache::Scope::by_oid(uint32_t oid) const {
  auto it = by_oid_.find(oid);
  return it == by_oid_.end() ? nullptr : it->second.get();
}

void PgCatalogCache::Scope::set_untouched(uint64_t fingerprint) {
  if (untouched_.size() >= limits_.max_fingerprints_per_scope) untouched_.clear();
  untouched_.insert(fingerprint);
}

bool PgCatalogCache::Scope::add_relation(std::string_view schema, std::string_view name,
                                         std::shared_ptr<const PgRelation> rel) {
  // Past the bound nothing more is kept: what is not known is looked up again, and a
  // statement still not traced after a few lookups fails closed.
  if (relations_.size() + functions_.size() >= limits_.max_names_per_scope) return false;
  if (rel != nullptr) by_oid_[rel->oid] = rel;
  relations_[key(schema, name)] = std::move(rel);
  return true;
}

bool PgCatalogCache::Scope::reach_function_opaque(std::string_view schema,
                                                  std::string_view name) const {
  return reach_opaque_.count(key(schema, name)) != 0;
}

void PgCatalogCache::Scope::add_function(std::string_view schema, std::string_view name,
                                         bool opaque) {
  if (relations_.size() + functions_.size() >= limits_.max_names_per_scope) return;
  functions_[key(schema, name)] = opaque;
}

PgCatalogCache::Scope* PgCatalogCache::find(std::string_view key, uint64_t now_ns) {
  auto it = scopes_.find(std::string(key));
  if (it == scopes_.end()) return nullptr;
  if (now_ns - it->second->created_ns_ >= limits_.ttl_ns) {
    scopes_.erase(it);
    ++generation_;  // a relay's pointer to it is no longer valid
    return nullptr;
  }
  it->second->used_ns_ = now_ns;
  return it->second.get();
}

PgCatalogCache::Scope& PgCatalogCache::get(std::string_view key, uint64_t now_ns) {
  if (Scope* s = find(key, now_ns)) return *s;
  if (scopes_.size() >= limits_.max_scopes) {
    auto lru = std::min_element(scopes_.begin(), scopes_.end(), [](const auto& a, const auto& b) {
      return a.second->used_ns_ < b.second->used_ns_;
    });
    scopes_.erase(lru);
    ++generation_;
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  auto scope = std::make_unique<Scope>();
  scope->created_ns_ = now_ns;
  scope->used_ns_ = now_ns;
  scope->generation_ = generation_;
  scope->limits_ = limits_;
  Scope& s = *scope;
  scopes_[std::string(key)] = std::move(scope);
  return s;
}

PgCatalogCache::Scope& PgCatalogCache::renew(std::string_view key, uint64_t now_ns) {
  auto it = scopes_.find(std::string(key));
  if (it != scopes_.end()) {
    scopes_.erase(it);
    ++generation_;  // a relay's pointer to it is no longer valid
  }
  return get(key, now_ns);
}

void PgCatalogCache::invalidate() {
  // Claims stay: a lookup in flight still ends, and its waiters are still woken.
  starts_.clear();
  if (scopes_.empty()) return;
  scopes_.clear();
  ++generation_;
}

const std::string* PgCatalogCache::start_scope(std::string_view start, uint64_t now_ns,
                                               uint64_t* age_ns) {
  auto it = starts_.find(std::string(start));
  if (it == starts_.end()) return nullptr;
  if (now_ns - it->second.learnt_ns >= limits_.ttl_ns) {
    starts_.erase(it);
    return nullptr;
  }
  it->second.used_ns = now_ns;
  *age_ns = now_ns - it->second.learnt_ns;
  return &it->second.scope;
}

void PgCatalogCache::learn_start(std::string_view start, std::string_view scope, uint64_t now_ns) {
  if (start.empty() || limits_.max_starts == 0) return;
  auto it = starts_.find(std::string(start));
  if (it == starts_.end()) {
    if (starts_.size() >= limits_.max_starts) {
      auto lru = std::min_element(starts_.begin(), starts_.end(), [](const auto& a, const auto& b) {
        return a.second.used_ns < b.second.used_ns;
      });
      starts_.erase(lru);
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    it = starts_.emplace(std::string(start), Start{}).first;
  }
  it->second.scope.assign(scope);
  it->second.learnt_ns = now_ns;
  it->second.used_ns = now_ns;
}

bool PgCatalogCache::claim(std::string_view key, const void* owner) {
  Claim& c = claims_[std::string(key)];
  if (c.owner != nullptr && c.owner != owner) return false;
  c.owner = owner;
  return true;
}

bool PgCatalogCache::claimed_by_other(std::string_view key, const void* owner) const {
  auto it = claims_.find(std::string(key));
  return it != claims_.end() && it->second.owner != nullptr && it->second.owner != owner;
}

void PgCatalogCache::wait(std::string_view key, const void* waiter) {
  auto it = claims_.find(std::string(key));
  if (it == claims_.end() || it->second.owner == nullptr || it->second.owner == waiter ||
      waiting_.count(waiter) != 0) {
    return;
  }
  it->second.waiters.push_back(waiter);
  waiting_.emplace(waiter, std::string(key));
}

void PgCatalogCache::release(const void* owner) {
  for (auto it = claims_.begin(); it != claims_.end();) {
    if (it->second.owner != owner) {
      ++it;
      continue;
    }
    for (const void* w : it->second.waiters) {
      waiting_.erase(w);
      woken_.push_back(w);
    }
    it = claims_.erase(it);
  }
}

void PgCatalogCache::forget(const void* relay) {
  release(relay);
  auto w = waiting_.find(relay);
  if (w != waiting_.end()) {
    auto c = claims_.find(w->second);
    if (c != claims_.end()) std::erase(c->second.waiters, relay);
    waiting_.erase(w);
  }
  std::erase(woken_, relay);
}

std::vector<const void*> PgCatalogCache::take_woken() {
  std::vector<const void*> out;
  out.swap(woken_);
  return out;
}

PgCatalogCache::Counters PgCatalogCache::counters() const {
  Counters c;
  c.reach_hits = hits_.load(std::memory_order_relaxed);
  c.reach_misses = misses_.load(std::memory_order_relaxed);
  c.reach_waits = waits_.load(std::memory_order_relaxed);
  c.evictions = evictions_.load(std::memory_order_relaxed);
  return c;
}

// --- the keys ---

std::string ReachTag(std::span<const ReachPattern> patterns) {
  // Each part NUL-terminated: no pattern holds a NUL (policy names are YAML strings, and a
  // NUL could never name a PostgreSQL object), so the text is unambiguous.
  std::string tag;
  for (const ReachPattern& p : patterns) {
    for (const std::string* part : {&p.schema, &p.table, &p.column}) {
      tag += *part;
      tag.push_back('\0');
    }
  }
  return tag;
}

std::string PgScopeKey(std::string_view server, std::string_view scope, std::string_view tag) {
  std::string key;
  key.reserve(server.size() + scope.size() + tag.size() + 2);
  // NUL between the parts: no server name, database or schema name holds one.
  key.append(server);
  key.push_back('\0');
  key.append(scope);
  key.push_back('\0');
  key.append(tag);
  return key;
}

std::string PgStartKey(std::string_view server, std::span<const uint8_t> packet) {
  // StartupMessage: Int32 length, Int32 protocol version, then (String name, String value)
  // pairs ending with a lone NUL.
  // https://www.postgresql.org/docs/current/protocol-message-formats.html
  if (packet.size() < 9) return {};
  const auto text = [&](size_t from, size_t* end) -> std::optional<std::string_view> {
    for (size_t i = from; i < packet.size(); ++i) {
      if (packet[i] == 0) {
        *end = i + 1;
        return std::string_view(reinterpret_cast<const char*>(packet.data() + from), i - from);
      }
    }
    return std::nullopt;
  };
  std::vector<std::pair<std::string_view, std::string_view>> kept;
  size_t pos = 8;
  for (;;) {
    if (pos >= packet.size()) return {};
    if (packet[pos] == 0) break;
    size_t end = 0;
    const auto name = text(pos, &end);
    if (!name) return {};
    const auto value = text(end, &pos);
    if (!value) return {};
    if (!NeutralSetting(*name)) kept.emplace_back(*name, *value);
    if (kept.size() > 64) return {};
  }
  std::sort(kept.begin(), kept.end());
  std::string key(server);
  for (const auto& [name, value] : kept) {
    key.push_back('\0');
    key.append(name);
    key.push_back('=');
    key.append(value);
  }
  return key;
}

bool PgScopeHasTemp(std::string_view scope) {
  // current_schemas names it pg_temp_N (quote_ident leaves that bare). Anywhere in the text:
  // a database or schema whose name holds it only costs the sharing.
  return scope.find("pg_temp") != npos;
}

// --- the tracer's catalog ---

std::optional<sql::Catalog::Relation> PgScopeCatalog::relation(std::string_view schema,
                                                               std::string_view name) {
  const std::shared_ptr<const PgRelation>* found =
      scope_ != nullptr ? scope_->relation(schema, name) : nullptr;
  if (found == nullptr) {
    PgLookupName n{false, std::string(schema), std::string(name)};
    std::vector<PgLookupName>& list =
        scope_ != nullptr && scope_->reach_known() && !TempSchema(schema) ? outside_ : missing_;
    if (std::find(list.begin(), list.end(), n) == list.end()) list.push_back(std::move(n));
    return std::nullopt;
  }
  if (*found == nullptr) return std::nullopt;
  const PgRelation& r = **found;
  Relation out;
  out.schema = r.schema;
  out.name = r.name;
  out.is_view = r.is_view;
  out.columns = r.columns;
  out.view_definition = r.view_definition;
  return out;
}

bool PgScopeCatalog::function_is_opaque(std::string_view schema, std::string_view name) {
  // The lookup knows the temporary schema by its real name (pg_temp_N), never as pg_temp:
  // a function there may read anything.
  if (TempSchema(schema)) return true;
  const bool* opaque = scope_ != nullptr ? scope_->function_opaque(schema, name) : nullptr;
  if (opaque != nullptr) return *opaque;
  if (scope_ != nullptr && scope_->reach_known()) {
    return scope_->reach_function_opaque(schema, name);
  }
  PgLookupName n{true, std::string(schema), std::string(name)};
  if (std::find(missing_.begin(), missing_.end(), n) == missing_.end()) {
    missing_.push_back(std::move(n));
  }
  return false;  // the trace goes on to note more names; it is thrown away
}

bool PgOutsideReach(const std::string& text, const PgCatalogCache::Scope& scope) {
  if (!scope.reach_known()) return false;
  const sql::NamedObjects named = sql::pg_named_objects(text);
  if (!named.parsed || named.runs_elsewhere) return false;
  for (const sql::QualifiedName& r : named.relations) {
    if (TempSchema(r.schema)) return false;
    // Not known: outside the reach set, whose relations are all known (pg_catalog.h).
    const std::shared_ptr<const PgRelation>* rel = scope.relation(r.schema, r.name);
    if (rel != nullptr && *rel != nullptr && scope.in_reach((*rel)->oid)) return false;
  }
  for (const sql::QualifiedName& f : named.functions) {
    if (TempSchema(f.schema)) return false;
    const bool* opaque = scope.function_opaque(f.schema, f.name);
    if (opaque != nullptr ? *opaque : scope.reach_function_opaque(f.schema, f.name)) return false;
  }
  return true;
}

// --- the reach set's patterns ---

std::string GlobToLike(std::string_view glob) {
  std::string out;
  for (size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*' || c == '?') {
      out += '%';
    } else if (c == '[') {
      // A class is one byte of a glob; a LIKE '_' is one character: '%' covers both.
      size_t k = i + 1;
      if (k < glob.size() && (glob[k] == '!' || glob[k] == '^')) ++k;
      if (k < glob.size() && glob[k] == ']') ++k;
      while (k < glob.size() && glob[k] != ']') {
        if (glob[k] == '\\') ++k;
        ++k;
      }
      out += '%';
      i = k;
    } else {
      char lit = c;
      if (c == '\\' && i + 1 < glob.size()) lit = glob[++i];
      if (lit == '%' || lit == '_' || lit == '\\') out += '\\';
      out += lit;
    }
  }
  return out;
}

std::vector<ReachPattern> ReachPatterns(const policy::Policy& policy) {
  std::vector<const policy::MaskRule*> rules;
  policy.all_mask_rules(rules);
  std::vector<ReachPattern> out;
  for (const policy::MaskRule* r : rules) {
    for (const std::vector<std::string>& parts : r->columns) {
      if (parts.size() != 3) continue;
      ReachPattern p{GlobToLike(parts[0]), GlobToLike(parts[1]), GlobToLike(parts[2])};
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
    }
  }
  return out;
}

// --- the lookup ---

bool PgCatalogLookup::query(std::span<const PgLookupName> names, std::vector<uint8_t>& message,
                            std::span<const ReachPattern> reach) {
  names_.clear();
  found_.clear();
  scope_key_.clear();
  at_start_ = false;
  session_user_.clear();
  reach_rels_.clear();
  reach_columns_.clear();
  reach_column_count_ = 0;
  reach_functions_.clear();
  reach_function_on_path_.clear();
  reach_asked_ = !reach.empty();
  reach_end_ = reach_overflow_ = false;
  error_ = shape_ok_ = false;
  state_ = State::kRunning;
  std::string sql(kLookupHead);
  for (const PgLookupName& n : names) {
    if (names_.size() >= kMaxNames) break;
    if (n.name.empty() || n.name.size() > kMaxNameBytes || n.schema.size() > kMaxNameBytes ||
        n.name.find('\0') != std::string::npos || n.schema.find('\0') != std::string::npos) {
      continue;
    }
    if (!names_.empty()) sql += ", ";
    sql += '(' + std::to_string(names_.size()) + (n.function ? ", 'f', " : ", 'r', ");
    AppendLiteral(n.schema, sql);
    sql += ", ";
    AppendLiteral(n.name, sql);
    sql += ')';
    names_.push_back(n);
  }
  // With no name the scope alone is asked (a placeholder row that finds nothing).
  if (names_.empty()) sql += "(-1, '', E'', E'')";
  sql += kLookupNames;
  if (reach_asked_) {
    sql += ", g(s, t, c) AS (VALUES ";
    for (size_t i = 0; i < reach.size(); ++i) {
      sql += i == 0 ? "(" : ", (";
      AppendLiteral(reach[i].schema, sql);
      sql += ", ";
      AppendLiteral(reach[i].table, sql);
      sql += ", ";
      AppendLiteral(reach[i].column, sql);
      sql += ')';
    }
    sql += kReachCtes;
  }
  sql += kLookupSelect;
  if (reach_asked_) sql += kReachSelect;
  found_.resize(names_.size());
  message.clear();
  pgsql::AppendQuery(sql, &message);
  return true;
}

PgCatalogLookup::State PgCatalogLookup::on_message(uint8_t type, std::span<const uint8_t> body,
                                                   bool* forward) {
  *forward = false;
  switch (type) {
    case 'T':
      shape_ok_ = body.size() >= 2 && ReadBe16(body.data()) == kColumns;
      if (!shape_ok_) error_ = true;
      break;
    case 'D':
      if (shape_ok_) row(body);
      break;
    case 'E':
      error_ = true;
      break;
    case 'Z':
      state_ = error_ || !shape_ok_ || scope_key_.empty() ? State::kFailed : State::kDone;
      return state_;
    case 'S':  // ParameterStatus and notifications may come at any time: the client's
    case 'A':
      *forward = true;
      break;
    default:  // 'C', 'N' (a notice the lookup caused), anything else: the lookup's own
      break;
  }
  return State::kRunning;
}

void PgCatalogLookup::row(std::span<const uint8_t> body) {
  if (body.size() < 2 || ReadBe16(body.data()) != kColumns) {
    error_ = true;
    return;
  }
  std::string_view v[kColumns];
  bool null[kColumns] = {};
  size_t pos = 2;
  for (size_t i = 0; i < kColumns; ++i) {
    if (body.size() - pos < 4) {
      error_ = true;
      return;
    }
    const auto len = static_cast<int32_t>(pgsql::ReadBe32(body.data() + pos));
    pos += 4;
    if (len < 0) {
      null[i] = true;
      continue;
    }
    if (body.size() - pos < static_cast<size_t>(len)) {
      error_ = true;
      return;
    }
    v[i] = std::string_view(reinterpret_cast<const char*>(body.data() + pos),
                            static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  long index = -2;
  std::from_chars(v[1].data(), v[1].data() + v[1].size(), index);
  if (v[0] == "s") {
    scope_key_.assign(v[2]);
    scope_key_ += '/';
    scope_key_.append(v[3]);
    at_start_ = v[4] == "t";
    session_user_.assign(v[5]);
    return;
  }
  if (reach_asked_ && v[0].size() == 1 && std::string_view("RUaFe").find(v[0]) != npos) {
    reach_row(v[0], index, v, null);
    return;
  }
  if (index < 0 || static_cast<size_t>(index) >= found_.size()) return;
  Found& f = found_[static_cast<size_t>(index)];
  if (v[0] == "r") {
    f.listed = true;
    if (null[2]) return;  // no such relation
    f.found = true;
    uint32_t oid = 0;
    std::from_chars(v[2].data(), v[2].data() + v[2].size(), oid);
    f.rel.oid = oid;
    f.rel.schema.assign(v[3]);
    f.rel.name.assign(v[4]);
    f.rel.is_view = v[5] == "v" || v[5] == "m";
    f.rel.view_definition.assign(v[6]);
  } else if (v[0] == "c") {
    int attnum = 0;
    std::from_chars(v[2].data(), v[2].data() + v[2].size(), attnum);
    if (f.columns.size() < 1600) f.columns.emplace_back(static_cast<int16_t>(attnum), v[3]);
  } else if (v[0] == "f") {
    f.listed = true;
    f.opaque = v[2] != "f";
  }
}

void PgCatalogLookup::reach_row(std::string_view kind, long flag, const std::string_view* v,
                                const bool* null) {
  if (kind == "e") {
    reach_end_ = true;
    return;
  }
  if (kind == "F") {
    if (reach_functions_.size() >= kMaxReachFunctions) {
      reach_overflow_ = true;
      return;
    }
    reach_functions_.emplace_back(std::string(v[2]), std::string(v[3]));
    reach_function_on_path_.push_back(flag == 1);
    return;
  }
  uint32_t oid = 0;
  std::from_chars(v[2].data(), v[2].data() + v[2].size(), oid);
  if (kind == "a") {
    // By OID: the rows of a UNION ALL come in no promised order.
    if (reach_column_count_ >= kMaxReachColumns) {
      reach_overflow_ = true;
      return;
    }
    int attnum = 0;
    std::from_chars(v[3].data(), v[3].data() + v[3].size(), attnum);
    reach_columns_[oid].emplace_back(static_cast<int16_t>(attnum), v[4]);
    ++reach_column_count_;
    return;
  }
  if (null[2]) return;  // dropped meanwhile
  if (reach_rels_.size() >= kMaxReachRelations) {
    reach_overflow_ = true;
    return;
  }
  ReachRelation& r = reach_rels_.emplace_back();
  r.rel.oid = oid;
  r.rel.schema.assign(v[3]);
  r.rel.name.assign(v[4]);
  r.rel.is_view = v[5] == "v" || v[5] == "m";
  r.rel.view_definition.assign(v[6]);
  r.in_reach = kind == "R";
  r.visible = flag == 1;
}

void PgCatalogLookup::fill_reach(PgCatalogCache::Scope& scope, size_t max_view_definition) const {
  for (const ReachRelation& r : reach_rels_) {
    auto rel = std::make_shared<PgRelation>(r.rel);
    auto found = reach_columns_.find(rel->oid);
    auto cols = found != reach_columns_.end() ? found->second
                                              : std::vector<std::pair<int16_t, std::string>>{};
    std::sort(cols.begin(), cols.end());
    for (auto& [attnum, name] : cols) {
      rel->attnums.push_back(attnum);
      rel->columns.push_back(std::move(name));
    }
    if (rel->view_definition.size() > max_view_definition) rel->view_definition.clear();
    // A relation the bound leaves out would later pass for one outside the set: then the
    // scope does not know its reach set at all.
    if (!scope.add_relation(rel->schema, rel->name, rel)) return;
    if (r.visible && !scope.add_relation("", rel->name, rel)) return;
    if (r.in_reach) scope.reach_.insert(rel->oid);
  }
  for (size_t i = 0; i < reach_functions_.size(); ++i) {
    const auto& [schema, name] = reach_functions_[i];
    scope.reach_opaque_.insert(PgCatalogCache::Scope::key(schema, name));
    if (reach_function_on_path_[i]) {
      scope.reach_opaque_.insert(PgCatalogCache::Scope::key("", name));
    }
  }
  scope.reach_known_ = true;
}

void PgCatalogLookup::fill(PgCatalogCache::Scope& scope, size_t max_view_definition) const {
  if (state_ != State::kDone) return;
  if (reach_listed()) fill_reach(scope, max_view_definition);
  for (size_t i = 0; i < names_.size(); ++i) {
    const PgLookupName& n = names_[i];
    const Found& f = found_[i];
    if (!f.listed) continue;  // stays unknown: fails closed
    if (n.function) {
      scope.add_function(n.schema, n.name, f.opaque);
      continue;
    }
    if (!f.found) {
      scope.add_relation(n.schema, n.name, nullptr);
      continue;
    }
    auto rel = std::make_shared<PgRelation>(f.rel);
    auto cols = f.columns;
    std::sort(cols.begin(), cols.end());
    for (auto& [attnum, name] : cols) {
      rel->attnums.push_back(attnum);
      rel->columns.push_back(std::move(name));
    }
    // Too long to keep: an empty definition is not followed (the trace fails closed).
    if (rel->view_definition.size() > max_view_definition) rel->view_definition.clear();
    scope.add_relation(n.schema, n.name, std::move(rel));
  }
}

// --- the rest ---

StatementOrigins origins_from_lineage(const sql::Lineage& lineage) {
  StatementOrigins o;
  const auto ref = [](const sql::ColumnRef& c) { return SourceRef{c.schema, c.table, c.column}; };
  o.columns.reserve(lineage.columns.size());
  for (const sql::OutputColumn& c : lineage.columns) {
    ColumnOrigin& co = o.columns.emplace_back();
    co.kind = c.flow == sql::Flow::kCopy ? ColumnOrigin::Kind::kCopy : ColumnOrigin::Kind::kDerived;
    for (const sql::ColumnRef& s : c.sources) co.sources.push_back(ref(s));
  }
  for (const sql::ColumnRef& c : lineage.predicate_columns) o.predicate_columns.push_back(ref(c));
  for (const sql::ColumnRef& c : lineage.read_columns) o.may_read.push_back(ref(c));
  for (const sql::OutputColumn& c : lineage.columns) {
    for (const sql::ColumnRef& s : c.sources) o.may_read.push_back(ref(s));
  }
  return o;
}

uint8_t PgCatalogEffects(std::string_view text) {
  size_t i = 0;
  // Leading blanks, parentheses and comments.
  for (;;) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' ||
                               text[i] == '\r' || text[i] == '(')) {
      ++i;
    }
    if (text.substr(i, 2) == "--") {
      const size_t nl = text.find('\n', i);
      i = nl == std::string_view::npos ? text.size() : nl + 1;
    } else if (text.substr(i, 2) == "/*") {
      const size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 2;
    } else {
      break;
    }
  }
  size_t j = i;
  while (j < text.size() && (text[j] | 0x20) >= 'a' && (text[j] | 0x20) <= 'z') ++j;
  const std::string_view word = text.substr(i, j - i);
  const std::string_view rest = text.substr(j);
  const auto has = [&](std::string_view lower) {
    return std::search(rest.begin(), rest.end(), lower.begin(), lower.end(), [](char a, char b) {
             return (a >= 'A' && a <= 'Z' ? static_cast<char>(a + 32) : a) == b;
           }) != rest.end();
  };
  // set_config() is a call: only a text with a parenthesis is scanned for it (memchr).
  uint8_t effects =
      rest.find('(') != std::string_view::npos && has("set_config") ? kPgScopeChange : 0;
  for (const char* w :
       {"create", "alter", "drop", "do", "call", "import", "comment", "security", "refresh"}) {
    if (EqualsCi(word, w)) return effects | kPgCatalogChange;
  }
  // A setting drivers make on connect that cannot move the search_path or the role keeps
  // the session's scope (and its start: pg_catalog.h).
  if (EqualsCi(word, "set") && effects == 0 && SetsNeutral(rest)) return 0;
  for (const char* w : {"set", "reset", "discard"}) {
    if (EqualsCi(word, w)) return effects | kPgScopeChange;
  }
  for (const char* w : {"commit", "end", "rollback", "abort", "prepare"}) {
    if (EqualsCi(word, w)) return effects | kPgTransactionEnd;
  }
  // SELECT ... INTO t creates a table.
  // (A cheap first look for the letters in either case: a missed mixed-case INTO leaves a
  // stale "no such table" behind, which fails closed until the TTL.)
  if ((EqualsCi(word, "select") || EqualsCi(word, "with")) &&
      (rest.find("into") != std::string_view::npos || rest.find("INTO") != std::string_view::npos ||
       rest.find("Into") != std::string_view::npos)) {
    effects |= kPgCatalogChange;
  }
  return effects;
}

}  // namespace dbwarden::proxy
