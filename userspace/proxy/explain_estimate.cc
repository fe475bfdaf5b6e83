// SPDX-License-Identifier: Apache-2.0
#include "proxy/explain_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "sql/operation.h"

namespace dbwarden::proxy {

namespace {

using Json = nlohmann::json;

// Plans nest one level per node; deeper than this is no plan a server writes.
constexpr int kMaxDepth = 64;
// More rows than any table holds: an answer that says so is not believed.
constexpr double kMaxRows = 1e18;

bool ContainsWordCi(std::string_view text, std::string_view lower_word) {
  const auto it = std::search(
      text.begin(), text.end(), lower_word.begin(), lower_word.end(),
      [](char a, char b) { return (a >= 'A' && a <= 'Z' ? static_cast<char>(a + 32) : a) == b; });
  return it != text.end();
}

BlastEstimate Failed(std::string why) {
  BlastEstimate e;
  e.failure = std::move(why);
  return e;
}

BlastEstimate Rows(double rows) {
  if (!std::isfinite(rows) || rows < 0 || rows > kMaxRows) {
    return Failed("EXPLAIN's estimate is out of range");
  }
  BlastEstimate e;
  e.ok = true;
  e.rows = static_cast<uint64_t>(std::llround(rows));
  return e;
}

std::optional<Json> Parse(std::string_view json) {
  if (json.size() > kMaxExplainJson) return std::nullopt;
  Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// A number, or a string holding one (MySQL 8 writes "filtered": "10.00").
std::optional<double> Number(const Json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty() || s.size() > 32) return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

// PostgreSQL: the first ModifyTable node, depth first.
const Json* FindModifyTable(const Json& node, int depth) {
  if (depth > kMaxDepth || !node.is_object()) return nullptr;
  const auto type = node.find("Node Type");
  if (type != node.end() && type->is_string() && *type == "ModifyTable") return &node;
  const auto plans = node.find("Plans");
  if (plans == node.end() || !plans->is_array()) return nullptr;
  for (const Json& child : *plans) {
    if (const Json* found = FindModifyTable(child, depth + 1)) return found;
  }
  return nullptr;
}

// MySQL: the tables of one query block's join, in join order; subqueries are not walked.
struct MyTable {
  double rows = 0;
  double filtered = 100;
  bool changed = false;  // marked "update" / "delete" (MariaDB 1, MySQL 8 true)
};

bool Truthy(const Json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end()) return false;
  return (it->is_boolean() && it->get<bool>()) || (it->is_number() && it->get<double>() != 0);
}

bool CollectTables(const Json& node, int depth, std::vector<MyTable>& out) {
  if (depth > kMaxDepth || out.size() > 256) return false;
  if (!node.is_object()) return true;
  for (const auto& [key, value] : node.items()) {
    if (key == "table" && value.is_object()) {
      MyTable t;
      const auto rows = Number(value, "rows");
      const auto examined = Number(value, "rows_examined_per_scan");
      if (!rows && !examined) {
        // A table with no estimate (a "message": "no matching row" plan): none.
        if (value.contains("message")) {
          out.push_back(MyTable{0, 100, Truthy(value, "update") || Truthy(value, "delete")});
          continue;
        }
        return false;
      }
      t.rows = rows ? *rows : *examined;
      const auto filtered = Number(value, "filtered");
      if (!filtered && value.contains("filtered")) return false;
      t.filtered = filtered.value_or(100);
      t.changed = Truthy(value, "update") || Truthy(value, "delete");
      out.push_back(t);
    } else if (key == "nested_loop" && value.is_array()) {
      for (const Json& item : value) {
        if (!CollectTables(item, depth + 1, out)) return false;
      }
    } else if (key == "subqueries" || key == "attached_subqueries" || key == "having_subqueries" ||
               key == "materialized" || key == "optimized_away_subqueries" ||
               key == "select_list_subqueries" || key == "order_by_subqueries" ||
               key == "group_by_subqueries" || key == "update_value_subqueries") {
      continue;  // filters of the join, not rows it changes
    } else if (value.is_object()) {
      // filesort, temporary_table, duplicates_removal, ordering_operation, ...: wrappers.
      if (!CollectTables(value, depth + 1, out)) return false;
    }
  }
  return true;
}

}  // namespace

bool WantsBlastRadius(std::string_view text) {
  const std::string op = sql::operation_name(text);
  if (op == "UPDATE" || op == "DELETE" || op == "MERGE") return true;
  if (op == "INSERT" || op == "REPLACE") return ContainsWordCi(text, "select");
  return false;
}

BlastEstimate ReadPgExplain(std::string_view json) {
  if (json.size() > kMaxExplainJson) return Failed("EXPLAIN's answer is too large");
  const auto j = Parse(json);
  if (!j || !j->is_array() || j->empty() || !(*j)[0].is_object()) {
    return Failed("EXPLAIN's answer is not a plan the proxy reads");
  }
  const auto plan = (*j)[0].find("Plan");
  if (plan == (*j)[0].end()) return Failed("EXPLAIN's answer is not a plan the proxy reads");
  const Json* modify = FindModifyTable(*plan, 0);
  if (modify == nullptr) return Failed("EXPLAIN's plan changes no table");
  const auto plans = modify->find("Plans");
  if (plans == modify->end() || !plans->is_array()) {
    return Failed("EXPLAIN's plan shows no rows to change");
  }
  // The input the ModifyTable changes: its "Outer" child (InitPlans and SubPlans beside it
  // are what its expressions read).
  for (const Json& child : *plans) {
    if (!child.is_object()) continue;
    const auto rel = child.find("Parent Relationship");
    if (rel != child.end() && rel->is_string() && *rel != "Outer") continue;
    const auto rows = Number(child, "Plan Rows");
    if (!rows) break;
    return Rows(*rows);
  }
  return Failed("EXPLAIN's plan shows no rows to change");
}

BlastEstimate ReadMysqlExplain(std::string_view json) {
  if (json.size() > kMaxExplainJson) return Failed("EXPLAIN's answer is too large");
  const auto j = Parse(json);
  if (!j || !j->is_object()) return Failed("EXPLAIN's answer is not a plan the proxy reads");
  const auto block = j->find("query_block");
  if (block == j->end() || !block->is_object()) {
    return Failed("EXPLAIN's answer is not a plan the proxy reads");
  }
  std::vector<MyTable> tables;
  if (!CollectTables(*block, 0, tables)) {
    return Failed("EXPLAIN's plan has a shape the proxy does not read");
  }
  if (tables.empty()) {
    // "Impossible WHERE" and the like: the optimizer knows no row qualifies.
    if (block->contains("message")) return Rows(0);
    return Failed("EXPLAIN's plan has a shape the proxy does not read");
  }
  double join = 1;
  double changed_rows = 0;
  bool marked = false;
  for (const MyTable& t : tables) {
    if (t.rows < 0 || t.filtered < 0 || t.filtered > 100) {
      return Failed("EXPLAIN's estimate is out of range");
    }
    join *= t.rows * t.filtered / 100;
    if (t.changed) {
      marked = true;
      changed_rows += t.rows;
    }
  }
  if (tables.size() == 1) return Rows(join);
  return Rows(marked ? std::min(join, changed_rows) : join);
}

std::string ExplainFailure(std::string_view sqlstate, std::string_view message) {
  // PostgreSQL's statement_timeout (57014, "... due to statement timeout"), MariaDB's
  // max_statement_time (1969, 70100) and lock_wait_timeout (1205), MySQL's
  // max_execution_time (3024).
  const bool timeout = message.find("statement timeout") != std::string_view::npos ||
                       message.find("max_statement_time") != std::string_view::npos ||
                       message.find("Lock wait timeout exceeded") != std::string_view::npos ||
                       message.find("maximum statement execution time") != std::string_view::npos;
  if (timeout) {
    return "timed out (EXPLAIN's limit is " + std::to_string(kExplainTimeoutMs / 1000) + " s)";
  }
  std::string out = "EXPLAIN failed: ";
  if (!sqlstate.empty()) out += std::string(sqlstate) + " ";
  return out + ExplainMessageLine(message);
}

std::string ExplainMessageLine(std::string_view message) {
  std::string line(message.substr(0, std::min(message.find('\n'), message.size())));
  if (line.size() > 160) {
    // Cut at a character boundary (UTF-8 continuation bytes are 10xxxxxx).
    size_t cut = 160;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    line.resize(cut);
    line += "...";
  }
  return line;
}

}  // namespace dbwarden::proxy
