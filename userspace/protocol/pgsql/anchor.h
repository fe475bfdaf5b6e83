// SPDX-License-Identifier: Apache-2.0
//
// Finding message boundaries again after a deliberate skip (the capture's
// bulk-data bound: a large server-to-client write arrives as its head, a skip
// of known length, and its tail). The bytes after the skip start somewhere
// inside a message. PostgreSQL flushes its output at ReadyForQuery, so the
// last write of a response ends exactly on a message boundary: the start we
// want is a position from which a chain of strictly validated backend
// messages ends exactly at the end of the bytes, with a ReadyForQuery.
// Writes cut at the server's 8 KiB flushes end mid-message and never anchor.
//
// Row data can look like headers, so every message is checked in full (a
// DataRow's field lengths must sum to its length exactly, a CommandComplete is
// one printable NUL-terminated tag, ...), neighbours must be possible in the
// protocol (no DataRow right after a completion). A fake chain inside row
// data can still end exactly where a real message starts; every real message
// after it is in its chain too, so a fake completion or ReadyForQuery shows up
// as one too many in Anchor::cycles. The session therefore takes the earliest
// start whose completions per ReadyForQuery are exactly those it awaits (a
// fake prefix without completions is harmless: rows, notices; its
// ParameterStatus messages are ignored), and with none, marks the statements
// capture_gap instead of believing any.
//
// Layouts: https://www.postgresql.org/docs/15/protocol-message-formats.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace dbwarden::pgsql {

// Wire length (type byte included) of the strictly validated backend message
// that starts at bytes[pos] and ends within `bytes`; 0 if there is none.
size_t ValidBackendMessage(std::span<const uint8_t> bytes, size_t pos);

// False for neighbours that cannot follow each other in one backend stream
// (e.g. a DataRow right after CommandComplete or ReadyForQuery).
bool MayFollow(uint8_t previous, uint8_t next);

struct Anchor {
  size_t start = 0;  // first message of the chain
  // Per ReadyForQuery of the chain, in order: the completions (C, I, s, E, V)
  // since the previous one. A fake prefix shows up here as a completion or a
  // cycle too many.
  std::vector<uint32_t> cycles;
};

// The anchoring starts in `bytes` (see above), earliest first, at most
// `max`. Cost: one message check per position, and only when `bytes` end like
// a ReadyForQuery.
std::vector<Anchor> FindAnchors(std::span<const uint8_t> bytes, size_t max);
// The earliest of them, or nullopt.
std::optional<Anchor> FindAnchor(std::span<const uint8_t> bytes);

}  // namespace dbwarden::pgsql
