// SPDX-License-Identifier: Apache-2.0
//
// What one connection's proxy knows of the server's tables: base table or view, and a
// view's tables (its definition's, sql::Analysis::collections). Filled from
// information_schema by the relay (mysql_relay.h) on the client's own session while it is
// idle outside a transaction; a table it does not know is assumed to be anything (the
// mask plan fails closed). Cleared on DDL the proxy relays. Bounded.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/mysql_results.h"

namespace dbwarden::proxy {

struct MysqlTableName {
  std::string schema, table;  // lower-cased
  bool operator==(const MysqlTableName&) const = default;
};

// "shop.customers", "`shop`.`customers`" or "customers" (in `database`) -> lower-cased
// parts; false for a name of more than two parts.
bool SplitMysqlTableName(std::string_view name, std::string_view database, MysqlTableName& out);

class MysqlCatalog {
 public:
  static constexpr size_t kMaxTables = 20000;
  struct Entry {
    bool view = false;
    bool opaque = false;  // a view whose definition the user may not see: reads anything
    std::vector<MysqlTableName> reads;  // a view's tables
  };
  // Null: unknown (not looked up, or the lookup did not list it).
  const Entry* find(const MysqlTableName& t) const;
  // Schemas looked up (a table of one of them that is not listed stays unknown: a
  // temporary table, one created since; it is not looked up again until the next DDL).
  bool schema_known(std::string_view schema) const;
  void add_schema(std::string_view schema);
  void add(const MysqlTableName& t, Entry e);
  void clear();
  size_t size() const { return tables_.size(); }

 private:
  static std::string key(const MysqlTableName& t) { return t.schema + '\0' + t.table; }
  std::unordered_map<std::string, Entry> tables_;
  std::vector<std::string> schemas_;
};

// The lookup: one text query on the client's session, its answer read by a
// MysqlResultMasker with this as the planner (nothing of it reaches the client or the
// records), then fill() puts what it listed into the catalog.
class MysqlCatalogLookup final : public MysqlResultPlanner {
 public:
  MysqlCatalogLookup();
  ~MysqlCatalogLookup() override;
  // The COM_QUERY packet listing the tables and views of `schemas` (names of letters,
  // digits, '_' and '$' only: others are not looked up and stay unknown); false when
  // none is left.
  bool query(const std::vector<std::string>& schemas, std::vector<uint8_t>& packet);
  void column(size_t, const mysql::ColumnDefinition&) override {}
  Rows columns_done(size_t count, std::string& refusal) override;
  masking::Outcome value(size_t index, const masking::Column& type, std::string_view in,
                         std::string& out) override;
  // The answer ended; `ok`: it was read whole (not refused, no ERR). Adds what it listed.
  void fill(MysqlCatalog& catalog, bool ok);

 private:
  struct Row {
    std::string schema, table, type, definition;
  };
  void flush_row();
  std::vector<std::string> schemas_;
  std::vector<Row> rows_;
  Row row_;
  bool have_row_ = false;
  bool shape_ok_ = false;
  struct Analyzer;
  std::unique_ptr<Analyzer> analyzer_;  // the view definitions' tables (sql/analyzer.h)
};

}  // namespace dbwarden::proxy
