// SPDX-License-Identifier: Apache-2.0
#include "protocol/pgsql/framer.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "protocol/pgsql/anchor.h"

namespace dbwarden::pgsql {
namespace {

// Room for the statement/portal names that precede the query text in Parse,
// and for the names in Bind/Execute/Close. Longer names are treated as unknown.
constexpr size_t kNameBytes = 1024;
// Error and notice fields we read (SQLSTATE, message) come first in practice;
// the tail (hints, context, source positions) is not needed.
constexpr size_t kErrorBytes = 8192;

}  // namespace

Framer::Framer(Direction dir, const Limits& limits, Counters& counters, FrameHandler& handler)
    : dir_(dir),
      limits_(limits),
      counters_(counters),
      handler_(handler),
      untyped_(dir == Direction::kFrontend) {}

size_t Framer::keep_limit(uint8_t type, StartupKind startup, uint32_t body_length) const {
  size_t limit = 0;
  if (type == 0) {
    // StartupMessage parameters only; CancelRequest carries a secret key.
    limit = startup == StartupKind::kStartup ? body_length : 0;
  } else if (dir_ == Direction::kFrontend) {
    switch (type) {
      case 'Q':
        limit = limits_.max_query_bytes + 1;
        break;  // + the \0
      case 'P':  // + the parameter type OIDs (Int16 n, Int32[n])
        limit = limits_.max_query_bytes + 1 + kNameBytes + 2 + 4 * 65535;
        break;
      case 'B':  // names, then the bound values (parameters.h)
        limit = 2 * kNameBytes + limits_.max_bind_bytes;
        break;
      case 'F':  // FunctionCall: OID and arguments
        limit = limits_.max_bind_bytes;
        break;
      case 'E':
      case 'C':
      case 'D':  // Describe: which statement (the proxy's masking asks)
        limit = kNameBytes;
        break;
      default:
        limit = 0;
        break;  // includes 'p': passwords are never kept
    }
  } else {
    switch (type) {
      case 'C':
      case 'S':
        limit = kNameBytes;
        break;
      case 'E':
        limit = kErrorBytes;
        break;
      case 'Z':
        limit = 1;
        break;
      case 'K':  // BackendKeyData: the backend's pid; the cancel key after it is never kept
        limit = 4;
        break;
      default:
        limit = 0;
        break;  // includes 'R': authentication is never kept
    }
  }
  return std::min<size_t>(limit, body_length);
}

void Framer::feed(std::span<const uint8_t> data, uint64_t ts_ns) {
  while (!data.empty()) {
    switch (mode_) {
      case Mode::kStopped:
        return;
      case Mode::kHeader:
        data = read_whole(data, ts_ns);
        break;
      case Mode::kBody:
        data = read_body(data, ts_ns);
        break;
      case Mode::kResync:
        data = resync(data, ts_ns);
        break;
      case Mode::kAnchor:
        anchor(data, ts_ns);
        return;
    }
  }
}

void Framer::leave_startup_phase() {
  // The first frontend bytes are not a startup packet: we joined a connection
  // that is already running. Whatever header bytes we hold are typed traffic.
  untyped_ = false;
  ++counters_.midstream_joins;
}

// The common case, a typed message whose header and whole body are in this
// chunk (a statement's messages come whole, several to a chunk): delivered as
// a view straight from the chunk. Anything else (a header or body split over
// chunks, the startup phase, an answer to SSLRequest, an invalid header) goes
// the general way, which also counts and handles what is invalid.
std::span<const uint8_t> Framer::read_whole(std::span<const uint8_t> data, uint64_t ts_ns) {
  Header h;
  if (header_len_ != 0 || untyped_ || answer_for_ != StartupKind::kNone ||
      data.size() < kTypedHeaderSize ||
      ParseTypedHeader(dir_, data.first(kTypedHeaderSize), &h) != ParseState::kSuccess ||
      data.size() - kTypedHeaderSize < h.length - 4) {
    return read_header(data, ts_ns);
  }
  msg_start_ns_ = ts_ns;
  begin(h.type, StartupKind::kNone, h.length, h.length - 4);
  remaining_ = 0;
  deliver(data.subspan(kTypedHeaderSize, keep_), ts_ns);
  return data.subspan(kTypedHeaderSize + (h.length - 4));
}

std::span<const uint8_t> Framer::read_header(std::span<const uint8_t> data, uint64_t ts_ns) {
  if (header_len_ == 0) msg_start_ns_ = ts_ns;
  if (answer_for_ != StartupKind::kNone && header_len_ == 0) {
    const uint8_t b = data[0];
    const StartupKind request = answer_for_;
    answer_for_ = StartupKind::kNone;
    const bool accepted =
        (request == StartupKind::kSsl && b == 'S') || (request == StartupKind::kGssEnc && b == 'G');
    if (accepted || b == 'N') {
      cur_ = Frame{};
      cur_.type = b;
      cur_.single_byte = true;
      cur_.length = 1;
      cur_.body_complete = true;
      deliver({}, ts_ns);
      return data.subspan(1);
    }
    // Anything else (an old server's ErrorResponse) is ordinary typed traffic.
  }
  const size_t need = untyped_ ? kStartupHeaderSize : kTypedHeaderSize;
  const size_t take = std::min(need - header_len_, data.size());
  std::memcpy(header_ + header_len_, data.data(), take);
  header_len_ += take;
  data = data.subspan(take);
  if (!untyped_) {
    finish_typed_header(ts_ns);
    return data;
  }

  StartupHeader sh;
  const ParseState st = ParseStartupHeader({header_, header_len_}, &sh);
  if (st == ParseState::kNeedsMoreData) return data;
  if (st == ParseState::kSuccess) {
    header_len_ = 0;
    begin(0, sh.kind, sh.length, sh.length - kStartupHeaderSize);
    if (remaining_ == 0) deliver({}, ts_ns);
    return data;
  }
  // Not a startup packet: decode the same bytes as typed messages. We may hold
  // up to 8 bytes; those past a typed header are replayed as body data.
  leave_startup_phase();
  uint8_t extra[kStartupHeaderSize - kTypedHeaderSize];
  size_t extra_len = 0;
  if (header_len_ > kTypedHeaderSize) {
    extra_len = header_len_ - kTypedHeaderSize;
    std::memcpy(extra, header_ + kTypedHeaderSize, extra_len);
    header_len_ = kTypedHeaderSize;
  }
  finish_typed_header(ts_ns);
  if (extra_len > 0) feed({extra, extra_len}, ts_ns);  // recursion depth 1: untyped_ is off
  return data;
}

void Framer::finish_typed_header(uint64_t ts_ns) {
  Header h;
  const ParseState st = ParseTypedHeader(dir_, {header_, header_len_}, &h);
  if (st == ParseState::kNeedsMoreData) return;
  if (st == ParseState::kInvalid) {
    ++counters_.invalid_messages;
    lose_framing(header_ + 1, header_len_ - 1);
    return;
  }
  header_len_ = 0;
  begin(h.type, StartupKind::kNone, h.length, h.length - 4);
  if (remaining_ == 0) deliver({}, ts_ns);
}

void Framer::begin(uint8_t type, StartupKind startup, uint32_t length, uint32_t body_length) {
  cur_ = Frame{};
  cur_.type = type;
  cur_.startup = startup;
  cur_.length = length;
  cur_.start_ns = msg_start_ns_;
  remaining_ = body_length;
  body_seen_ = 0;
  keep_ = keep_limit(type, startup, body_length);
  body_.clear();
  mode_ = Mode::kBody;
}

std::span<const uint8_t> Framer::read_body(std::span<const uint8_t> data, uint64_t ts_ns) {
  const size_t n = std::min<size_t>(remaining_, data.size());
  if (body_seen_ == 0 && n == remaining_) {
    // The whole body is in this chunk: hand out a view, copy nothing.
    remaining_ = 0;
    deliver(data.first(keep_), ts_ns);
    return data.subspan(n);
  }
  if (!cur_.gap && body_.size() < keep_) {
    const size_t k = std::min(n, keep_ - body_.size());
    if (body_.capacity() < keep_) body_.reserve(keep_);
    body_.insert(body_.end(), data.begin(), data.begin() + k);
  }
  remaining_ -= static_cast<uint32_t>(n);
  body_seen_ += static_cast<uint32_t>(n);
  if (remaining_ == 0) deliver(body_, ts_ns);
  return data.subspan(n);
}

void Framer::deliver(std::span<const uint8_t> body, uint64_t ts_ns) {
  mode_ = Mode::kHeader;
  cur_.body = body;
  cur_.end_ns = ts_ns;
  if (!cur_.single_byte) {
    const uint32_t body_length = cur_.length - (cur_.type == 0 ? kStartupHeaderSize : 4);
    cur_.body_complete = !cur_.gap && body.size() == body_length;
  } else {
    cur_.start_ns = ts_ns;
  }
  if (cur_.type == 0 && cur_.startup != StartupKind::kSsl && cur_.startup != StartupKind::kGssEnc) {
    untyped_ = false;  // StartupMessage or CancelRequest ends the untyped phase
  }
  ++counters_.messages;
  handler_.on_frame(dir_, cur_);
}

void Framer::lose_framing(const uint8_t* carry, size_t carry_len) {
  header_len_ = 0;
  answer_for_ = StartupKind::kNone;
  carry_len_ = std::min(carry_len, sizeof(carry_) - 1);
  if (carry_len_ > 0) std::memcpy(carry_, carry + (carry_len - carry_len_), carry_len_);
  mode_ = Mode::kResync;
  handler_.on_framing_lost(dir_);
}

std::span<const uint8_t> Framer::resync(std::span<const uint8_t> data, uint64_t ts_ns) {
  // Candidates that start in the carried bytes need a few bytes of `data`.
  while (carry_len_ > 0) {
    if (carry_len_ + data.size() < kTypedHeaderSize) {
      std::memcpy(carry_ + carry_len_, data.data(), data.size());
      carry_len_ += data.size();
      return {};
    }
    uint8_t candidate[kTypedHeaderSize];
    std::memcpy(candidate, carry_, carry_len_);
    std::memcpy(candidate + carry_len_, data.data(), kTypedHeaderSize - carry_len_);
    if (PlausibleHeader(dir_, candidate)) {
      std::memcpy(header_, carry_, carry_len_);
      header_len_ = carry_len_;
      msg_start_ns_ = ts_ns;
      carry_len_ = 0;
      mode_ = Mode::kHeader;
      ++counters_.resyncs;
      return data;
    }
    std::memmove(carry_, carry_ + 1, --carry_len_);
  }
  for (size_t i = 0; i + kTypedHeaderSize <= data.size(); ++i) {
    if (PlausibleHeader(dir_, data.data() + i)) {
      mode_ = Mode::kHeader;
      ++counters_.resyncs;
      return data.subspan(i);
    }
  }
  const size_t keep = std::min(data.size(), kTypedHeaderSize - 1);
  std::memcpy(carry_, data.data() + data.size() - keep, keep);
  carry_len_ = keep;
  return {};
}

bool Framer::pass_body(uint64_t& length, uint64_t ts_ns) {
  if (length < remaining_) {
    remaining_ -= static_cast<uint32_t>(length);
    body_seen_ += static_cast<uint32_t>(length);
    return true;
  }
  length -= remaining_;
  remaining_ = 0;
  deliver(body_, ts_ns);
  return length == 0 || mode_ == Mode::kStopped;
}

void Framer::gap(uint64_t length, uint64_t ts_ns) {
  if (length == 0) return;
  switch (mode_) {
    case Mode::kStopped:
      return;
    case Mode::kResync:
      carry_len_ = 0;
      return;  // carried bytes are no longer adjacent
    case Mode::kAnchor:
      anchor_.clear();  // no longer adjacent; a loss: resync the usual way
      untyped_ = false;
      lose_framing(nullptr, 0);
      return;
    case Mode::kBody:
      cur_.gap = true;
      if (pass_body(length, ts_ns)) return;  // ended inside or on a boundary: framing kept
      break;
    case Mode::kHeader:
      break;
  }
  // The gap covers (part of) a header: we no longer know where messages start.
  untyped_ = false;
  lose_framing(nullptr, 0);
}

void Framer::skip(uint64_t length, uint64_t ts_ns) {
  if (length == 0) return;
  switch (mode_) {
    case Mode::kStopped:
      return;
    case Mode::kBody:
      // Kept bytes (a tag, error fields) among the skipped ones: the body is
      // incomplete. Passed-over bytes (DataRow, CopyData) lose nothing.
      if (body_.size() < keep_) cur_.gap = true;
      if (pass_body(length, ts_ns)) return;
      break;
    case Mode::kHeader:
      unframed_ += header_len_;
      header_len_ = 0;
      break;
    case Mode::kResync:
      carry_len_ = 0;
      break;
    case Mode::kAnchor:
      unframed_ += anchor_.size();  // no longer adjacent to what follows
      anchor_.clear();
      break;
  }
  untyped_ = false;
  answer_for_ = StartupKind::kNone;
  unframed_ += length;
  mode_ = Mode::kAnchor;
}

void Framer::anchor(std::span<const uint8_t> data, uint64_t ts_ns) {
  anchor_.insert(anchor_.end(), data.begin(), data.end());
  if (anchor_.size() > kMaxAnchorBytes) {
    // Bounded: an anchor is found in a response's last write, so the newest
    // bytes are the ones that matter.
    const size_t drop = anchor_.size() - kMaxAnchorBytes;
    unframed_ += drop;
    anchor_.erase(anchor_.begin(), anchor_.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  // Few candidates in practice: the real boundaries of the tail's messages
  // before its first completion, and fakes inside row data.
  constexpr size_t kMaxCandidates = 64;
  const std::vector<Anchor> candidates = FindAnchors(anchor_, kMaxCandidates);
  if (candidates.empty()) return;
  const Anchor* found = &candidates.front();
  for (const Anchor& c : candidates) {
    if (handler_.accept_anchor(dir_, c.cycles)) {
      found = &c;
      break;
    }
  }
  std::vector<uint8_t> chain = std::move(anchor_);
  anchor_.clear();
  const uint64_t unframed = unframed_ + found->start;
  unframed_ = 0;
  mode_ = Mode::kHeader;
  header_len_ = 0;
  msg_start_ns_ = ts_ns;
  handler_.on_anchored(dir_, found->cycles, unframed);
  if (mode_ != Mode::kHeader) return;  // the handler stopped the framer
  feed(std::span<const uint8_t>(chain).subspan(found->start), ts_ns);
}

}  // namespace dbwarden::pgsql
