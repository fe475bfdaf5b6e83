// SPDX-License-Identifier: Apache-2.0
#include "proxy/sql_prepared.h"

#include <algorithm>

namespace dbwarden::proxy {
namespace {

size_t size_of(const std::string& name, const SqlPrepared::Entry& e) {
  size_t n = name.size();
  for (const std::string& t : e.texts) n += t.size();
  return n;
}

}  // namespace

void SqlPrepared::stage_prepare(std::string_view name, std::string_view text, bool known,
                                bool replace) {
  staged_.push_back(Staged{known ? Op::kPrepare : Op::kPrepareUnknown, replace, std::string(name),
                           known ? std::string(text) : std::string()});
}

void SqlPrepared::stage_forget(std::string_view name) {
  staged_.push_back(Staged{Op::kForget, false, std::string(name), {}});
}

void SqlPrepared::stage_forget_all() { staged_.push_back(Staged{Op::kForgetAll, false, {}, {}}); }

// One staged change to the entry of its name: `found` says whether the name is prepared.
void SqlPrepared::step(const Staged& s, bool replace, bool& found, Entry& e) {
  switch (s.op) {
    case Op::kForgetAll:
    case Op::kForget:
      found = false;
      e.texts.clear();
      return;
    case Op::kPrepareUnknown:
      found = true;
      e.texts.clear();
      return;
    case Op::kPrepare:
      if (!found || replace) {
        e.texts.assign(1, s.text);
      } else if (!e.texts.empty() &&
                 std::find(e.texts.begin(), e.texts.end(), s.text) == e.texts.end()) {
        // PostgreSQL: either may be the one prepared. A name whose text is not known stays
        // so, and too many candidates are as good as none.
        e.texts.push_back(s.text);
        if (e.texts.size() > kMaxTexts) e.texts.clear();
      }
      found = true;
      return;
  }
}

bool SqlPrepared::find(std::string_view name, Entry& out) const {
  const std::string key(name);
  auto it = map_.find(key);
  bool found = it != map_.end();
  out.texts.clear();
  if (found) out.texts = it->second.texts;
  bool touched = found;
  for (const Staged& s : staged_) {
    if (s.op == Op::kForgetAll || s.name == key) {
      step(s, s.replace, found, out);
      touched = true;
    }
  }
  if (!touched && fallback_) {
    if (const std::string* text = fallback_(name); text != nullptr) {
      out.texts.assign(1, *text);
      found = true;
    }
  }
  return found;
}

void SqlPrepared::put(const std::string& name, Entry e) {
  erase(name);
  const size_t size = size_of(name, e);
  if (map_.size() >= kMaxNames) return;            // not remembered: an EXECUTE of it is unknown
  if (bytes_ + size > kMaxBytes) e.texts.clear();  // remembered as prepared, text unknown
  bytes_ += size_of(name, e);
  map_.emplace(name, std::move(e));
}

void SqlPrepared::erase(const std::string& name) {
  auto it = map_.find(name);
  if (it == map_.end()) return;
  bytes_ -= size_of(it->first, it->second);
  map_.erase(it);
}

void SqlPrepared::commit(bool sure) {
  for (const Staged& s : staged_) {
    switch (s.op) {
      case Op::kForgetAll:
        map_.clear();
        bytes_ = 0;
        break;
      default: {
        auto it = map_.find(s.name);
        bool found = it != map_.end();
        Entry e;
        if (found) e.texts = it->second.texts;
        step(s, s.replace && sure, found, e);
        if (found) {
          put(s.name, std::move(e));
        } else {
          erase(s.name);
        }
      }
    }
  }
  staged_.clear();
}

}  // namespace dbwarden::proxy
