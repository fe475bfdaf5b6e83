// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the SQL PREPARE / EXECUTE reader (policy/sql_prepare.h) and the session store
// its results go to (proxy/sql_prepared.h). The first byte picks the dialect and MySQL's
// backslash escapes; the rest is one statement's text. Checks what they promise:
//   - PostgreSQL's prepared statement is a piece of the text; MySQL's unescaped literal is
//     never longer than the text;
//   - a name comes with every PREPARE, EXECUTE and DEALLOCATE, and text only when known;
//   - the store, fed what was read, stays within its bounds and finds what it staged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/sql_prepare.h"
#include "proxy/sql_prepared.h"

namespace {

using dbwarden::policy::read_sql_prepare;
using dbwarden::policy::SqlPrepare;
using dbwarden::policy::SqlPrepareKind;
using dbwarden::proxy::SqlPrepared;
using dbwarden::sql::Dialect;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Dialect dialect = (data[0] & 1) ? Dialect::kMysql : Dialect::kPostgresql;
  const bool backslash_escapes = (data[0] & 2) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const SqlPrepare p = read_sql_prepare(dialect, text, backslash_escapes);
  check(p.text_known || p.text.empty());
  check(p.text.size() <= text.size());
  switch (p.kind) {
    case SqlPrepareKind::kNone:
      check(p.text.empty());
      return 0;
    case SqlPrepareKind::kPrepare:
    case SqlPrepareKind::kExecute:
    case SqlPrepareKind::kDeallocate:
      check(!p.name.empty());
      break;
    case SqlPrepareKind::kExecuteImmediate:
    case SqlPrepareKind::kDeallocateAll:
      break;
  }
  if (dialect == Dialect::kPostgresql && p.text_known) {
    check(text.find(p.text) != std::string_view::npos);
  }
  SqlPrepared store;
  SqlPrepared::Entry e;
  const bool mysql = dialect == Dialect::kMysql;
  for (int round = 0; round < 3; ++round) {
    if (p.kind == SqlPrepareKind::kPrepare) {
      store.stage_prepare(p.name, p.text, p.text_known, mysql);
      check(store.find(p.name, e));
      check(e.texts.size() <= SqlPrepared::kMaxTexts);
      check(p.text_known || e.texts.empty());
    } else if (p.kind == SqlPrepareKind::kDeallocate) {
      store.stage_forget(p.name);
      check(!store.find(p.name, e));
    } else if (p.kind == SqlPrepareKind::kDeallocateAll) {
      store.stage_forget_all();
    }
    if (round == 1) {
      store.discard();
    } else {
      store.commit();
    }
    check(store.names() <= SqlPrepared::kMaxNames && store.bytes() <= SqlPrepared::kMaxBytes);
  }
  return 0;
}
