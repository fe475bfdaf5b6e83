// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_catalog.h"

#include <algorithm>
#include <cctype>

#include "protocol/mysql/messages.h"
#include "sql/analyzer.h"

namespace dbwarden::proxy {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One part of a dotted name, backticks removed (a doubled one stands for itself).
bool NextPart(std::string_view& name, std::string& part) {
  part.clear();
  if (name.empty()) return false;
  if (name.front() == '`') {
    size_t i = 1;
    for (; i < name.size(); ++i) {
      if (name[i] != '`') {
        part.push_back(name[i]);
      } else if (i + 1 < name.size() && name[i + 1] == '`') {
        part.push_back('`');
        ++i;
      } else {
        break;
      }
    }
    name.remove_prefix(std::min(i + 1, name.size()));
  } else {
    const size_t dot = name.find('.');
    part.assign(name.substr(0, dot));
    name.remove_prefix(dot == std::string_view::npos ? name.size() : dot);
  }
  if (!name.empty()) {
    if (name.front() != '.') return false;
    name.remove_prefix(1);
    if (name.empty()) return false;
  }
  return !part.empty();
}

}  // namespace

bool SplitMysqlTableName(std::string_view name, std::string_view database, MysqlTableName& out) {
  std::string a, b;
  if (!NextPart(name, a)) return false;
  if (name.empty()) {
    out.schema = Lower(database);
    out.table = Lower(a);
    return true;
  }
  if (!NextPart(name, b) || !name.empty()) return false;
  out.schema = Lower(a);
  out.table = Lower(b);
  return true;
}

const MysqlCatalog::Entry* MysqlCatalog::find(const MysqlTableName& t) const {
  auto it = tables_.find(key(t));
  return it == tables_.end() ? nullptr : &it->second;
}

bool MysqlCatalog::schema_known(std::string_view schema) const {
  return std::find(schemas_.begin(), schemas_.end(), schema) != schemas_.end();
}

void MysqlCatalog::add_schema(std::string_view schema) {
  if (!schema_known(schema)) schemas_.emplace_back(schema);
}

void MysqlCatalog::add(const MysqlTableName& t, Entry e) {
  if (tables_.size() >= kMaxTables) return;  // the rest stays unknown: fails closed
  tables_[key(t)] = std::move(e);
}

void MysqlCatalog::clear() {
  tables_.clear();
  schemas_.clear();
}

struct MysqlCatalogLookup::Analyzer {
  sql::Analyzer analyzer{sql::AnalyzerOptions{{/*max_entries=*/64, /*max_bytes=*/1 << 20}, {}}};
};

MysqlCatalogLookup::MysqlCatalogLookup() : analyzer_(std::make_unique<Analyzer>()) {}
MysqlCatalogLookup::~MysqlCatalogLookup() = default;

namespace {

bool PlainName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '$'; });
}

}  // namespace

bool MysqlCatalogLookup::query(const std::vector<std::string>& schemas,
                               std::vector<uint8_t>& packet) {
  schemas_.clear();
  rows_.clear();
  have_row_ = shape_ok_ = false;
  std::string in;
  for (const std::string& s : schemas) {
    if (!PlainName(s)) continue;
    schemas_.push_back(s);
    if (!in.empty()) in += ',';
    in += '\'' + s + '\'';
  }
  if (schemas_.empty()) return false;
  // Columns: schema, name, 'BASE TABLE' / 'VIEW' / 'SYSTEM VIEW' / ..., definition (NULL
  // for tables). Bounded: a schema of more tables than the catalog keeps is cut, and what
  // was cut stays unknown.
  const std::string sql =
      "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, v.VIEW_DEFINITION "
      "FROM information_schema.TABLES t LEFT JOIN information_schema.VIEWS v "
      "ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME "
      "WHERE LOWER(t.TABLE_SCHEMA) IN (" +
      in + ") LIMIT " + std::to_string(MysqlCatalog::kMaxTables);
  packet.clear();
  mysql::AppendQueryPacket(sql, &packet);
  return true;
}

MysqlResultPlanner::Rows MysqlCatalogLookup::columns_done(size_t count, std::string&) {
  shape_ok_ = count == 4;
  return Rows::kMask;  // every value goes through value(), where it is kept
}

masking::Outcome MysqlCatalogLookup::value(size_t index, const masking::Column&,
                                           std::string_view in, std::string&) {
  if (index == 0 && have_row_) flush_row();
  have_row_ = true;
  switch (index) {
    case 0:
      row_.schema.assign(in);
      break;
    case 1:
      row_.table.assign(in);
      break;
    case 2:
      row_.type.assign(in);
      break;
    case 3:
      row_.definition.assign(in);
      break;
    default:
      break;
  }
  return masking::Outcome::kUnchanged;
}

void MysqlCatalogLookup::flush_row() {
  if (rows_.size() < MysqlCatalog::kMaxTables) rows_.push_back(std::move(row_));
  row_ = {};
  have_row_ = false;
}

void MysqlCatalogLookup::fill(MysqlCatalog& catalog, bool ok) {
  if (have_row_) flush_row();
  if (!ok || !shape_ok_ || rows_.size() >= MysqlCatalog::kMaxTables) return;  // stays unknown
  for (const Row& r : rows_) {
    MysqlTableName name;
    if (!SplitMysqlTableName("`" + r.table + "`", r.schema, name)) continue;
    MysqlCatalog::Entry e;
    // 'BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE', ...: stored rows; 'VIEW' reads others.
    e.view = r.type == "VIEW";
    if (e.view) {
      const sql::Analysis& a = analyzer_->analyzer.analyze(sql::Dialect::kMysql, r.definition);
      e.opaque = r.definition.empty() || a.unterminated;
      for (const std::string& t : a.collections) {
        MysqlTableName read;
        if (!SplitMysqlTableName(t, r.schema, read)) {
          e.opaque = true;
          continue;
        }
        e.reads.push_back(std::move(read));
      }
    }
    catalog.add(name, std::move(e));
  }
  for (const std::string& s : schemas_) catalog.add_schema(Lower(s));
}

}  // namespace dbwarden::proxy
