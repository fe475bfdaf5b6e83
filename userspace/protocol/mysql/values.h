// SPDX-License-Identifier: Apache-2.0
//
// COM_STMT_EXECUTE: the request header and the bound parameters, decoded by
// type into strings. Binary value encodings:
// https://mariadb.com/kb/en/com_stmt_execute/ and
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html
//
//   int<1> 0x17, int<4> statement id, int<1> flags, int<4> iteration count
//   [MySQL with CLIENT_QUERY_ATTRIBUTES: int<lenenc> parameter count]
//   if parameters > 0:
//     byte<(n + 7) / 8> NULL bitmap, int<1> new-params-bound flag
//     if bound: n x (int<1> type, int<1> 0x80 if unsigned
//                    [, string<lenenc> name with query attributes])
//     values of the non-NULL parameters not sent as long data, by type
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/mysql/messages.h"

namespace dbwarden::mysql {

struct ExecuteHeader {
  uint32_t statement_id = 0;
  uint8_t flags = 0;
};
bool ParseExecuteHeader(std::span<const uint8_t> payload, ExecuteHeader* out);

// How a binary-protocol value of a type is laid out: fixed-width little-endian
// (`width` bytes), int<1> length then that many bytes (DATE, DATETIME,
// TIMESTAMP, TIME), or a length-encoded string (strings, decimals, blobs, JSON,
// BIT, GEOMETRY). NULL has no bytes (its bit in the row's NULL bitmap).
struct BinaryLayout {
  enum Kind : uint8_t { kFixed, kLengthByte, kLenenc, kNone, kUnknown } kind = kUnknown;
  uint8_t width = 0;
};
BinaryLayout BinaryLayoutOf(uint8_t type);

// Renders one binary-protocol value of `type` as text: integers and floats
// in decimal, DATE/DATETIME/TIMESTAMP as "YYYY-MM-DD[ hh:mm:ss[.ffffff]]",
// TIME as "[-]hh:mm:ss[.ffffff]", strings/decimals/blobs as their bytes, cut
// to `max_bytes`. False for an unknown type or a value cut short.
bool DecodeBinaryValue(Reader& r, uint8_t type, bool is_unsigned, size_t max_bytes,
                       std::string* out);

struct BoundParameters {
  std::vector<uint16_t> types;  // type | 0x8000 if unsigned; kept across executes
};

// Decodes the parameter block of a COM_STMT_EXECUTE payload for a statement
// with `count` parameters. `types` holds the types bound by an earlier
// execute and is updated when the request rebinds them. Parameters whose
// value came earlier by COM_STMT_SEND_LONG_DATA are taken from `long_data`
// (one entry per parameter; empty optional-like: `has_long_data[i]`).
// A parameter with long data takes it even when its NULL bit is set (as the
// server does). NULL values come out as nullopt. Stops at the first value it cannot read
// (the request was cut): `out` then holds the ones before it (and the part
// of the cut one that was there), and false.
bool DecodeParameters(std::span<const uint8_t> payload, uint16_t count, bool query_attributes,
                      size_t max_bytes, BoundParameters* types,
                      const std::vector<std::string>& long_data,
                      const std::vector<bool>& has_long_data,
                      std::vector<std::optional<std::string>>* out);

}  // namespace dbwarden::mysql
