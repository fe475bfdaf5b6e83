// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/anchor.h"

#include <algorithm>
#include <vector>

#include "protocol/pgsql/messages.h"

namespace dbwarden::pgsql {
namespace {

// The server's limit on result columns (MaxTupleAttributeNumber).
constexpr uint32_t kMaxColumns = 1664;

// A body cursor that fails instead of reading past the end.
struct Cursor {
  const uint8_t* p;
  size_t left;
  bool take(size_t n) {
    if (n > left) return false;
    p += n;
    left -= n;
    return true;
  }
  bool be16(uint32_t* v) {
    if (left < 2) return false;
    *v = ReadBe16(p);
    return take(2);
  }
  bool be32(uint32_t* v) {
    if (left < 4) return false;
    *v = ReadBe32(p);
    return take(4);
  }
  // A NUL-terminated string of printable characters (or UTF-8 bytes).
  bool cstring(bool printable_only) {
    for (size_t i = 0; i < left; ++i) {
      if (p[i] == 0) return take(i + 1);
      if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return false;
      if (printable_only && p[i] > 0x7e) return false;
    }
    return false;
  }
};

// DataRow: Int16 n, n x (Int32 len (-1 = NULL), Byte[len]); exactly the body.
bool DataRowOk(Cursor c) {
  uint32_t n = 0;
  if (!c.be16(&n) || n > kMaxColumns) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len = 0;
    if (!c.be32(&len)) return false;
    if (len == 0xffffffffu) continue;
    if (!c.take(len)) return false;
  }
  return c.left == 0;
}

// CommandComplete: one tag "SELECT 5", "COPY 3", "CREATE TABLE": upper-case
// words and digits, NUL-terminated, nothing after.
bool CommandCompleteOk(Cursor c) {
  if (c.left < 2 || c.p[c.left - 1] != 0 || c.p[0] < 'A' || c.p[0] > 'Z') return false;
  for (size_t i = 0; i + 1 < c.left; ++i) {
    const uint8_t b = c.p[i];
    if (!((b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == ' ' || b == '_')) return false;
  }
  return true;
}

// ErrorResponse/NoticeResponse: (Byte1 code, String)* Byte1 0, with the
// SQLSTATE field 'C' (five digits or upper-case letters) present.
bool ErrorOk(Cursor c) {
  bool has_code = false;
  while (c.left > 0) {
    const uint8_t code = c.p[0];
    c.take(1);
    if (code == 0) return c.left == 0 && has_code;
    if (!((code >= 'A' && code <= 'Z') || (code >= 'a' && code <= 'z'))) return false;
    const uint8_t* value = c.p;
    if (!c.cstring(false)) return false;
    if (code == 'C') {
      if (c.p - value != 6) return false;  // 5 characters and the NUL
      for (int i = 0; i < 5; ++i) {
        if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'A' && value[i] <= 'Z'))) {
          return false;
        }
      }
      has_code = true;
    }
  }
  return false;
}

// RowDescription: Int16 n, n x (String name, Int32 table, Int16 column,
// Int32 type, Int16 size, Int32 modifier, Int16 format 0/1).
bool RowDescriptionOk(Cursor c) {
  uint32_t n = 0;
  if (!c.be16(&n) || n > kMaxColumns) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t format = 0;
    if (!c.cstring(false) || !c.take(4 + 2 + 4 + 2 + 4) || !c.be16(&format) || format > 1) {
      return false;
    }
  }
  return c.left == 0;
}

// CopyOutResponse/CopyInResponse/CopyBothResponse: Int8 format 0/1, Int16 n,
// n x Int16 format 0/1.
bool CopyResponseOk(Cursor c) {
  uint32_t n = 0;
  if (c.left < 1 || c.p[0] > 1 || !c.take(1) || !c.be16(&n) || n > kMaxColumns) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t format = 0;
    if (!c.be16(&format) || format > 1) return false;
  }
  return c.left == 0;
}

bool IsCompletion(uint8_t type) {
  return type == 'C' || type == 'I' || type == 's' || type == 'E' || type == 'V';
}

}  // namespace

