// SPDX-License-Identifier: Apache-2.0
//
// Runs sql::trace_pg_lineage() for test_lineage_pg.py. Reads one JSON object on
// stdin: {"search_path": ["public", ...], "relations": [{"schema", "name",
// "is_view", "columns": [...], "view_definition"}], "statements": [...]}, the
// catalog as the test read it from a real server; writes one JSON object per
// statement, one per line: {"traced", "why", "columns": [{"name", "sources":
// ["schema.table.column", ...], "flow": "copy"|"derived"}], "predicate": [...],
// "stored": [...]}.
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sql/lineage.h"

namespace {

using dbwarden::sql::Catalog;
using dbwarden::sql::ColumnRef;
using Json = nlohmann::json;

class JsonCatalog : public Catalog {
 public:
  explicit JsonCatalog(const Json& in) {
    for (const Json& p : in.at("search_path")) search_path_.push_back(p.get<std::string>());
    for (const Json& r : in.at("relations")) {
      Relation rel;
      rel.schema = r.at("schema").get<std::string>();
      rel.name = r.at("name").get<std::string>();
      rel.is_view = r.at("is_view").get<bool>();
      rel.columns = r.at("columns").get<std::vector<std::string>>();
      if (rel.is_view) rel.view_definition = r.at("view_definition").get<std::string>();
      relations_[rel.schema + "." + rel.name] = std::move(rel);
    }
  }

  std::optional<Relation> relation(std::string_view schema, std::string_view name) override {
    if (!schema.empty()) return find(std::string(schema) + "." + std::string(name));
    for (const std::string& s : search_path_) {
      if (auto r = find(s + "." + std::string(name))) return r;
    }
    return std::nullopt;
  }

 private:
  std::optional<Relation> find(const std::string& key) const {
    auto it = relations_.find(key);
    if (it == relations_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<std::string> search_path_;
  std::map<std::string, Relation> relations_;
};

Json refs(const std::vector<ColumnRef>& in) {
  Json out = Json::array();
  for (const ColumnRef& r : in) out.push_back(r.schema + "." + r.table + "." + r.column);
  return out;
}

}  // namespace

int main() {
  const std::string text((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
  const Json in = Json::parse(text);
  JsonCatalog catalog(in);
  for (const Json& s : in.at("statements")) {
    const dbwarden::sql::Lineage l = trace_pg_lineage(s.get<std::string>(), catalog);
    Json out = {{"traced", l.traced}, {"why", l.why}, {"columns", Json::array()}};
    for (const auto& c : l.columns) {
      out["columns"].push_back(
          {{"name", c.name},
           {"sources", refs(c.sources)},
           {"flow", c.flow == dbwarden::sql::Flow::kCopy ? "copy" : "derived"}});
    }
    out["predicate"] = refs(l.predicate_columns);
    out["stored"] = refs(l.stored_columns);
    std::cout << out.dump() << "\n";
  }
  return 0;
}
