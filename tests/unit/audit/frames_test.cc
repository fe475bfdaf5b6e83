// SPDX-License-Identifier: Apache-2.0
//
// The framed trail (--audit-format zst, frame.h) end to end: files written by
// the real JsonlWriter in TrailFormat::kFrames, tampered with a frame at a
// time as an intruder would, checked by the verifier, read back by audit cat,
// and continued after a crash that tore the last frame.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "audit/chain_state.h"
#include "audit/frame.h"
#include "audit/trail_reader.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace {

using dbwarden::ConnectionInfo;
using namespace dbwarden::audit;
using namespace dbw_audit_test;

void spill(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The file's units (a data frame and its seal), as byte strings.
std::vector<std::string> units_of(const std::string& bytes) {
  std::vector<std::string> units;
  std::string_view rest = bytes;
  while (!rest.empty()) {
    FrameUnit u;
    std::string why;
    REQUIRE(split_unit(rest, true, u, &why) == SplitResult::kUnit);
    units.emplace_back(rest.substr(0, u.bytes));
    rest.remove_prefix(u.bytes);
  }
  return units;
}
std::string join(const std::vector<std::string>& units) {
  std::string s;
  for (const auto& u : units) s += u;
  return s;
}
Seal seal_of(const std::string& unit) {
  auto s = parse_seal(std::string_view(unit).substr(unit.size() - kSealBytes));
  REQUIRE(s);
  return *s;
}
std::string records_of(const std::string& unit) {
  FrameDecoder d;
  std::string out;
  REQUIRE(d.decode(std::string_view(unit).substr(0, unit.size() - kSealBytes), out).ok());
  return out;
}
std::string compress(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 1));
  return out;
}
// The same seal after other compressed bytes: an intruder's edit.
std::string with_data(const std::string& unit, const std::string& data) {
  return data + unit.substr(unit.size() - kSealBytes);
}

std::vector<std::string> cat(const std::string& path, uint64_t* partial = nullptr) {
  std::string text;
  REQUIRE(cat_audit_file(
              path, [&](std::string_view l) { text.append(l); }, partial)
              .ok());
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

void check_bad(const VerifySummary& s, const std::string& why) {
  INFO("reason: " << (s.failure ? s.failure->reason : std::string("(valid)")));
  REQUIRE(!s.valid());
  CHECK_THAT(s.failure->reason, Catch::Contains(why));
}

WriterOptions framed(const std::string& dir) {
  WriterOptions o;
  o.path = dir + "/audit.jsonl.zst";
  o.format = TrailFormat::kFrames;
  o.checkpoint_records = 0;
  return o;
}

// `groups` frames of `per` statements each (a flush seals a frame); the first
// frame also holds the open checkpoint.
void write_frames(const WriterOptions& o, int groups, int per, uint64_t first = 0) {
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = "alice";
  auto w = open_writer(o);
  uint64_t i = first;
  for (int g = 0; g < groups; ++g) {
    for (int k = 0; k < per; ++k) w->on_statement(make_statement(&c, i++));
    REQUIRE(w->flush().ok());
  }
  CHECK(w->write_errors() == 0);
}

struct Trail {
  TempDir tmp;
  WriterOptions o;
  std::string path, state;
  explicit Trail(int groups = 5, int per = 4) : o(framed(tmp.path)) {
    path = o.path;
    state = o.path + ".state";
    write_frames(o, groups, per);
  }
};

}  // namespace

TEST_CASE("frames: the writer seals frames that zstd reads as JSON Lines", "[audit][frames]") {
  Trail t;  // format: frames
  const std::string bytes = slurp(t.path);
  REQUIRE(is_zstd_frame(bytes));
  const auto units = units_of(bytes);
  REQUIRE(units.size() == 5);
  CHECK(seal_of(units[0]).first_seq == 0);
  CHECK(seal_of(units[0]).records == 5);  // the open checkpoint and 4 statements
  CHECK(seal_of(units[1]).first_seq == 5);
  // Plain zstd decoding (what zstdcat does) skips the seals.
  std::string plain(1 << 20, '\0');
  plain.resize(ZSTD_decompress(plain.data(), plain.size(), bytes.data(), bytes.size()));
  REQUIRE(!ZSTD_isError(plain.size()));
  const auto lines = cat(t.path);
  REQUIRE(lines.size() == 21);
  CHECK(plain.size() == join(std::vector<std::string>(lines.begin(), lines.end())).size() + 21);
  CHECK(is_checkpoint(lines[0]));
  CHECK(statement_texts(lines).size() == 20);
  CHECK(nlohmann::json::parse(lines[20])["dbwarden.seq"] == 20);
  CHECK(nlohmann::json::parse(lines[20])["db.query.text"] == "SELECT 19");
  CHECK(lines[20].find("dbwarden.chain") == std::string::npos);  // the seal carries it

  auto s = verify({t.path}, t.state);
  INFO((s.failure ? s.failure->reason : ""));
  CHECK(s.valid());
  CHECK(s.records == 21);
  CHECK(s.statements == 20);
  CHECK(s.checkpoints == 1);
  auto st = read_state_file(t.state);
  REQUIRE(st.ok());
  CHECK(st.value().next_seq == 21);
  CHECK(st.value().chain == seal_of(units.back()).link);
  CHECK(st.value().clean_stop);
}

