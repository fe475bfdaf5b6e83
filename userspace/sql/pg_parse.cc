// SPDX-License-Identifier: Apache-2.0
#include "sql/pg_parse.h"

#include <pg_query.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

namespace dbwarden::sql {
namespace {

// libpg_query's JSON (PostgreSQL 15 node names), e.g. for
// `UPDATE t SET x = 1 FROM o WHERE ...`:
//
//   {"version":150001,"stmts":[{"stmt":{"UpdateStmt":{
//      "relation":{"relname":"t",...},"targetList":[...],
//      "whereClause":{...},"fromClause":[{"RangeVar":{"relname":"o",...}}]}}}]}
//
// A node is {"TypeName": {...}} where a field holds any Node, and the bare
// struct where the field's type is fixed (UpdateStmt.relation, SelectStmt.larg);
// a RangeVar is recognised by its "relname" either way. Fields come in the
// struct's declaration order, so document order is source order for lists.
//
// The tree is read as a stream of SAX events, never built: for a 1.4 KB tree
// that costs ~11 us, against ~26 us for an nlohmann DOM (sorted objects) and
// ~63 us for an insertion-ordered one (bench/README.md, "SQL analysis").

// One relation named somewhere in a statement, with where it was named.
struct Relation {
  std::string name;  // [catalog.][schema.]relname
  bool has_schema = false;
  bool is_relation = false;  // the statement's own "relation" field
  // SELECT main-table candidates: the fromClause of the statement's select
  // after `larg_depth` steps down its set operation's left arm.
  bool in_from = false;
  size_t larg_depth = 0;
};

// One open object or array of the tree.
struct Frame {
  std::string key;  // the key it sits under in its parent; "[]" for array elements
  bool object = false;
  // RangeVar fields, when this object has them.
  std::string relname, schemaname, catalogname;
  bool has_relname = false;
};

class TreeSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit TreeSax(ParsedStatement& out) : out_(out) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

  bool key(string_t& k) override {
    key_ = k;
    if (in_statement() && depth_ == stmt_depth_) {
      // A field of the statement node itself.
      if (key_ == "whereClause") stmt_has_where_ = true;
      if (key_ == "fromClause") has_from_ |= 1;
    } else if (in_statement() && key_ == "fromClause" && larg_chain(depth_)) {
      // The fromClause of a select down the left arm of a set operation.
      const size_t level = depth_ - stmt_depth_;
      if (level < 64) has_from_ |= uint64_t{1} << level;
    }
    return true;
  }

  bool string(string_t& v) override {
    if (depth_ == 0) return true;
    Frame& f = frames_[depth_ - 1];
    if (key_ == "relname") {
      f.relname = v;
      f.has_relname = true;
    } else if (key_ == "schemaname") {
      f.schemaname = v;
    } else if (key_ == "catalogname") {
      f.catalogname = v;
    } else if (key_ == "ctename" && f.key == "CommonTableExpr") {
      ctes_.push_back(v);
    } else if (in_statement() && stmt_type_ == "DropStmt") {
      if (key_ == "removeType" && depth_ == stmt_depth_) {
        drop_type_ = v;
      } else if (key_ == "sval" && depth_ > stmt_depth_ + 1 &&
                 frames_[stmt_depth_].key == "objects") {
        if (!drop_name_.empty()) drop_name_ += '.';
        drop_name_ += v;
      }
    }
    return true;
  }

  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }

  bool end_object() override {
    if (depth_ == 0) return false;
    const Frame& f = frames_[depth_ - 1];
    if (in_statement()) {
      if (f.has_relname) relation_ended(f);
      // An element of DropStmt.objects: one dotted name.
      if (stmt_type_ == "DropStmt" && depth_ == stmt_depth_ + 2 &&
          frames_[stmt_depth_].key == "objects" && !drop_name_.empty()) {
        drop_names_.push_back(drop_name_);
        drop_name_.clear();
      }
      if (depth_ == stmt_depth_) finish_statement();
    }
    return close();
  }

 private:
  bool in_statement() const { return stmt_depth_ != 0; }

  // frames_[stmt_depth_ .. d-1] all sit under "larg" (d: a depth of an open object).
  bool larg_chain(size_t d) const {
    for (size_t i = stmt_depth_; i < d; ++i) {
      if (frames_[i].key != "larg") return false;
    }
    return true;
  }

  bool open(bool object) {
    const bool parent_is_object = depth_ > 0 && frames_[depth_ - 1].object;
    if (frames_.size() <= depth_) frames_.emplace_back();
    Frame& f = frames_[depth_];
    f.key = parent_is_object ? key_ : std::string_view("[]");
    f.object = object;
    f.relname.clear();
    f.schemaname.clear();
    f.catalogname.clear();
    f.has_relname = false;
    ++depth_;
    if (!object) return true;
    // {"stmts":[{"stmt":{"SelectStmt":{...}}}]}: the object under the
    // wrapper's one key is the statement node.
    if (depth_ == 5 && frames_[3].key == "stmt" && !in_statement()) {
      begin_statement(f.key);
    }
    return true;
  }