size_t ValidBackendMessage(std::span<const uint8_t> bytes, size_t pos) {
  if (pos + kTypedHeaderSize > bytes.size()) return 0;
  const uint8_t type = bytes[pos];
  const uint32_t length = ReadBe32(bytes.data() + pos + 1);
  if (length < 4 || length - 4 > bytes.size() - pos - kTypedHeaderSize) return 0;
  Cursor body{bytes.data() + pos + kTypedHeaderSize, length - 4};
  bool ok = false;
  switch (type) {
    case 'D':
      ok = DataRowOk(body);
      break;
    case 'C':
      ok = CommandCompleteOk(body);
      break;
    case 'E':
    case 'N':
      ok = ErrorOk(body);
      break;
    case 'T':
      ok = RowDescriptionOk(body);
      break;
    case 'Z':
      ok = length == 5 && (body.p[0] == 'I' || body.p[0] == 'T' || body.p[0] == 'E');
      break;
    case 'I':  // EmptyQueryResponse
    case 's':  // PortalSuspended
    case 'c':  // CopyDone
    case '1':  // ParseComplete
    case '2':  // BindComplete
    case '3':  // CloseComplete
    case 'n':  // NoData
      ok = length == 4;
      break;
    case 'd':  // CopyData: opaque; only its neighbours (MayFollow) vouch for it
      ok = true;
      break;
    case 'H':
    case 'G':
    case 'W':
      ok = CopyResponseOk(body);
      break;
    case 'S': {  // ParameterStatus: name, value
      ok = body.cstring(true) && body.cstring(false) && body.left == 0;
      break;
    }
    case 'A': {  // NotificationResponse: Int32 pid, channel, payload
      ok = body.take(4) && body.cstring(false) && body.cstring(false) && body.left == 0;
      break;
    }
    case 't': {  // ParameterDescription: Int16 n, n x Int32 type
      uint32_t n = 0;
      ok = body.be16(&n) && body.left == 4ull * n;
      break;
    }
    case 'V': {  // FunctionCallResponse: Int32 len (-1 = NULL), Byte[len]
      uint32_t len = 0;
      ok = body.be32(&len) && (len == 0xffffffffu ? body.left == 0 : body.left == len);
      break;
    }
    default:
      ok = false;  // authentication, BackendKeyData, ...: never inside a result
      break;
  }
  return ok ? 1 + static_cast<size_t>(length) : 0;
}

bool MayFollow(uint8_t previous, uint8_t next) {
  // NoticeResponse, ParameterStatus and NotificationResponse may come at any time.
  auto async = [](uint8_t t) { return t == 'N' || t == 'S' || t == 'A'; };
  if (next == 'D') return previous == 'D' || previous == 'T' || previous == '2' || async(previous);
  if (next == 'd' || next == 'c') return previous == 'd' || previous == 'H' || async(previous);
  if (previous == 'd' || previous == 'H') return next == 'E' || async(next);
  if (previous == 'c') return next == 'C' || next == 'E' || async(next);
  return true;
}

std::optional<Anchor> FindAnchor(std::span<const uint8_t> bytes) {
  std::vector<Anchor> all = FindAnchors(bytes, 1);
  if (all.empty()) return std::nullopt;
  return std::move(all.front());
}

std::vector<Anchor> FindAnchors(std::span<const uint8_t> bytes, size_t max) {
  std::vector<Anchor> out;
  const size_t n = bytes.size();
  // Cheap rejection first: the bytes must end with a ReadyForQuery.
  if (n < 6 || bytes[n - 6] != 'Z' || ReadBe32(bytes.data() + n - 5) != 5) return out;
  // next[p]: end of the valid message at p, or 0; reach[p]: its chain ends at
  // n with a ReadyForQuery. Computed from the end backwards.
  std::vector<uint32_t> next(n, 0);
  std::vector<uint8_t> reach(n, 0);
  for (size_t p = n - 5; p-- > 0;) {
    const size_t len = ValidBackendMessage(bytes, p);
    if (len == 0) continue;
    const size_t end = p + len;
    if (end == n) {
      reach[p] = bytes[p] == 'Z';
    } else {
      reach[p] = reach[end] && MayFollow(bytes[p], bytes[end]);
    }
    if (reach[p]) next[p] = static_cast<uint32_t>(end);
  }
  for (size_t q = 0; q < n && out.size() < max; ++q) {
    if (!reach[q]) continue;
    Anchor a;
    a.start = q;
    uint32_t completions = 0;
    for (size_t p = q; p < n; p = next[p]) {
      if (bytes[p] == 'Z') {
        a.cycles.push_back(completions);
        completions = 0;
      } else {
        completions += IsCompletion(bytes[p]);
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace dbwarden::pgsql
