// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the SQL lexer and operation_name on arbitrary bytes. Besides crashes
// and over-reads (ASan), it checks the lexer's contract: tokens move forward,
// stay inside the text, and only whitespace lies between them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sql/lexer.h"
#include "sql/operation.h"

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  dbwarden::sql::Lexer lexer(sql);
  size_t last_end = 0;
  for (;;) {
    const dbwarden::sql::Token t = lexer.next();
    for (size_t i = last_end; i < t.begin; ++i) {
      if (!is_space(sql[i])) std::abort();  // a byte no token covered
    }
    if (t.kind == dbwarden::sql::TokenKind::kEnd) {
      if (t.begin != size || t.end != size) std::abort();
      break;
    }
    if (t.begin < last_end || t.end <= t.begin || t.end > size) std::abort();
    if (t.unterminated && t.end != size) std::abort();
    last_end = t.end;
  }

  const std::string op = dbwarden::sql::operation_name(sql);
  if (op.size() > 32) std::abort();
  for (char c : op) {
    if (c < 'A' || c > 'Z') std::abort();
  }
  return 0;
}
