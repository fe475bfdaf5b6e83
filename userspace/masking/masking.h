// SPDX-License-Identifier: Apache-2.0
//
// Masking engine: finds sensitive items in text values (content detectors)
// and replaces values or items with a masked form that is still a valid value
// of the column's type, in PostgreSQL's and MySQL's text and binary result
// formats. The proxy's result relays call it per value; the policy builds one
// Masker per loaded file (its user-defined detectors and hash key).
//
// Detection runs ONE multi-pattern engine over a value (Hyperscan, or RE2::Set
// where the build has no Hyperscan: DBWARDEN_HYPERSCAN); only for the rare
// value where a detector's pattern fired are its items located exactly and
// validated (Luhn for cards, mod-97 for IBANs, ...): near-misses stay as they
// are. Semantics of every detector and style: README "Enforcement -> Policy",
// "Masking".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dbwarden::masking {

// Built-in detectors; ids are bit positions in a DetectorSet. User-defined
// detectors take ids kFirstCustom, kFirstCustom + 1, ... in declaration order.
enum Detector : uint8_t {
  kEmail = 0,
  kPaymentCard = 1,
  kIban = 2,
  kPhone = 3,
  kUsSsn = 4,
  kToken = 5,
};
inline constexpr uint8_t kBuiltinDetectors = 6;
inline constexpr uint8_t kFirstCustom = kBuiltinDetectors;
inline constexpr uint8_t kMaxDetectors = 64;
inline constexpr size_t kMaxCustomDetectors = kMaxDetectors - kBuiltinDetectors;

// Bit i set: detector id i is on.
using DetectorSet = uint64_t;
inline constexpr DetectorSet kAllBuiltins = (DetectorSet{1} << kBuiltinDetectors) - 1;

// "email", "payment_card", "iban", "phone", "us_ssn", "token"; "" past them.
std::string_view builtin_detector_name(uint8_t id);
// The id of a built-in name, or -1.
int builtin_detector_id(std::string_view name);

enum class Style : uint8_t {
  kFull,     // text: "****" (hides the length too)
  kPartial,  // text: letters and digits become '*' except the last 4 (of 8 or more)
  kFormat,   // text: same length and character classes, keyed pseudo-random
  kHash,     // text: "h:" + 32 hex digits of HMAC-SHA256(key, value): stable, joinable
  kNull,     // NULL where the column may be NULL, else the type's fixed substitute
};
std::string_view style_name(Style style);
// "full" ... "null"; false for anything else.
bool parse_style(std::string_view name, Style& out);

// What a value is, for the purpose of producing a valid replacement.
enum class ValueType : uint8_t {
  kText,  // text, varchar, bpchar, name, MySQL strings, ENUM, SET
  kBool,
  kInt1,  // MySQL TINYINT (binary: 1 byte)
  kInt2,
  kInt4,  // also MySQL INT24 (binary: 4 bytes)
  kInt8,
  kYear,  // MySQL YEAR (binary: 2 bytes)
  kNumeric,
  kFloat4,
  kFloat8,
  kDate,
  kTime,
  kTimestamp,
  kTimestampTz,
  kUuid,
  kJson,
  kJsonb,
  kBytes,  // bytea, MySQL BLOB/BINARY with the binary charset
  kOther,  // a type with no substitute here: masked as NULL
};
bool is_text_type(ValueType type);

// The wire format of one value. The bytes given and produced are the value's
// payload without the framing the relay owns: PostgreSQL's int32 field length,
// MySQL's length-encoded prefix (text protocol; binary strings and decimals)
// or the 1-byte length of a binary DATE/DATETIME/TIME. Fixed-width binary
// numbers keep their width.
enum class Encoding : uint8_t { kPgText, kPgBinary, kMysqlText, kMysqlBinary };

// PostgreSQL type OID (RowDescription) -> ValueType; unknown OIDs -> kOther.
ValueType pg_value_type(uint32_t type_oid);
// MySQL column definition (type byte, flags, character set) -> ValueType.
ValueType mysql_value_type(uint8_t column_type, uint16_t flags, uint16_t charset);

struct Column {
  ValueType type = ValueType::kText;
  Encoding encoding = Encoding::kPgText;
  // May the client receive NULL here? MySQL: !(flags & NOT_NULL). PostgreSQL's
  // RowDescription does not say; true unless the catalog says NOT NULL.
  bool nullable = true;
};

enum class Outcome : uint8_t {
  kUnchanged,  // `out` untouched: send the value as it was
  kReplaced,   // send `out` instead
  kNull,       // send NULL instead
};

// One detected item: bytes [begin, end) of the value, and the detector's id.
struct Span {
  uint32_t begin = 0;
  uint32_t end = 0;
  uint8_t detector = 0;
};

struct CustomDetector {
  std::string name;   // as the policy's rules refer to it
  std::string regex;  // RE2 syntax; must not match the empty string
};

struct MaskerOptions {
  std::vector<CustomDetector> custom;
  // HMAC key for kHash and kFormat; empty: a random key per Masker (so kFormat
  // still works, and kHash is stable only within the process).
  std::string hash_key;
  // RE2::Set even where the build has Hyperscan (tests compare the two).
  bool use_re2_set = false;
};

// Thread-safe after create(): every method is const and keeps its scratch
// per thread.
class Masker {
 public:
  static Result<std::unique_ptr<const Masker>> create(MaskerOptions options);
  ~Masker();
  Masker(const Masker&) = delete;
  Masker& operator=(const Masker&) = delete;

  // Every validated item of `detectors` in `text`, in order, not overlapping
  // (an overlap keeps the earlier item). Appends to `out`; returns how many.
  size_t scan_text(std::string_view text, DetectorSet detectors, std::vector<Span>& out) const;

  // A column rule: the whole value, by style and type (text styles on a
  // non-text type give the type's fixed substitute).
  Outcome mask_value(const Column& column, Style style, std::string_view in,
                     std::string& out) const;

  // A content rule: items of `detectors` in a text value are masked in place
  // by `style` (kNull is not a content style: items get kFull). Non-text
  // values are left alone. `found` (optional) receives the spans masked.
  Outcome mask_content(const Column& column, Style style, DetectorSet detectors,
                       std::string_view in, std::string& out,
                       std::vector<Span>* found = nullptr) const;

  // Names by id: built-ins then the custom ones. "" for an unknown id.
  std::string_view detector_name(uint8_t id) const;
  size_t detector_count() const;
  // "hyperscan" or "re2-set": the engine this Masker runs.
  std::string_view engine_name() const;

  struct Impl;

 private:
  explicit Masker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The hash key: a regular file of 16-4096 bytes (its bytes as they are).
Result<std::string> load_hash_key(const std::string& path);

}  // namespace dbwarden::masking