TEST_CASE("frames: records of both kinds share hand-offs and keep their ends, drops too",
          "[audit][frames]") {
  // The decode thread hands each batch over with its records' ends (the writer no longer
  // looks for them): statements and other records interleaved, hand-offs every few
  // records, and records dropped at a small bound in between (their bytes taken back
  // out of the batch), must still come out whole, each with the next seq.
  TempDir tmp;
  WriterOptions o = framed(tmp.path);
  o.flush_bytes = 700;           // a hand-off every few records, mid-sequence
  o.max_buffered_bytes = 2'500;  // and drops while the writer lags
  ConnectionInfo c;
  c.db_system = "postgresql";
  auto w = open_writer(o);
  constexpr uint64_t kRecords = 3'000;
  for (uint64_t i = 0; i < kRecords; ++i) {
    if (i % 3 == 1) {
      w->on_other_record(R"({"time":"2026-12-07T00:00:00Z","dbwarden.record_type":"approval",)"
                         R"("n":)" +
                         std::to_string(i) + "}");
    } else {
      w->on_statement(make_statement(&c, i));
    }
  }
  REQUIRE(w->flush().ok());
  CHECK(w->write_errors() == 0);
  const uint64_t dropped = w->records_dropped();
  const uint64_t written = w->records_written();  // records handed over, of both kinds
  w.reset();
  const auto lines = cat(o.path);
  uint64_t seq = 0, others = 0, last = 0;
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line);  // whole: no record cut or glued to another
    REQUIRE(j["dbwarden.seq"] == seq++);
    uint64_t n = 0;
    if (j.contains("n")) {
      n = j["n"].get<uint64_t>();
      ++others;
    } else if (j.contains("db.query.text")) {
      const std::string text = j["db.query.text"];
      n = std::stoull(text.substr(text.rfind(' ') + 1));
    } else {
      continue;  // a checkpoint
    }
    CHECK((n == 0 || n > last));  // in order, each once
    last = n;
  }
  CHECK(statement_texts(lines).size() + others == written);
  CHECK(written + dropped == kRecords);
  CHECK(dropped > 0);
  CHECK(others > 0);
  auto s = verify({o.path}, o.path + ".state");
  INFO((s.failure ? s.failure->reason : ""));
  CHECK(s.valid());
}

TEST_CASE("frames: a frame is sealed at 256 KiB of records", "[audit][frames]") {
  TempDir tmp;  // format: frames
  auto o = framed(tmp.path);
  o.flush_interval = std::chrono::hours(1);
  o.frame_interval = std::chrono::hours(1);
  ConnectionInfo c;
  auto w = open_writer(o);
  for (uint64_t i = 0; i < 8000; ++i) w->on_statement(make_statement(&c, i));  // ~2 MiB
  REQUIRE(w->flush().ok());
  w.reset();
  const auto units = units_of(slurp(o.path));
  CHECK(units.size() >= 6);
  for (size_t i = 0; i + 1 < units.size(); ++i) {
    const std::string r = records_of(units[i]);
    CHECK(r.size() >= kFrameMaxBytes);
    CHECK(r.size() < kFrameMaxBytes + 1024);
  }
  CHECK(verify({o.path}).valid());
}

