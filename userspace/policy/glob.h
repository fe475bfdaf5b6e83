// SPDX-License-Identifier: Apache-2.0
//
// Shell-style globs for executables, units, containers and table names:
// `*` any run of characters (also '/' and '.'), `?` one character, `[abc]`,
// `[a-z]`, `[!x]` one of / none of, `\x` the character x. Matching is linear
// in practice (one backtrack point, the last `*`) and allocates nothing, so a
// hostile pattern cannot make decide() slow.
#pragma once

#include <string>
#include <string_view>

namespace dbwarden::policy {

// "" when `pattern` is well-formed, else what is wrong with it.
std::string glob_error(std::string_view pattern);

// `casefold`: ASCII letters compare case-insensitively.
bool glob_match(std::string_view pattern, std::string_view text, bool casefold);

}  // namespace dbwarden::policy
