// SPDX-License-Identifier: Apache-2.0
//
// The SQL keywords the normaliser upper-cases and the classifier recognises:
// the common statement and clause words of PostgreSQL and MySQL, not either
// grammar's full list. A word missing here is kept as written, which only
// costs fingerprint stability across the case it is written in.
#pragma once

#include <span>
#include <string_view>

namespace dbwarden::sql {

// ASCII case-insensitive membership in the keyword list.
bool is_keyword(std::string_view word);

// The keyword `word` spells in any case, as the list writes it (upper case),
// or an empty view when it is not one. The view is static: the normaliser
// appends it instead of upper-casing the word byte by byte.
std::string_view keyword_upper(std::string_view word);

// The list itself (upper case, sorted): for tests that check is_keyword
// against a plain search of it.
std::span<const std::string_view> keyword_list();

}  // namespace dbwarden::sql
