// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/values.h"

#include <charconv>
#include <cstdio>
#include <cstring>

namespace dbwarden::mysql {
namespace {

template <typename T>
void AppendNumber(T v, std::string* out) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

void Append2(unsigned v, std::string* out) {
  out->push_back(static_cast<char>('0' + (v / 10) % 10));
  out->push_back(static_cast<char>('0' + v % 10));
}

bool DecodeDateTime(Reader& r, std::string* out) {
  uint8_t len = 0;
  if (!r.u8(&len)) return false;
  uint16_t year = 0;
  uint8_t month = 0, day = 0, hour = 0, minute = 0, second = 0;
  uint32_t micro = 0;
  if (len != 0 && len != 4 && len != 7 && len != 11) return false;
  if (len >= 4 && (!r.u16(&year) || !r.u8(&month) || !r.u8(&day))) return false;
  if (len >= 7 && (!r.u8(&hour) || !r.u8(&minute) || !r.u8(&second))) return false;
  if (len >= 11 && !r.u32(&micro)) return false;
  char buf[48];
  int n = std::snprintf(buf, sizeof(buf), "%04u-%02u-%02u", unsigned{year}, unsigned{month},
                        unsigned{day});
  if (len >= 7) {
    n += std::snprintf(buf + n, sizeof(buf) - n, " %02u:%02u:%02u", unsigned{hour},
                       unsigned{minute}, unsigned{second});
  }
  if (len >= 11) n += std::snprintf(buf + n, sizeof(buf) - n, ".%06u", micro % 1000000);
  out->append(buf, static_cast<size_t>(n));
  return true;
}

bool DecodeTime(Reader& r, std::string* out) {
  uint8_t len = 0, negative = 0, hour = 0, minute = 0, second = 0;
  uint32_t days = 0, micro = 0;
  if (!r.u8(&len)) return false;
  if (len != 0 && len != 8 && len != 12) return false;
  if (len >= 8 &&
      (!r.u8(&negative) || !r.u32(&days) || !r.u8(&hour) || !r.u8(&minute) || !r.u8(&second))) {
    return false;
  }
  if (len >= 12 && !r.u32(&micro)) return false;
  if (negative) out->push_back('-');
  AppendNumber(uint64_t{days} * 24 + hour, out);
  if (uint64_t{days} * 24 + hour < 10) out->insert(out->end() - 1, '0');
  out->push_back(':');
  Append2(minute, out);
  out->push_back(':');
  Append2(second, out);
  if (len >= 12) {
    char buf[16];
    const int n = std::snprintf(buf, sizeof(buf), ".%06u", micro % 1000000);
    out->append(buf, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

bool ParseExecuteHeader(std::span<const uint8_t> payload, ExecuteHeader* out) {
  Reader r(payload);
  uint8_t cmd = 0;
  uint32_t iterations = 0;
  return r.u8(&cmd) && cmd == kComStmtExecute && r.u32(&out->statement_id) && r.u8(&out->flags) &&
         r.u32(&iterations);
}

BinaryLayout BinaryLayoutOf(uint8_t type) {
  switch (type) {
    case kTypeNull:
      return {BinaryLayout::kNone, 0};
    case kTypeTiny:
      return {BinaryLayout::kFixed, 1};
    case kTypeShort:
    case kTypeYear:
      return {BinaryLayout::kFixed, 2};
    case kTypeLong:
    case kTypeInt24:
    case kTypeFloat:
      return {BinaryLayout::kFixed, 4};
    case kTypeLongLong:
    case kTypeDouble:
      return {BinaryLayout::kFixed, 8};
    case kTypeTimestamp:
    case kTypeDate:
    case kTypeDatetime:
    case kTypeNewDate:
    case kTypeTime:
      return {BinaryLayout::kLengthByte, 0};
    case kTypeDecimal:
    case kTypeVarchar:
    case kTypeBit:
    case kTypeJson:
    case kTypeNewDecimal:
    case kTypeEnum:
    case kTypeSet:
    case kTypeTinyBlob:
    case kTypeMediumBlob:
    case kTypeLongBlob:
    case kTypeBlob:
    case kTypeVarString:
    case kTypeString:
    case kTypeGeometry:
      return {BinaryLayout::kLenenc, 0};
    default:
      return {BinaryLayout::kUnknown, 0};
  }
}

bool DecodeBinaryValue(Reader& r, uint8_t type, bool is_unsigned, size_t max_bytes,
                       std::string* out) {
  out->clear();
  switch (type) {
    case kTypeNull:
      out->assign("NULL");
      return true;
    case kTypeTiny: {
      uint8_t v = 0;
      if (!r.u8(&v)) return false;
      is_unsigned ? AppendNumber(v, out) : AppendNumber(static_cast<int8_t>(v), out);
      return true;
    }
    case kTypeShort:
    case kTypeYear: {
      uint16_t v = 0;
      if (!r.u16(&v)) return false;
      is_unsigned ? AppendNumber(v, out) : AppendNumber(static_cast<int16_t>(v), out);
      return true;
    }
    case kTypeLong:
    case kTypeInt24: {
      uint32_t v = 0;
      if (!r.u32(&v)) return false;
      is_unsigned ? AppendNumber(v, out) : AppendNumber(static_cast<int32_t>(v), out);
      return true;
    }
    case kTypeLongLong: {
      uint64_t v = 0;
      if (!r.u64(&v)) return false;
      is_unsigned ? AppendNumber(v, out) : AppendNumber(static_cast<int64_t>(v), out);
      return true;
    }
    case kTypeFloat: {
      uint32_t bits = 0;
      if (!r.u32(&bits)) return false;
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      AppendNumber(f, out);
      return true;
    }
    case kTypeDouble: {
      uint64_t bits = 0;
      if (!r.u64(&bits)) return false;
      double d;
      std::memcpy(&d, &bits, sizeof(d));
      AppendNumber(d, out);
      return true;
    }
    case kTypeTimestamp:
    case kTypeDate:
    case kTypeDatetime:
    case kTypeNewDate:
      return DecodeDateTime(r, out);
    case kTypeTime:
      return DecodeTime(r, out);
    default: {
      // Strings, decimals, blobs, JSON, BIT, GEOMETRY: string<lenenc>.
      if (BinaryLayoutOf(type).kind != BinaryLayout::kLenenc) return false;
      uint64_t n = 0;
      if (!r.lenenc(&n)) return false;
      std::string_view v;
      const size_t keep = static_cast<size_t>(std::min<uint64_t>(n, max_bytes));
      if (!r.bytes(keep, &v)) {
        // Value cut by the capture window: keep what is there.
        out->assign(r.rest().substr(0, keep));
        return false;
      }
      out->assign(v);
      // A longer value was cut to max_bytes; if its tail is not in the kept
      // payload either, the reader fails and later values are not read.
      if (n > keep) r.skip(static_cast<size_t>(n - keep));
      return true;
    }
  }
}

bool DecodeParameters(std::span<const uint8_t> payload, uint16_t count, bool query_attributes,
                      size_t max_bytes, BoundParameters* bound,
                      const std::vector<std::string>& long_data,
                      const std::vector<bool>& has_long_data,
                      std::vector<std::optional<std::string>>* out) {
  out->clear();
  Reader r(payload);
  if (!r.skip(10)) return false;  // command, id, flags, iteration count
  uint64_t n = count;
  if (query_attributes) {
    uint8_t flags = payload.size() > 5 ? payload[5] : 0;
    if (count > 0 || (flags & 0x08)) {
      if (!r.lenenc(&n)) return false;
    }
  }
  if (n == 0) return true;
  if (n > 65535) return false;
  std::string_view bitmap;
  uint8_t rebound = 0;
  if (!r.bytes((n + 7) / 8, &bitmap) || !r.u8(&rebound)) return false;
  if (rebound == 1) {
    bound->types.assign(n, 0);
    for (uint64_t i = 0; i < n; ++i) {
      uint8_t type = 0, flag = 0;
      if (!r.u8(&type) || !r.u8(&flag)) return false;
      bound->types[i] = static_cast<uint16_t>(type | ((flag & 0x80) ? 0x8000 : 0));
      std::string_view name;
      if (query_attributes && !r.lenenc_string(&name)) return false;
    }
  }
  if (bound->types.size() != n) return false;  // types bound before capture: unknown
  std::string value;
  for (uint64_t i = 0; i < n; ++i) {
    // Long data first: the server uses it whatever the NULL bitmap says, and
    // libmariadb sets the NULL bit for a parameter bound without a buffer
    // whose value went by COM_STMT_SEND_LONG_DATA.
    if (i < has_long_data.size() && has_long_data[i]) {
      out->push_back(long_data[i]);
      continue;
    }
    if (static_cast<uint8_t>(bitmap[i / 8]) & (1u << (i % 8))) {
      out->emplace_back(std::nullopt);
      continue;
    }
    const uint16_t t = bound->types[i];
    const bool ok =
        DecodeBinaryValue(r, static_cast<uint8_t>(t & 0xff), (t & 0x8000) != 0, max_bytes, &value);
    if (!ok) {
      if (!value.empty()) out->push_back(value);
      return false;
    }
    out->push_back(value);
  }
  return true;
}

}  // namespace dbwarden::mysql
