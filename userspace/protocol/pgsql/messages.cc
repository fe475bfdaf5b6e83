// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/messages.h"

#include <array>
#include <cstring>

namespace dbwarden::pgsql {
namespace {

// Length rules per type byte: {min, max} of the length field. 0 = not a type
// of that direction. Layouts from the "Message Formats" page cited in
// messages.h; minimums count the fixed fields and the terminators of empty
// strings, maximums exist only for fixed-size messages.
struct LengthRule {
  uint32_t min = 0;
  uint32_t max = 0;
};

constexpr uint32_t kAny = kMaxMessageLength;

constexpr std::array<LengthRule, 256> FrontendRules() {
  std::array<LengthRule, 256> r{};
  r['B'] = {12, kAny};  // Bind: portal\0 stmt\0 Int16 Int16 Int16
  r['C'] = {6, kAny};   // Close: Byte1 'S'|'P', name\0
  r['d'] = {4, kAny};   // CopyData
  r['c'] = {4, 4};      // CopyDone
  r['f'] = {5, kAny};   // CopyFail: message\0
  r['D'] = {6, kAny};   // Describe: Byte1, name\0
  r['E'] = {9, kAny};   // Execute: portal\0 Int32 max rows
  r['H'] = {4, 4};      // Flush
  r['F'] = {14, kAny};  // FunctionCall
  r['p'] = {4, kAny};   // PasswordMessage / SASLInitialResponse / SASLResponse / GSSResponse
  r['P'] = {8, kAny};   // Parse: name\0 query\0 Int16 [Int32...]
  r['Q'] = {5, kAny};   // Query: query\0
  r['S'] = {4, 4};      // Sync
  r['X'] = {4, 4};      // Terminate
  return r;
}

constexpr std::array<LengthRule, 256> BackendRules() {
  std::array<LengthRule, 256> r{};
  r['R'] = {8, kAny};   // Authentication*: Int32 code [data]
  r['K'] = {12, 268};   // BackendKeyData: Int32 pid, key (4 bytes in 3.0, up to 256 in 3.2)
  r['1'] = {4, 4};      // ParseComplete
  r['2'] = {4, 4};      // BindComplete
  r['3'] = {4, 4};      // CloseComplete
  r['C'] = {5, kAny};   // CommandComplete: tag\0
  r['d'] = {4, kAny};   // CopyData
  r['c'] = {4, 4};      // CopyDone
  r['G'] = {7, kAny};   // CopyInResponse: Int8 Int16 Int16[]
  r['H'] = {7, kAny};   // CopyOutResponse
  r['W'] = {7, kAny};   // CopyBothResponse
  r['D'] = {6, kAny};   // DataRow: Int16 n, (Int32 len, bytes)*
  r['I'] = {4, 4};      // EmptyQueryResponse
  r['E'] = {5, kAny};   // ErrorResponse: (Byte1 String)* Byte1 0
  r['V'] = {8, kAny};   // FunctionCallResponse
  r['v'] = {12, kAny};  // NegotiateProtocolVersion
  r['n'] = {4, 4};      // NoData
  r['N'] = {5, kAny};   // NoticeResponse
  r['A'] = {10, kAny};  // NotificationResponse
  r['t'] = {6, kAny};   // ParameterDescription
  r['S'] = {6, kAny};   // ParameterStatus: name\0 value\0
  r['s'] = {4, 4};      // PortalSuspended
  r['Z'] = {5, 5};      // ReadyForQuery: Byte1 status
  r['T'] = {6, kAny};   // RowDescription
  return r;
}

constexpr std::array<LengthRule, 256> kFrontendRules = FrontendRules();
constexpr std::array<LengthRule, 256> kBackendRules = BackendRules();

const LengthRule& RuleFor(Direction dir, uint8_t type) {
  return dir == Direction::kFrontend ? kFrontendRules[type] : kBackendRules[type];
}

bool LengthOk(const LengthRule& rule, uint32_t length) {
  return rule.min != 0 && length >= rule.min && length <= rule.max;
}

}  // namespace

bool IsKnownType(Direction dir, uint8_t type) { return RuleFor(dir, type).min != 0; }

ParseState ParseTypedHeader(Direction dir, std::span<const uint8_t> buf, Header* out) {
  if (!buf.empty() && !IsKnownType(dir, buf[0])) return ParseState::kInvalid;
  if (buf.size() < kTypedHeaderSize) return ParseState::kNeedsMoreData;
  const uint32_t length = ReadBe32(buf.data() + 1);
  if (!LengthOk(RuleFor(dir, buf[0]), length)) return ParseState::kInvalid;
  out->type = buf[0];
  out->length = length;
  return ParseState::kSuccess;
}

bool PlausibleHeader(Direction dir, const uint8_t* p) {
  const LengthRule& rule = RuleFor(dir, p[0]);
  if (rule.min == 0) return false;
  const uint32_t length = ReadBe32(p + 1);
  return length < (16u << 20) && LengthOk(rule, length);
}

ParseState ParseStartupHeader(std::span<const uint8_t> buf, StartupHeader* out) {
  // A startup packet is at most 10000 bytes, so its first two length bytes are
  // 0x00 and <= 0x27: typed traffic (an ASCII type byte) is rejected at once,
  // without waiting for 8 bytes that may never come.
  if (!buf.empty() && buf[0] != 0) return ParseState::kInvalid;
  if (buf.size() >= 2 && buf[1] > (kMaxStartupPacket >> 8)) return ParseState::kInvalid;
  if (buf.size() < kStartupHeaderSize) return ParseState::kNeedsMoreData;
  StartupHeader h;
  h.length = ReadBe32(buf.data());
  h.code = ReadBe32(buf.data() + 4);
  if (h.length < kStartupHeaderSize || h.length > kMaxStartupPacket) return ParseState::kInvalid;
  if (h.code == kSslRequestCode || h.code == kGssEncRequestCode) {
    if (h.length != 8) return ParseState::kInvalid;
    h.kind = h.code == kSslRequestCode ? StartupKind::kSsl : StartupKind::kGssEnc;
  } else if (h.code == kCancelRequestCode) {
    // Int32 pid + secret key (4 bytes in 3.0, up to 256 bytes in 3.2).
    if (h.length < 16) return ParseState::kInvalid;
    h.kind = StartupKind::kCancel;
  } else if ((h.code >> 16) == kProtocolMajor3) {
    if (h.length < 9) return ParseState::kInvalid;  // at least the final \0
    h.kind = StartupKind::kStartup;
  } else {
    return ParseState::kInvalid;
  }
  *out = h;
  return ParseState::kSuccess;
}

bool BodyReader::cstring(std::string_view* out) {
  if (pos_ >= body_.size()) return false;
  const void* nul = std::memchr(body_.data() + pos_, 0, body_.size() - pos_);
  if (nul == nullptr) return false;
  const size_t end = static_cast<const uint8_t*>(nul) - body_.data();
  *out = std::string_view(reinterpret_cast<const char*>(body_.data() + pos_), end - pos_);
  pos_ = end + 1;
  return true;
}

std::string_view BodyReader::until_nul(bool* terminated) {
  std::string_view s;
  if (cstring(&s)) {
    *terminated = true;
    return s;
  }
  *terminated = false;
  if (pos_ >= body_.size()) return {};
  s = std::string_view(reinterpret_cast<const char*>(body_.data() + pos_), body_.size() - pos_);
  pos_ = body_.size();
  return s;
}

bool BodyReader::byte(uint8_t* out) {
  if (pos_ >= body_.size()) return false;
  *out = body_[pos_++];
  return true;
}

void ParseStartupParams(std::span<const uint8_t> body, StartupParams* out) {
  BodyReader r(body);
  std::string_view name, value;
  while (r.cstring(&name) && !name.empty() && r.cstring(&value)) {
    if (name == "user") {
      out->user = value;
    } else if (name == "database") {
      out->database = value;
    } else if (name == "application_name") {
      out->application_name = value;
    }
  }
}

void ParseErrorFields(std::span<const uint8_t> body, ErrorFields* out) {
  BodyReader r(body);
  uint8_t code = 0;
  while (r.byte(&code) && code != 0) {
    bool terminated = false;
    const std::string_view value = r.until_nul(&terminated);
    if (code == 'C') out->sqlstate = value;
    if (code == 'M') out->message = value;
    if (!terminated) break;
  }
}

bool RowsFromCommandTag(std::string_view tag, uint64_t* rows) {
  const size_t space = tag.find(' ');
  const std::string_view verb = tag.substr(0, space);
  static constexpr std::string_view kWithRows[] = {"SELECT", "INSERT", "UPDATE", "DELETE",
                                                   "MERGE",  "FETCH",  "MOVE",   "COPY"};
  bool counted = false;
  for (std::string_view v : kWithRows) counted = counted || verb == v;
  if (!counted || space == std::string_view::npos) return false;
  const size_t last = tag.rfind(' ');
  const std::string_view digits = tag.substr(last + 1);
  if (digits.empty() || digits.size() > 20) return false;
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - digit) / 10) return false;  // overflow: not a count we can trust
    n = n * 10 + digit;
  }
  *rows = n;
  return true;
}