  bool close() {
    if (depth_ == 0) return false;
    --depth_;
    return true;
  }

  void begin_statement(const std::string& type) {
    stmt_depth_ = depth_;
    stmt_type_ = type;
    stmt_has_where_ = false;
    has_from_ = 0;
    relations_.clear();
    ctes_.clear();
    drop_type_.clear();
    drop_name_.clear();
    drop_names_.clear();
  }

  void relation_ended(const Frame& f) {
    Relation r;
    for (const std::string* part : {&f.catalogname, &f.schemaname}) {
      if (!part->empty()) {
        r.name += *part;
        r.name += '.';
      }
    }
    r.name += f.relname;
    r.has_schema = !f.schemaname.empty();
    const size_t d = depth_;  // this RangeVar's frame is frames_[d - 1]
    r.is_relation = d == stmt_depth_ + 1 && f.key == "relation";
    // Path from the statement: "larg"* then "fromClause".
    size_t i = stmt_depth_;
    while (i < d - 1 && frames_[i].key == "larg") ++i;
    r.larg_depth = i - stmt_depth_;
    r.in_from = i < d - 1 && frames_[i].key == "fromClause";
    relations_.push_back(std::move(r));
  }

  bool is_cte(const Relation& r) const {
    if (r.has_schema) return false;
    for (const std::string& c : ctes_) {
      if (c == r.name) return true;
    }
    return false;
  }

  void finish_statement() {
    out_.has_where = (out_.statements == 0 || out_.has_where) && stmt_has_where_;
    ++out_.statements;
    if ((stmt_type_ == "UpdateStmt" || stmt_type_ == "DeleteStmt") && !stmt_has_where_) {
      out_.unbounded_write = true;
    }
    // DROP TABLE/VIEW name lists are lists of String nodes, not RangeVars.
    if (stmt_type_ == "DropStmt" &&
        (drop_type_ == "OBJECT_TABLE" || drop_type_ == "OBJECT_VIEW" ||
         drop_type_ == "OBJECT_MATVIEW" || drop_type_ == "OBJECT_FOREIGN_TABLE")) {
      for (const std::string& n : drop_names_) add(n);
    }
    // The main table: the statement's own relation, else the first in its
    // FROM (through set operations' left arms), else none from here.
    const Relation* main = nullptr;
    for (const Relation& r : relations_) {
      if (r.is_relation) {
        main = &r;
        break;
      }
    }
    if (main == nullptr && stmt_type_ == "SelectStmt" && has_from_ != 0) {
      size_t k = 0;
      while (k < 64 && !(has_from_ & (uint64_t{1} << k))) ++k;
      for (const Relation& r : relations_) {
        if (r.in_from && r.larg_depth == k && !is_cte(r)) {
          main = &r;
          break;
        }
      }
    }
    if (main != nullptr) add_main(main->name);
    for (const Relation& r : relations_) {
      if (!is_cte(r)) add(r.name);
    }
    stmt_depth_ = 0;
  }

  // Only the first statement of a multi-statement text has the main table.
  void add_main(const std::string& name) {
    if (found_main_) {
      add(name);
      return;
    }
    found_main_ = true;
    for (auto it = out_.collections.begin(); it != out_.collections.end(); ++it) {
      if (*it == name) {
        out_.collections.erase(it);
        break;
      }
    }
    out_.collections.insert(out_.collections.begin(), name);
  }

  void add(const std::string& name) {
    for (const std::string& have : out_.collections) {
      if (have == name) return;
    }
    out_.collections.push_back(name);
  }

  ParsedStatement& out_;
  std::vector<Frame> frames_;  // frames_[0 .. depth_-1] are open; kept for their buffers
  size_t depth_ = 0;
  std::string key_;
  // The statement being read (stmt_depth_ == 0: none).
  size_t stmt_depth_ = 0;
  std::string stmt_type_;
  bool stmt_has_where_ = false;
  uint64_t has_from_ = 0;  // bit k: the select k steps down "larg" has a fromClause
  std::vector<Relation> relations_;
  std::vector<std::string> ctes_;
  std::string drop_type_, drop_name_;
  std::vector<std::string> drop_names_;
  bool found_main_ = false;
};

}  // namespace

bool pg_parse(const std::string& sql, ParsedStatement& out) {
  out = ParsedStatement{};
  PgQueryParseResult result = pg_query_parse(sql.c_str());
  if (result.error != nullptr || result.parse_tree == nullptr) {
    pg_query_free_parse_result(result);
    return false;
  }
  TreeSax reader(out);
  const bool ok = nlohmann::json::sax_parse(std::string_view(result.parse_tree), &reader);
  pg_query_free_parse_result(result);
  return ok;
}

}  // namespace dbwarden::sql
