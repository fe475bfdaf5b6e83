// SPDX-License-Identifier: Apache-2.0
//
// One session's SQL-level prepared statements (policy/sql_prepare.h), by name, as the
// proxy let them through: an `EXECUTE s` is judged as the statement `s` names, under the
// rules and JIT grants in force when it runs.
//
// A message's PREPAREs and DEALLOCATEs are staged while it is judged (a later EXECUTE of
// the same message sees them) and take effect only when the relay sends that message
// (commit()); the next judgment drops what a blocked or denied message staged
// (discard()). What the proxy cannot know stays unknown, and the judge treats an unknown
// name as unparsed (fail closed):
// - a statement prepared from text it did not read (MySQL `FROM @v`), before the proxy,
//   or beyond the bounds below;
// - PostgreSQL refuses a PREPARE of a name that exists and keeps the old statement, while
//   a protocol-level Close (or a failed DEALLOCATE) may have dropped it without the proxy
//   knowing: a PREPARE of a known name keeps both texts, and an EXECUTE is judged as the
//   stricter. MySQL replaces the old statement (even when the new one fails to prepare),
//   but a PREPARE after the first statement of a multi-statement message may not run at all
//   (the server stops at an error): there both are kept too.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dbwarden::proxy {

class SqlPrepared {
 public:
  static constexpr size_t kMaxNames = 1024;
  static constexpr size_t kMaxBytes = 4u << 20;  // texts and names of one session
  static constexpr size_t kMaxTexts = 4;         // PostgreSQL: candidates of one name

  struct Entry {
    std::vector<std::string> texts;  // what EXECUTE may run; empty: not known
  };

  // `replace`: MySQL (the new statement replaces the old); else the texts add up.
  // `known` false: the statement prepared is not known to the proxy.
  void stage_prepare(std::string_view name, std::string_view text, bool known, bool replace);
  void stage_forget(std::string_view name);
  void stage_forget_all();

  // The statement(s) `name` runs with the staged changes applied; false when the name is
  // not known to have been prepared. `out` may come back with no text: prepared from text
  // the proxy could not read.
  bool find(std::string_view name, Entry& out) const;

  // `sure`: the message certainly reaches the server. Not sure (it may yet be refused), a
  // PREPARE keeps the statement it would replace beside the new one.
  void commit(bool sure = true);
  void discard() { staged_.clear(); }

  // PostgreSQL: SQL and protocol-level prepared statements share one namespace, so a name
  // neither prepared nor deallocated here is looked up in the protocol decoder's statements
  // (a Parse's text), which outlive this store.
  void set_fallback(std::function<const std::string*(std::string_view)> fallback) {
    fallback_ = std::move(fallback);
  }

  size_t names() const { return map_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  enum class Op : uint8_t { kPrepare, kPrepareUnknown, kForget, kForgetAll };
  struct Staged {
    Op op;
    bool replace = false;
    std::string name;
    std::string text;
  };
  static void step(const Staged& s, bool replace, bool& found, Entry& e);
  void put(const std::string& name, Entry e);
  void erase(const std::string& name);

  std::unordered_map<std::string, Entry> map_;
  std::vector<Staged> staged_;
  size_t bytes_ = 0;
  std::function<const std::string*(std::string_view)> fallback_;
};

}  // namespace dbwarden::proxy
