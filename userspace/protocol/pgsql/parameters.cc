// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/parameters.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "common/utf8.h"

namespace dbwarden::pgsql {
namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";     // U+2026, starts the cut marker
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

uint64_t ReadBe64(const uint8_t* p) {
  return (uint64_t{ReadBe32(p)} << 32) | ReadBe32(p + 4);
}

void AppendMarker(std::string* out, uint64_t wire_length) {
  out->append(kEllipsis);
  out->push_back('[');
  out->append(std::to_string(wire_length));
  out->append(" bytes]");
}

// Text as valid UTF-8, at most `max_bytes` (whole characters only).
bool AppendUtf8(std::string_view in, size_t max_bytes, std::string* out) {
  size_t i = 0;
  while (i < in.size()) {
    const size_t n = Utf8SequenceLength(in, i);
    const std::string_view piece = n == 0 ? kReplacement : in.substr(i, n);
    if (out->size() + piece.size() > max_bytes) return false;
    out->append(piece);
    i += n == 0 ? 1 : n;
  }
  return true;
}

bool AppendHex(std::string_view in, size_t max_bytes, std::string* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (char c : in) {
    if (out->size() + 2 > max_bytes) return false;
    const auto b = static_cast<uint8_t>(c);
    out->push_back(kDigits[b >> 4]);
    out->push_back(kDigits[b & 0xf]);
  }
  return true;
}

template <typename T>
std::string Number(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

template <typename F>
std::string Float(F v) {
  // The server's spellings for the values to_chars writes differently.
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return Number(v);
}

// Fixed-size binary types; nullopt when `oid` is not one or the size is wrong.
std::optional<std::string> DecodeFixed(uint32_t type_oid, std::string_view v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  switch (type_oid) {
    case oid::kBool:
      if (v.size() == 1) return std::string(p[0] ? "true" : "false");
      break;
    case oid::kInt2:
      if (v.size() == 2) return Number(static_cast<int16_t>(ReadBe16(p)));
      break;
    case oid::kInt4:
      if (v.size() == 4) return Number(static_cast<int32_t>(ReadBe32(p)));
      break;
    case oid::kOid:
      if (v.size() == 4) return Number(ReadBe32(p));
      break;
    case oid::kInt8:
      if (v.size() == 8) return Number(static_cast<int64_t>(ReadBe64(p)));
      break;
    case oid::kFloat4:
      if (v.size() == 4) {
        const uint32_t bits = ReadBe32(p);
        float f = 0;
        std::memcpy(&f, &bits, sizeof(f));
        return Float(f);
      }
      break;
    case oid::kFloat8:
      if (v.size() == 8) {
        const uint64_t bits = ReadBe64(p);
        double d = 0;
        std::memcpy(&d, &bits, sizeof(d));
        return Float(d);
      }
      break;
    case oid::kUuid:
      if (v.size() == 16) {
        std::string hex;
        AppendHex(v, 32, &hex);
        return hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' +
               hex.substr(16, 4) + '-' + hex.substr(20);
      }
      break;
    default:
      break;
  }
  return std::nullopt;
}

bool IsTextType(uint32_t type_oid) {
  return type_oid == oid::kText || type_oid == oid::kVarchar || type_oid == oid::kBpchar ||
         type_oid == oid::kName;
}

}  // namespace

std::string FormatParameter(bool binary, uint32_t type_oid, std::string_view bytes,
                            uint64_t wire_length, size_t max_bytes, bool* cut) {
  const bool whole = bytes.size() == wire_length;
  std::string out;
  bool fits = true;
  if (!binary || IsTextType(type_oid)) {
    fits = AppendUtf8(bytes, max_bytes, &out);
  } else if (auto fixed = whole ? DecodeFixed(type_oid, bytes) : std::nullopt) {
    out = std::move(*fixed);
    if (out.size() > max_bytes) {
      out.resize(max_bytes);
      fits = false;
    }
  } else {
    // bytea, unknown types, and fixed types of the wrong size.
    out = max_bytes >= 2 ? "\\x" : "";
    fits = max_bytes >= 2 && AppendHex(bytes, max_bytes, &out);
  }
  if (!fits || !whole) AppendMarker(&out, wire_length);
  if (cut != nullptr) *cut = !fits || !whole;
  return out;
}

bool ReadParseParameterTypes(std::span<const uint8_t> parse_body, std::vector<uint32_t>* types) {
  BodyReader r(parse_body);
  std::string_view name, query;
  if (!r.cstring(&name) || !r.cstring(&query)) return false;
  const size_t at = name.size() + 1 + query.size() + 1;
  if (parse_body.size() - at < 2) return parse_body.size() == at;  // no count: no types
  const uint16_t n = ReadBe16(parse_body.data() + at);
  if (parse_body.size() - at - 2 < size_t{n} * 4) return false;
  types->reserve(types->size() + n);
  for (uint16_t i = 0; i < n; ++i) types->push_back(ReadBe32(parse_body.data() + at + 2 + 4 * i));
  return true;
}

std::vector<uint32_t> ParseParameterTypes(std::span<const uint8_t> parse_body) {
  std::vector<uint32_t> types;
  if (!ReadParseParameterTypes(parse_body, &types)) types.clear();  // cut: types unknown
  return types;
}

uint16_t ParameterLayout::format(size_t i) const {
  if (formats.empty()) return 0;
  return ReadBe16(formats.data() + (formats.size() == 2 ? 0 : 2 * i));
}

bool ReadParameterLayout(std::span<const uint8_t> body, size_t offset, ParameterLayout* out) {
  if (offset > body.size() || body.size() - offset < 2) return false;
  const uint16_t nformats = ReadBe16(body.data() + offset);
  size_t pos = offset + 2;
  if (body.size() - pos < size_t{nformats} * 2 + 2) return false;
  out->formats = body.subspan(pos, size_t{nformats} * 2);
  pos += out->formats.size();
  out->value_count = ReadBe16(body.data() + pos);
  out->values_at = pos + 2;
  return nformats <= 1 || nformats == out->value_count;  // else the server rejects the Bind
}

bool NextParameterValue(std::span<const uint8_t> body, size_t* pos,
                        std::optional<std::span<const uint8_t>>* value) {
  if (*pos > body.size() || body.size() - *pos < 4) return false;
  const auto length = static_cast<int32_t>(ReadBe32(body.data() + *pos));
  if (length == -1) {
    value->reset();
    *pos += 4;
    return true;
  }
  if (length < 0 || body.size() - *pos - 4 < static_cast<size_t>(length)) return false;
  *value = body.subspan(*pos + 4, static_cast<size_t>(length));
  *pos += 4 + static_cast<size_t>(length);
  return true;
}

bool ReadParameterValues(std::span<const uint8_t> body, size_t offset, uint32_t body_length,
                         std::span<const uint32_t> types, const Limits& limits,
                         ParameterValues* out, ParameterStats* stats) {
  out->clear();
  ParameterLayout layout;
  if (!ReadParameterLayout(body, offset, &layout)) return false;
  size_t pos = layout.values_at;
  auto have = [&](size_t n) { return pos + n <= body.size(); };
  const size_t keep = std::min<size_t>(layout.value_count, limits.max_parameters);
  stats->dropped_values += layout.value_count - keep;
  out->reserve(keep);
  for (size_t i = 0; i < keep; ++i) {
    if (!have(4)) {
      // The rest of the Bind was not captured: the values exist, their
      // contents and lengths are unknown.
      if (pos + 4 > body_length) return false;  // the message itself is too short
      std::string marker(kEllipsis);
      marker.append("[not captured]");
      stats->cut_values += keep - i;
      out->resize(keep, marker);
      return true;
    }
    const auto length = static_cast<int32_t>(ReadBe32(body.data() + pos));
    pos += 4;
    if (length == -1) {
      out->emplace_back(std::nullopt);
      continue;
    }
    if (length < 0 || pos + static_cast<uint64_t>(length) > body_length) return false;
    // A value may run past the kept prefix: what was captured of it is formatted.
    const size_t got = std::min<size_t>(static_cast<size_t>(length), body.size() - pos);
    const uint32_t type = i < types.size() ? types[i] : 0;
    const std::string_view bytes(reinterpret_cast<const char*>(body.data() + pos), got);
    bool cut = false;
    out->emplace_back(FormatParameter(layout.format(i) == 1, type, bytes,
                                      static_cast<uint64_t>(length), limits.max_parameter_bytes,
                                      &cut));
    if (cut) ++stats->cut_values;
    pos += static_cast<size_t>(length);
  }
  return true;
}

}  // namespace dbwarden::pgsql
