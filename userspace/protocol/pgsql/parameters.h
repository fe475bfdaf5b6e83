// SPDX-License-Identifier: Apache-2.0
//
// Bound parameter values of a Bind (and the arguments of a FunctionCall) as
// strings for the audit record (db.query.parameter.N).
//
// Layouts (https://www.postgresql.org/docs/15/protocol-message-formats.html):
//   Bind:         String portal, String statement, <values>, Int16 n, Int16[n] result formats
//   FunctionCall: Int32 function OID, <values>, Int16 result format
//   <values>:     Int16 f, Int16[f] format codes (0 text, 1 binary; f = 0: all text,
//                 f = 1: one code for all), Int16 p, p x (Int32 length (-1 = NULL), Byte[length])
//   Parse:        String name, String query, Int16 t, Int32[t] parameter type OIDs (0 = unspecified)
//
// What a value becomes:
// - NULL (length -1): nullopt.
// - Text format: the bytes as text, invalid UTF-8 replaced by U+FFFD.
// - Binary format with a type OID from the Parse we know how to read: its text
//   form (int2/4/8, oid, float4/8, bool, text/varchar/bpchar/name, uuid,
//   bytea as \x hex); anything else, or a size that does not fit the type:
//   `\x` followed by the bytes in hex.
// - Bounded: at most Limits::max_parameter_bytes of output per value; a cut
//   value ends with the marker "…[N bytes]", N being the value's full length
//   on the wire. A value whose bytes were not captured (beyond the kept
//   prefix of a large Bind, or lost in a gap) is "…[N bytes]" alone, or
//   "…[not captured]" when even its length was not captured. At most
//   Limits::max_parameters values are kept; the rest are dropped and counted.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pgsql/messages.h"

namespace dbwarden::pgsql {

using ParameterValues = std::vector<std::optional<std::string>>;

// Type OIDs from pg_type.dat that the binary decoder understands.
namespace oid {
inline constexpr uint32_t kBool = 16, kBytea = 17, kName = 19, kInt8 = 20, kInt2 = 21,
                          kInt4 = 23, kText = 25, kOid = 26, kFloat4 = 700, kFloat8 = 701,
                          kBpchar = 1042, kVarchar = 1043, kUuid = 2950;
}  // namespace oid

// Reads Parse's parameter type OIDs after the name and query strings. Empty
// when they were not captured (a cut body) or none were given.
std::vector<uint32_t> ParseParameterTypes(std::span<const uint8_t> parse_body);
// The same, strict: appends the OIDs to `types`; false when the body ends inside
// them (a body that ends right after the query has none).
bool ReadParseParameterTypes(std::span<const uint8_t> parse_body, std::vector<uint32_t>* types);

// The head of <values>: its format codes and value count. Every reader of a
// Bind's values starts here, so that they agree on what a Bind the server
// would reject is.
struct ParameterLayout {
  std::span<const uint8_t> formats;  // Int16 codes as on the wire
  uint16_t value_count = 0;
  size_t values_at = 0;  // offset of the first value's Int32 length

  // Value i's format: 0 text, 1 binary (one code applies to all; none: text).
  uint16_t format(size_t i) const;
};

// Reads <values>' head at `offset` of `body`; false when it is not all there or
// has a format count other than 0, 1 or the value count.
bool ReadParameterLayout(std::span<const uint8_t> body, size_t offset, ParameterLayout* out);

// Steps over one value whose length word starts at `*pos`: `*value` is its bytes,
// nullopt for NULL. False when the value is not wholly in `body` or its length
// is below -1; `*pos` then stays.
bool NextParameterValue(std::span<const uint8_t> body, size_t* pos,
                        std::optional<std::span<const uint8_t>>* value);

struct ParameterStats {
  uint64_t cut_values = 0;      // values cut at max_parameter_bytes or not captured
  uint64_t dropped_values = 0;  // values beyond max_parameters
};

// Reads <values> from `r`'s position. `body_length` is the message's full
// body length and `body` its kept prefix (the framer may keep less), so that
// values past the prefix are known to exist and get the marker. `types` may be
// shorter than the value count (unknown types). Returns false when the bytes
// we have cannot be <values> (the server would reject the message).
bool ReadParameterValues(std::span<const uint8_t> body, size_t offset, uint32_t body_length,
                         std::span<const uint32_t> types, const Limits& limits,
                         ParameterValues* out, ParameterStats* stats);

// One non-NULL value: `bytes` is what was captured of it, `wire_length` its
// full length (larger when only a prefix was captured). Exposed for tests.
std::string FormatParameter(bool binary, uint32_t type_oid, std::string_view bytes,
                            uint64_t wire_length, size_t max_bytes, bool* cut = nullptr);

}  // namespace dbwarden::pgsql