namespace {

void AppendBe32(uint32_t v, std::vector<uint8_t>* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<uint8_t>(v >> shift));
}

void AppendField(uint8_t code, std::string_view value, std::vector<uint8_t>* out) {
  out->push_back(code);
  // A NUL inside would end the field early on the client: cut there.
  value = value.substr(0, value.find('\0'));
  out->insert(out->end(), value.begin(), value.end());
  out->push_back(0);
}

}  // namespace

void AppendErrorResponse(std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::vector<uint8_t>* out) {
  const size_t start = out->size();
  out->push_back('E');
  AppendBe32(0, out);  // length, patched below
  AppendField('S', severity, out);
  AppendField('V', severity, out);
  AppendField('C', sqlstate, out);
  AppendField('M', message, out);
  out->push_back(0);
  const auto length = static_cast<uint32_t>(out->size() - start - 1);
  for (int i = 0; i < 4; ++i) (*out)[start + 1 + i] = static_cast<uint8_t>(length >> (24 - 8 * i));
}

void AppendQuery(std::string_view text, std::vector<uint8_t>* out) {
  text = text.substr(0, text.find('\0'));
  out->push_back('Q');
  AppendBe32(static_cast<uint32_t>(4 + text.size() + 1), out);
  out->insert(out->end(), text.begin(), text.end());
  out->push_back(0);
}

void AppendReadyForQuery(uint8_t status, std::vector<uint8_t>* out) {
  out->push_back('Z');
  AppendBe32(5, out);
  out->push_back(status);
}

}  // namespace dbwarden::pgsql

