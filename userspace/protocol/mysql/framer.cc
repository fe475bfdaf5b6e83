// SPDX-License-Identifier: Apache-2.0
#include "protocol/mysql/framer.h"

#include <algorithm>
#include <cstring>

namespace dbwarden::mysql {

bool PlausibleCommandHeader(const uint8_t* p) {
  const uint32_t len = p[0] | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16);
  if (p[3] != 0 || len == 0) return false;
  // Only commands clients send in normal operation, each with the payload
  // length it can have: a resync on a false header costs a wrong record.
  switch (p[4]) {
    case kComQuit:
    case kComPing:
    case kComStatistics:
    case kComResetConnection:
      return len == 1;
    case kComStmtClose:
    case kComStmtReset:
      return len == 5;
    case kComStmtFetch:
      return len == 9;
    case kComSetOption:
      return len == 3;
    case kComStmtExecute:
      return len >= 10;
    case kComStmtSendLongData:
      return len >= 7;
    case kComQuery:
    case kComStmtPrepare:
    case kComInitDb:
    case kComChangeUser:
      return len >= 2 && len < kMaxPacket;
    default:
      return false;
  }
}

Framer::Framer(Direction dir, Counters& counters, FrameHandler& handler)
    : dir_(dir), counters_(counters), handler_(handler) {}

void Framer::feed(std::span<const uint8_t> data, uint64_t ts_ns) {
  while (!data.empty()) {
    switch (mode_) {
      case Mode::kStopped:
      case Mode::kWait:
        return;
      case Mode::kHeader:
        data = read_header(data, ts_ns);
        break;
      case Mode::kBody:
        data = read_body(data, ts_ns);
        break;
      case Mode::kResync:
        data = resync(data, ts_ns);
        break;
    }
  }
}

bool Framer::decide(uint8_t first, bool empty) {
  decided_ = true;
  cur_.first = empty ? -1 : first;
  keep_ = handler_.keep(dir_, cur_.seq, cur_.first, cur_.first_packet_length);
  if (keep_.reject) ++counters_.invalid_packets;
  return !keep_.reject;
}

std::span<const uint8_t> Framer::read_header(std::span<const uint8_t> data, uint64_t ts_ns) {
  if (header_len_ == 0 && !continuation_) msg_start_ns_ = ts_ns;
  if (header_len_ == 0 && data.size() >= kHeaderSize) {
    // The usual case (a whole header in the chunk): a fixed-size copy the
    // compiler inlines, rather than a library call per row.
    std::memcpy(header_, data.data(), kHeaderSize);
    data = data.subspan(kHeaderSize);
  } else {
    const size_t take = std::min(kHeaderSize - header_len_, data.size());
    std::memcpy(header_ + header_len_, data.data(), take);
    header_len_ += take;
    data = data.subspan(take);
    if (header_len_ < kHeaderSize) return data;
  }
  header_len_ = 0;
  const uint32_t len = header_[0] | (uint32_t{header_[1]} << 8) | (uint32_t{header_[2]} << 16);
  if (!continuation_) {
    cur_ = Frame{};
    cur_.seq = header_[3];
    cur_.start_ns = msg_start_ns_;
    cur_.first_packet_length = len;
    decided_ = false;
    keep_ = Keep{};
    body_.clear();
  }
  continuation_ = false;
  ++counters_.packets;
  ++cur_.packets;
  cur_.length += len;
  packet_length_ = len;
  remaining_ = len;
  mode_ = Mode::kBody;
  if (len == 0) {
    if (!decided_ && !decide(0, /*empty=*/true)) {
      lose_framing(header_ + 1, kHeaderSize - 1);
      return data;
    }
    end_packet(body_, ts_ns);
  }
  return data;
}

std::span<const uint8_t> Framer::read_body(std::span<const uint8_t> data, uint64_t ts_ns) {
  if (!decided_ && !decide(data[0], /*empty=*/false)) {
    const uint8_t carry[kHeaderSize] = {header_[1], header_[2], header_[3], data[0]};
    lose_framing(carry, kHeaderSize);
    return data.subspan(1);
  }
  const size_t n = std::min<size_t>(remaining_, data.size());
  if (cur_.packets == 1 && remaining_ == packet_length_ && n == remaining_ &&
      packet_length_ < kMaxPacket) {
    // A whole single-packet message in this chunk: hand out a view, copy nothing.
    remaining_ = 0;
    deliver(data.first(std::min(keep_.bytes, n)), ts_ns);
    return data.subspan(n);
  }
  if (!cur_.gap && body_.size() < keep_.bytes) {
    const size_t k = std::min(n, keep_.bytes - body_.size());
    body_.insert(body_.end(), data.begin(), data.begin() + k);
  }
  remaining_ -= static_cast<uint32_t>(n);
  if (remaining_ == 0) end_packet(body_, ts_ns);
  return data.subspan(n);
}