TEST_CASE("frames: each kind of tampering is named at the first bad frame", "[audit][frames]") {
  Trail t;  // format: frames; frames hold seq 0..4, 5..8, 9..12, 13..16, 17..20
  auto units = units_of(slurp(t.path));

  SECTION("a record edited, the frame recompressed under its old seal") {
    std::string r = records_of(units[2]);
    r.replace(r.find("SELECT 9"), 8, "SELECT 6");
    units[2] = with_data(units[2], compress(r));
    spill(t.path, join(units));
    check_bad(verify({t.path}), "frame 3 (at byte ");
    check_bad(verify({t.path}), "holding records seq 9..12: edited");
  }
  SECTION("a frame deleted") {
    units.erase(units.begin() + 2);
    spill(t.path, join(units));
    check_bad(verify({t.path}),
              "frame 3 (at byte " + std::to_string(units[0].size() + units[1].size()) +
                  "): holding records seq 13..16: deleted: records seq 9..12 are missing");
  }
  SECTION("two frames swapped") {
    std::swap(units[1], units[2]);
    spill(t.path, join(units));
    check_bad(verify({t.path}), "frame 2 (at byte");
    check_bad(verify({t.path}), "holding records seq 9..12: reordered");
  }
  SECTION("a forged frame inserted") {
    // Sealed like the writer would, but linked to nothing in this chain.
    std::string r = records_of(units[1]);
    r.replace(r.find("SELECT 4"), 8, "DROP ALL");
    auto hasher = ChainHasher::Create("");
    REQUIRE(hasher.ok());
    auto sealer = FrameSealer::Create(1);
    REQUIRE(sealer.ok());
    Digest link = seal_of(units[0]).link;
    link[0] ^= 1;
    std::string forged;
    REQUIRE(sealer.value()->seal(*hasher.value(), r, 5, 4, link, forged).ok());
    units.insert(units.begin() + 1, forged);
    spill(t.path, join(units));
    check_bad(verify({t.path}), "frame 2 (at byte");
    check_bad(verify({t.path}), "inserted");
  }
  SECTION("a seal's numbers changed") {
    units[3][16] = static_cast<char>(units[3][16] + 1);  // first_seq 13 -> 14
    spill(t.path, join(units));
    check_bad(verify({t.path}), "frame 4");
  }
  SECTION("the file truncated mid-frame") {
    std::string bytes = join(units);
    bytes.resize(bytes.size() - 30);
    spill(t.path, bytes);
    check_bad(verify({t.path}), "frame 5 (at byte");
    check_bad(verify({t.path}), "truncated");
  }
  SECTION("the newest frame removed: only the state file tells") {
    units.pop_back();
    spill(t.path, join(units));
    CHECK(verify({t.path}).valid());
    check_bad(verify({t.path}, t.state), "missing tail");
  }
  SECTION("the whole chain recomputed after an edit: the state file disagrees") {
    auto hasher = ChainHasher::Create("");
    REQUIRE(hasher.ok());
    auto sealer = FrameSealer::Create(1);
    REQUIRE(sealer.ok());
    Digest link{};
    std::string forged;
    for (size_t i = 0; i < units.size(); ++i) {
      std::string r = records_of(units[i]);
      if (i == 1) r.replace(r.find("SELECT 4"), 8, "SELECT 9");
      const Seal s = seal_of(units[i]);
      REQUIRE(sealer.value()->seal(*hasher.value(), r, s.first_seq, s.records, link, forged).ok());
    }
    spill(t.path, forged);
    CHECK(verify({t.path}).valid());
    check_bad(verify({t.path}, t.state), "state file's chain head");
  }
}

TEST_CASE("frames: rotation and restarts form one chain, a file removed is named",
          "[audit][frames]") {
  TempDir tmp;  // format: frames
  auto o = framed(tmp.path);
  o.rotate_bytes = 600;
  o.checkpoint_records = 7;
  write_frames(o, 12, 5);
  write_frames(o, 3, 5, 60);
  const auto files = dir_files(tmp.path);
  REQUIRE(files.size() >= 4);
  CHECK(files.back() == o.path);
  for (size_t i = 0; i + 1 < files.size(); ++i) {
    CHECK(files[i].ends_with("Z.zst"));
    CHECK(files[i].find("audit.jsonl.2") != std::string::npos);  // <stem>.<stamp>.zst
  }
  auto s = verify(files, o.path + ".state");
  INFO((s.failure ? s.failure->reason : ""));
  CHECK(s.valid());
  CHECK(s.statements == 75);
  std::vector<std::string> texts;
  for (const auto& f : files) {
    for (const auto& t : statement_texts(cat(f))) texts.push_back(t);
  }
  REQUIRE(texts.size() == 75);
  CHECK(texts[74] == "SELECT 74");

  SECTION("a rotated file removed") {
    std::filesystem::remove(files[1]);
    std::string gone = files[1].substr(files[1].find_last_of('/') + 1);
    gone.resize(gone.size() - 4);
    check_bad(verify(dir_files(tmp.path)), "file missing: '" + gone + "'");
  }
  SECTION("partial: from the second file's checkpoint on") {
    std::vector<std::string> later(files.begin() + 1, files.end());
    CHECK(!verify(later).valid());
    CHECK(verify(later, "", "", /*partial=*/true).valid());
  }
}

TEST_CASE("frames: HMAC-keyed chain", "[audit][frames]") {
  TempDir tmp;  // format: frames
  const std::string key_file = tmp.path + "/key";
  std::ofstream(key_file) << "frames-test-key-0123456789\n";
  auto o = framed(tmp.path + "/log");
  o.hmac_key_file = key_file;
  write_frames(o, 3, 3);
  CHECK(verify({o.path}, "", "frames-test-key-0123456789").valid());
  auto nokey = verify({o.path});
  check_bad(nokey, "give the HMAC key");
  CHECK(nokey.failure->needs_key);
  check_bad(verify({o.path}, "", "frames-test-key-wrong-000000"), "edited");
}

