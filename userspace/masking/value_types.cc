// SPDX-License-Identifier: Apache-2.0
//
// Column types as the wire describes them -> ValueType, and each type's fixed
// substitute in every encoding: the value a masked column gets when it cannot
// be NULL or the style is not a text style.
//   PostgreSQL OIDs: src/include/catalog/pg_type.dat; binary formats: the
//   types' *send functions (date: int32 days since 2000-01-01; timestamp:
//   int64 microseconds since 2000-01-01; numeric: int16 ndigits, weight,
//   sign, dscale, then digits; jsonb: version byte 1, then text).
//   MySQL: type codes named in protocol/mysql/messages.h (ColumnType);
//   and the binary protocol's value layouts (binary_protocol_value.html):
//   integers little-endian by width, DATE/DATETIME as year(2) month day
//   [hour minute second], TIME of length 0 = 00:00:00, DECIMAL as a string.
#include "masking/value_types.h"

#include "protocol/mysql/messages.h"

namespace dbwarden::masking {

ValueType pg_value_type(uint32_t oid) {
  switch (oid) {
    case 16:
      return ValueType::kBool;
    case 17:
      return ValueType::kBytes;
    case 19:    // name
    case 25:    // text
    case 1042:  // bpchar
    case 1043:  // varchar
      return ValueType::kText;
    case 20:
      return ValueType::kInt8;
    case 21:
      return ValueType::kInt2;
    case 23:
    case 26:  // oid: 4 bytes in binary, digits in text
      return ValueType::kInt4;
    case 114:
      return ValueType::kJson;
    case 700:
      return ValueType::kFloat4;
    case 701:
      return ValueType::kFloat8;
    case 1082:
      return ValueType::kDate;
    case 1083:
      return ValueType::kTime;
    case 1114:
      return ValueType::kTimestamp;
    case 1184:
      return ValueType::kTimestampTz;
    case 1700:
      return ValueType::kNumeric;
    case 2950:
      return ValueType::kUuid;
    case 3802:
      return ValueType::kJsonb;
    default:
      return ValueType::kOther;
  }
}

ValueType mysql_value_type(uint8_t type, uint16_t flags, uint16_t charset) {
  using namespace mysql;
  switch (type) {
    case kTypeDecimal:
    case kTypeNewDecimal:
      return ValueType::kNumeric;
    case kTypeTiny:
      return ValueType::kInt1;
    case kTypeShort:
      return ValueType::kInt2;
    case kTypeLong:
    case kTypeInt24:
      return ValueType::kInt4;
    case kTypeFloat:
      return ValueType::kFloat4;
    case kTypeDouble:
      return ValueType::kFloat8;
    case kTypeLongLong:
      return ValueType::kInt8;
    case kTypeDate:
    case kTypeNewDate:
      return ValueType::kDate;
    case kTypeTime:
    case kTypeTime2:
      return ValueType::kTime;
    case kTypeTimestamp:
    case kTypeDatetime:
    case kTypeTimestamp2:
    case kTypeDatetime2:
      return ValueType::kTimestamp;
    case kTypeYear:
      return ValueType::kYear;
    case kTypeJson:
      return ValueType::kJson;
    case kTypeVarchar:
    case kTypeEnum:
    case kTypeSet:
    case kTypeTinyBlob:
    case kTypeMediumBlob:
    case kTypeLongBlob:
    case kTypeBlob:
    case kTypeVarString:
    case kTypeString:
      // ENUM/SET columns come as STRING with a flag; a substitute string need
      // not be a member for the client to read it.
      (void)flags;
      return charset == kBinaryCharset ? ValueType::kBytes : ValueType::kText;
    default:  // NULL, BIT, GEOMETRY, vectors: no substitute here
      return ValueType::kOther;
  }
}

bool is_text_type(ValueType type) { return type == ValueType::kText; }

bool substitute(ValueType type, Encoding enc, std::string& out) {
  using namespace std::string_view_literals;
  const bool pg = enc == Encoding::kPgText || enc == Encoding::kPgBinary;
  const bool binary = enc == Encoding::kPgBinary || enc == Encoding::kMysqlBinary;
  out.clear();
  if (!binary) {
    switch (type) {
      case ValueType::kText:
        return true;  // ""
      case ValueType::kBool:
        out = pg ? "f" : "0";
        return true;
      case ValueType::kInt1:
      case ValueType::kInt2:
      case ValueType::kInt4:
      case ValueType::kInt8:
      case ValueType::kNumeric:
      case ValueType::kFloat4:
      case ValueType::kFloat8:
        out = "0";
        return true;
      case ValueType::kYear:
        out = "1970";
        return true;
      case ValueType::kDate:
        out = "1970-01-01";
        return true;
      case ValueType::kTime:
        out = "00:00:00";
        return true;
      case ValueType::kTimestamp:
        out = "1970-01-01 00:00:00";
        return true;
      case ValueType::kTimestampTz:
        out = pg ? "1970-01-01 00:00:00+00" : "1970-01-01 00:00:00";
        return true;
      case ValueType::kUuid:
        out = "00000000-0000-0000-0000-000000000000";
        return true;
      case ValueType::kJson:
      case ValueType::kJsonb:
        out = "{}";
        return true;
      case ValueType::kBytes:
        if (pg) out = "\\x";  // bytea's hex output form, empty
        return true;
      case ValueType::kOther:
        return false;
    }
    return false;
  }
  // Binary encodings.
  switch (type) {
    case ValueType::kText:
    case ValueType::kBytes:
      return true;  // empty
    case ValueType::kBool:
    case ValueType::kInt1:
      out.assign(1, '\0');
      return true;
    case ValueType::kInt2:
      out.assign(2, '\0');
      return true;
    case ValueType::kInt4:
    case ValueType::kFloat4:
      out.assign(4, '\0');
      return true;
    case ValueType::kInt8:
    case ValueType::kFloat8:
      out.assign(8, '\0');
      return true;
    case ValueType::kYear:
      out = "\xb2\x07"sv;  // 1970 little-endian
      return true;
    case ValueType::kNumeric:
      if (pg) {
        out.assign(8, '\0');  // ndigits 0, weight 0, sign +, dscale 0: zero
      } else {
        out = "0";
      }
      return true;
    case ValueType::kDate:
      // PostgreSQL: -10957 days from 2000-01-01, big-endian. MySQL: 1970-01-01.
      out = pg ? "\xff\xff\xd5\x33"sv : "\xb2\x07\x01\x01"sv;
      return true;
    case ValueType::kTime:
      if (pg) out.assign(8, '\0');  // MySQL: length 0 is 00:00:00
      return true;
    case ValueType::kTimestamp:
    case ValueType::kTimestampTz:
      // PostgreSQL: -946684800000000 microseconds, big-endian. MySQL: 7 bytes.
      out = pg ? "\xff\xfc\xa2\xfe\xc4\xc8\x20\x00"sv : "\xb2\x07\x01\x01\x00\x00\x00"sv;
      return true;
    case ValueType::kUuid:
      if (pg) {
        out.assign(16, '\0');
      } else {
        out = "00000000-0000-0000-0000-000000000000";
      }
      return true;
    case ValueType::kJson:
      out = "{}";
      return true;
    case ValueType::kJsonb:
      out = pg ? "\x01{}"sv : "{}"sv;
      return true;
    case ValueType::kOther:
      return false;
  }
  return false;
}

}  // namespace dbwarden::masking