void Framer::end_packet(std::span<const uint8_t> view, uint64_t ts_ns) {
  if (packet_length_ == kMaxPacket) {
    continuation_ = true;  // the payload goes on in the next packet
    mode_ = Mode::kHeader;
    return;
  }
  deliver(view, ts_ns);
}

void Framer::deliver(std::span<const uint8_t> body, uint64_t ts_ns) {
  mode_ = Mode::kHeader;
  unconfirmed_ = false;
  cur_.body = body;
  cur_.end_ns = ts_ns;
  cur_.body_complete = !cur_.gap && body.size() == cur_.length;
  handler_.on_frame(dir_, cur_);
  if (keep_.wipe && !body_.empty()) {
    // Our copy held authentication bytes: do not leave them in the heap.
    volatile uint8_t* p = body_.data();
    for (size_t i = 0; i < body_.size(); ++i) p[i] = 0;
    body_.clear();
  }
}

void Framer::lose_framing(const uint8_t* carry, size_t carry_len) {
  header_len_ = 0;
  continuation_ = false;
  carry_len_ = 0;
  if (dir_ == Direction::kServer) {
    mode_ = Mode::kWait;
  } else {
    mode_ = Mode::kResync;
    carry_len_ = std::min(carry_len, kHeaderSize);
    if (carry_len_ > 0) std::memcpy(carry_, carry + (carry_len - carry_len_), carry_len_);
  }
  handler_.on_framing_lost(dir_);
}

void Framer::restart() {
  if (mode_ != Mode::kWait && mode_ != Mode::kResync) return;
  mode_ = Mode::kHeader;
  header_len_ = 0;
  carry_len_ = 0;
  continuation_ = false;
  ++counters_.resyncs;
}

std::span<const uint8_t> Framer::resync(std::span<const uint8_t> data, uint64_t ts_ns) {
  constexpr size_t kCandidate = kHeaderSize + 1;  // header + command byte
  // Candidates that start in the carried bytes need a few bytes of `data`.
  while (carry_len_ > 0) {
    if (carry_len_ + data.size() < kCandidate) {
      std::memcpy(carry_ + carry_len_, data.data(), data.size());
      carry_len_ += data.size();
      return {};
    }
    uint8_t candidate[kCandidate];
    std::memcpy(candidate, carry_, carry_len_);
    std::memcpy(candidate + carry_len_, data.data(), kCandidate - carry_len_);
    if (PlausibleCommandHeader(candidate)) {
      const size_t carried = std::min(carry_len_, kHeaderSize);
      std::memcpy(header_, carry_, carried);
      header_len_ = carried;
      msg_start_ns_ = ts_ns;
      carry_len_ = 0;
      mode_ = Mode::kHeader;
      unconfirmed_ = true;
      ++counters_.resyncs;
      return data;
    }
    std::memmove(carry_, carry_ + 1, --carry_len_);
  }
  for (size_t i = 0; i + kCandidate <= data.size(); ++i) {
    if (PlausibleCommandHeader(data.data() + i)) {
      mode_ = Mode::kHeader;
      unconfirmed_ = true;
      msg_start_ns_ = ts_ns;
      ++counters_.resyncs;
      return data.subspan(i);
    }
  }
  const size_t keep = std::min(data.size(), kCandidate - 1);
  std::memcpy(carry_, data.data() + data.size() - keep, keep);
  carry_len_ = keep;
  return {};
}

void Framer::gap(uint64_t length, uint64_t ts_ns) {
  if (length == 0) return;
  switch (mode_) {
    case Mode::kStopped:
    case Mode::kWait:
      return;
    case Mode::kResync:
      carry_len_ = 0;  // carried bytes are no longer adjacent
      return;
    case Mode::kBody:
      cur_.gap = true;
      if (!decided_) {
        // The first payload byte is lost: the session sees first == -1 with
        // a nonzero length and decides what that means.
        decided_ = true;
        cur_.first = -1;
        keep_ = Keep{};
      }
      if (length < remaining_) {
        remaining_ -= static_cast<uint32_t>(length);
        return;
      }
      length -= remaining_;
      remaining_ = 0;
      end_packet(body_, ts_ns);
      if (length == 0 || mode_ != Mode::kHeader) return;  // ended on a boundary
      break;
    case Mode::kHeader:
      break;
  }
  // The gap covers (part of) a header: we no longer know where messages start.
  lose_framing(nullptr, 0);
}

}  // namespace dbwarden::mysql