TEST_CASE("frames: a torn last frame is cut off, kept aside and recorded", "[audit][frames]") {
  Trail t(3, 4);  // format: frames
  const std::string whole = slurp(t.path);
  // A kill mid-write: half of a further frame, and a state that says unclean.
  const auto units = units_of(whole);
  spill(t.path, whole + units[1].substr(0, units[1].size() / 2));
  auto st = read_state_file(t.state);
  REQUIRE(st.ok());
  st.value().clean_stop = false;
  REQUIRE(write_state_file(t.state, st.value()).ok());
  uint64_t partial = 0;
  CHECK(cat(t.path, &partial).size() == 13);  // the torn frame is held back
  CHECK(partial == units[1].size() / 2);
  check_bad(verify({t.path}), "truncated");

  {
    auto w = open_writer(t.o);
    CHECK(w->recovered());
    CHECK(w->bytes_cut() == units[1].size() / 2);
    ConnectionInfo c;
    w->on_statement(make_statement(&c, 100));
    REQUIRE(w->flush().ok());
  }
  auto s = verify({t.path}, t.state);
  INFO((s.failure ? s.failure->reason : ""));
  REQUIRE(s.valid());
  REQUIRE(s.recoveries.size() == 1);
  CHECK(s.recoveries[0].framed);
  CHECK(s.recoveries[0].record.bytes_cut == units[1].size() / 2);
  CHECK(s.recoveries[0].record.last_good_seq == 12u);
  const auto lines = cat(t.path, &partial);
  CHECK(partial == 0);
  CHECK(statement_texts(lines).back() == "SELECT 100");
  // The cut bytes are kept in the side file.
  const std::string cut = t.tmp.path + "/" + s.recoveries[0].record.cut_file;
  CHECK(slurp(cut) == units[1].substr(0, units[1].size() / 2));
}

TEST_CASE("frames: scan_frame_tail and count_frame_records", "[audit][frames]") {
  Trail t(4, 2);  // format: frames
  const std::string whole = slurp(t.path);
  const int fd = ::open(t.path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  TailScan tail = scan_frame_tail(fd, whole.size());
  CHECK(tail.found);
  CHECK(tail.seq == 8);
  CHECK(tail.good_end == whole.size());
  CHECK(count_frame_records(fd, whole.size()) == 9);
  // Any cut inside the last frame falls back to the frame before it.
  const auto units = units_of(whole);
  for (size_t cut : {size_t{1}, units.back().size() / 2, units.back().size() - 1}) {
    tail = scan_frame_tail(fd, whole.size() - cut);
    CHECK(tail.found);
    CHECK(tail.seq == 6);
    CHECK(tail.good_end == whole.size() - units.back().size());
  }
  ::close(fd);
}

TEST_CASE("frames: SeqFieldWriter writes what append_seq_field writes, for any seq",
          "[audit][frames]") {
  // Counted up in place for consecutive seqs (carries, one digit more at 9 -> 10), formatted
  // anew for any other: every field byte for byte as append_seq_field makes it.
  SeqFieldWriter w;
  std::vector<uint64_t> seqs;
  for (uint64_t s = 0; s < 20'000; ++s) seqs.push_back(s);  // 9, 99, 999, 9999 carries
  for (uint64_t s : {5ull, 6ull, 100ull, 99ull, 100ull, 9ull, 10ull, 999'999ull, 1'000'000ull,
                     1'000'001ull, 1'000'000ull, 42ull, 18'446'744'073'709'551'614ull,
                     18'446'744'073'709'551'615ull, 0ull, 1ull, 19ull, 20ull, 3ull}) {
    seqs.push_back(s);
  }
  std::string got = "{", want = "{";
  for (uint64_t s : seqs) {
    w.append(s, got);
    append_seq_field(s, want);
  }
  CHECK(got == want);
}

TEST_CASE("frames: parse_record_seq takes exactly the writer's suffix", "[audit][frames]") {
  std::string line = "{\"a\":1";
  append_seq_field(42, line);
  REQUIRE(line.back() == '\n');
  line.pop_back();
  auto r = parse_record_seq(line);
  REQUIRE(r);
  CHECK(r->seq == 42);
  CHECK(r->prefix == "{\"a\":1");
  CHECK(record_seq(line) == 42u);
  CHECK_FALSE(parse_record_seq("{\"a\":1,\"dbwarden.seq\":}"));
  CHECK_FALSE(parse_record_seq("{\"a\":1,\"dbwarden.seq\":042}"));
  CHECK_FALSE(parse_record_seq("{\"a\":1,\"dbwarden.seq\":4 }"));
  CHECK_FALSE(parse_record_seq(",\"dbwarden.seq\":4}"));
  CHECK_FALSE(parse_seal(std::string(64, '\0')));
}
