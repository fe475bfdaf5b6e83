// SPDX-License-Identifier: Apache-2.0
//
// A fixed in-memory catalog for the lineage tests: a few tables in `public`
// and `hr`, views over them (nested, renaming, cyclic, a deep chain), and a
// search_path of `public` only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sql/lineage.h"

namespace dbw_test {

class FixedCatalog : public dbwarden::sql::Catalog {
 public:
  FixedCatalog() {
    table("public", "people", {"id", "name", "ssn", "email", "manager_id"});
    table("public", "orders", {"id", "person_id", "amount", "note"});
    table("public", "accounts", {"id", "person_id", "card"});
    table("hr", "salaries", {"id", "person_id", "salary"});
    view("public", "people_v", {"id", "uname", "ssn"},
         " SELECT people.id, upper(people.name) AS uname, people.ssn FROM people;");
    view("public", "people_vv", {"id", "ssn"},
         " SELECT people_v.id, people_v.ssn FROM people_v WHERE people_v.ssn LIKE '1%';");
    view("public", "renamed", {"a", "b"}, "SELECT id, ssn FROM people");
    view("public", "loop_a", {"id"}, "SELECT id FROM loop_b");
    view("public", "loop_b", {"id"}, "SELECT id FROM loop_a");
    view("public", "broken", {"id", "extra"}, "SELECT id FROM people");
    // deep_0 reads people; deep_k reads deep_(k-1).
    for (int k = 0; k < 20; ++k) {
      const std::string from = k == 0 ? "people" : "deep_" + std::to_string(k - 1);
      view("public", "deep_" + std::to_string(k), {"ssn"}, "SELECT ssn FROM " + from);
    }
  }

  std::optional<Relation> relation(std::string_view schema, std::string_view name) override {
    ++lookups;
    const std::string s = schema.empty() ? "public" : std::string(schema);
    auto it = relations_.find(s + "." + std::string(name));
    if (it == relations_.end()) return std::nullopt;
    return it->second;
  }

  int lookups = 0;

 private:
  void table(std::string schema, std::string name, std::vector<std::string> columns) {
    Relation r{schema, name, false, std::move(columns), ""};
    relations_[schema + "." + name] = std::move(r);
  }
  void view(std::string schema, std::string name, std::vector<std::string> columns,
            std::string definition) {
    Relation r{schema, name, true, std::move(columns), std::move(definition)};
    relations_[schema + "." + name] = std::move(r);
  }

  std::map<std::string, Relation> relations_;
};

}  // namespace dbw_test
