// SPDX-License-Identifier: Apache-2.0
#include "proxy/pg_catalog.h"

#include <algorithm>
#include <charconv>

#include "protocol/pgsql/messages.h"

namespace dbwarden::proxy {

namespace {

uint16_t ReadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

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
// asked name's index, then five text values by kind. Every function, type, operator and
// table is named in pg_catalog: the client's search_path (and what it may have put in
// front of pg_catalog) must not change what the lookup says.
constexpr std::string_view kLookupHead =
    "/* dbwarden catalog lookup */ WITH q(i, k, s, n) AS (VALUES ";
constexpr std::string_view kLookupTail =
    "), r AS (SELECT q.i, pg_catalog.to_regclass(CASE WHEN q.s OPERATOR(pg_catalog.=) '' "
    "THEN pg_catalog.quote_ident(q.n) ELSE pg_catalog.quote_ident(q.s) "
    "OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(q.n) END)"
    "::pg_catalog.oid AS o FROM q WHERE q.k OPERATOR(pg_catalog.=) 'r') "
    "SELECT 's', -1, pg_catalog.current_database()::pg_catalog.text, "
    "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x::pg_catalog.text), ',') "
    "FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) AS x), "
    "NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text "
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

void PgCatalogCache::Scope::add_relation(std::string_view schema, std::string_view name,
                                         std::shared_ptr<const PgRelation> rel) {
  // Past the bound nothing more is kept: what is not known is looked up again, and a
  // statement still not traced after a few lookups fails closed.
  if (relations_.size() + functions_.size() >= limits_.max_names_per_scope) return;
  if (rel != nullptr) by_oid_[rel->oid] = rel;
  relations_[key(schema, name)] = std::move(rel);
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
  return it->second.get();
}

PgCatalogCache::Scope& PgCatalogCache::get(std::string_view key, uint64_t now_ns) {
  if (Scope* s = find(key, now_ns)) return *s;
  if (scopes_.size() >= limits_.max_scopes) {
    auto oldest = std::min_element(
        scopes_.begin(), scopes_.end(),
        [](const auto& a, const auto& b) { return a.second->created_ns_ < b.second->created_ns_; });
    scopes_.erase(oldest);
    ++generation_;
  }
  auto scope = std::make_unique<Scope>();
  scope->created_ns_ = now_ns;
  scope->generation_ = generation_;
  scope->limits_ = limits_;
  Scope& s = *scope;
  scopes_[std::string(key)] = std::move(scope);
  return s;
}

void PgCatalogCache::invalidate() {
  if (scopes_.empty()) return;
  scopes_.clear();
  ++generation_;
}

// --- the tracer's catalog ---

std::optional<sql::Catalog::Relation> PgScopeCatalog::relation(std::string_view schema,
                                                               std::string_view name) {
  const std::shared_ptr<const PgRelation>* found =
      scope_ != nullptr ? scope_->relation(schema, name) : nullptr;
  if (found == nullptr) {
    PgLookupName n{false, std::string(schema), std::string(name)};
    if (std::find(missing_.begin(), missing_.end(), n) == missing_.end()) {
      missing_.push_back(std::move(n));
    }
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
  const bool* opaque = scope_ != nullptr ? scope_->function_opaque(schema, name) : nullptr;
  if (opaque != nullptr) return *opaque;
  PgLookupName n{true, std::string(schema), std::string(name)};
  if (std::find(missing_.begin(), missing_.end(), n) == missing_.end()) {
    missing_.push_back(std::move(n));
  }
  return false;  // the trace goes on to note more names; it is thrown away
}

// --- the lookup ---

bool PgCatalogLookup::query(std::span<const PgLookupName> names, std::vector<uint8_t>& message) {
  names_.clear();
  found_.clear();
  scope_key_.clear();
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
  sql += kLookupTail;
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

void PgCatalogLookup::fill(PgCatalogCache::Scope& scope, size_t max_view_definition) const {
  if (state_ != State::kDone) return;
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
