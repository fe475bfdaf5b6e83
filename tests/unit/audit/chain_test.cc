// SPDX-License-Identifier: Apache-2.0
//
// The tamper-evident trail end to end: logs written by the real JsonlWriter,
// tampered with as an intruder would, checked by the verifier.
#include "audit/chain.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "audit/chain_state.h"
#include "audit/compress.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace {

using dbwarden::ConnectionInfo;
using namespace dbwarden::audit;
using namespace dbw_audit_test;

// Asserts an invalid result at file:line whose reason contains `why`.
void check_bad(const VerifySummary& s, const std::string& file, uint64_t line,
               const std::string& why) {
  INFO("reason: " << (s.failure ? s.failure->reason : std::string("(valid)")));
  REQUIRE(!s.valid());
  CHECK(s.failure->file == file);
  CHECK(s.failure->line == line);
  CHECK_THAT(s.failure->reason, Catch::Contains(why));
}

struct Log {
  TempDir tmp;
  WriterOptions o;
  std::string path;
  std::string state;
  explicit Log(uint64_t n = 20) {
    o.path = tmp.path + "/audit.jsonl";
    path = o.path;
    state = o.path + ".state";
    write_statements(o, 0, n);
  }
};

}  // namespace

TEST_CASE("chain: an untouched log verifies, with and without the state file", "[audit][chain]") {
  Log log;
  const auto lines = read_lines(log.path);
  REQUIRE(lines.size() == 21);  // checkpoint + 20
  auto s = verify({log.path});
  CHECK(s.valid());
  CHECK(s.records == 21);
  CHECK(s.statements == 20);
  CHECK(s.checkpoints == 1);
  s = verify({log.path}, log.state);
  CHECK(s.valid());
  auto st = read_state_file(log.state);
  REQUIRE(st.ok());
  CHECK(st.value().next_seq == 21);
  CHECK(st.value().chain == s.head);
}

TEST_CASE("chain: each kind of tampering is named at the first bad record", "[audit][chain]") {
  Log log;
  auto lines = read_lines(log.path);

  SECTION("one byte edited") {
    const size_t k = lines[8].find("SELECT 7");
    REQUIRE(k != std::string::npos);
    lines[8][k + 7] = '8';
    write_lines(log.path, lines);
    check_bad(verify({log.path}), log.path, 9, "edited");
  }
  SECTION("a record deleted") {
    lines.erase(lines.begin() + 5);
    write_lines(log.path, lines);
    check_bad(verify({log.path}), log.path, 6, "deleted: record seq 5 is missing");
  }
  SECTION("two records swapped") {
    std::swap(lines[5], lines[6]);
    write_lines(log.path, lines);
    check_bad(verify({log.path}), log.path, 6, "reordered");
  }
  SECTION("a forged record inserted") {
    std::string forged = lines[5];
    forged.replace(forged.find("SELECT 4"), 8, "DROP ALL");
    lines.insert(lines.begin() + 5, forged);
    write_lines(log.path, lines);
    check_bad(verify({log.path}), log.path, 6, "inserted");
  }
  SECTION("the file truncated mid-record") {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    text.resize(text.size() - 30);
    std::ofstream(log.path, std::ios::trunc) << text;
    check_bad(verify({log.path}), log.path, 21, "truncated");
  }
  SECTION("the newest records deleted: only the state file tells") {
    lines.resize(lines.size() - 3);
    write_lines(log.path, lines);
    CHECK(verify({log.path}).valid());
    check_bad(verify({log.path}, log.state), log.path, 19, "missing tail");
  }
  SECTION("a blank line inserted") {
    lines.insert(lines.begin() + 2, "");
    write_lines(log.path, lines);
    check_bad(verify({log.path}), log.path, 3, "empty line");
  }
  SECTION("the whole chain recomputed after an edit: the state file disagrees") {
    // Plain SHA-256 can be recomputed by anyone; the state file (or a key)
    // is what stops that.
    lines[3].replace(lines[3].find("SELECT 2"), 8, "SELECT 9");
    auto hasher = ChainHasher::Create("");
    REQUIRE(hasher.ok());
    Digest prev{};
    for (auto& l : lines) {
      const auto rc = parse_record_chain(l);
      REQUIRE(rc);
      std::string out(rc->prefix.substr(0, rc->prefix.rfind(kSeqKey)));
      prev = append_chain_fields(*hasher.value(), prev, rc->seq, 0, out);
      out.pop_back();
      l = out;
    }
    write_lines(log.path, lines);
    CHECK(verify({log.path}).valid());
    check_bad(verify({log.path}, log.state), log.path, 21, "state file's chain head");
  }
}

TEST_CASE("chain: rotation, compression, checkpoints and restarts form one chain",
          "[audit][chain]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/logs/audit.jsonl";
  o.rotate_bytes = 4000;
  o.checkpoint_records = 7;
  write_statements(o, 0, 60);
  write_statements(o, 60, 40);  // a restart continues the chain

  const auto files = dir_files(tmp.path + "/logs");
  REQUIRE(files.size() >= 5);
  for (size_t i = 0; i + 1 < files.size(); ++i) {
    CHECK_THAT(files[i], Catch::EndsWith(".zst"));  // rotated files were compressed
    struct stat st {};
    REQUIRE(stat(files[i].c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
  }
  CHECK(files.back() == o.path);
  auto s = verify(files, o.path + ".state");
  INFO((s.failure
            ? s.failure->file + ":" + std::to_string(s.failure->line) + " " + s.failure->reason
            : std::string()));
  REQUIRE(s.valid());
  CHECK(s.statements == 100);
  CHECK(s.checkpoints > 14);
  CHECK(s.files == files.size());

  // Every statement once, in order, across compressed files.
  std::vector<std::string> all;
  for (const auto& f : files) {
    std::string text;
    if (f.ends_with(".zst")) {
      std::ifstream in(f, std::ios::binary);
      std::string z((std::istreambuf_iterator<char>(in)), {});
      ZstdDecoder d;
      REQUIRE(d.feed(z, [&](std::string_view p) { text.append(p); }).ok());
    } else {
      std::ifstream in(f);
      text.assign((std::istreambuf_iterator<char>(in)), {});
    }
    std::vector<std::string> lines;
    for (size_t p = 0, nl; (nl = text.find('\n', p)) != std::string::npos; p = nl + 1) {
      lines.push_back(text.substr(p, nl - p));
    }
    CHECK(is_checkpoint(lines.front()));
    for (const auto& t : statement_texts(lines)) all.push_back(t);
  }
  REQUIRE(all.size() == 100);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i] == "SELECT " + std::to_string(i));

  SECTION("a rotated file removed from the middle") {
    auto gap = files;
    gap.erase(gap.begin() + 2);
    const std::string missing = files[2].substr(files[2].find_last_of('/') + 1);
    check_bad(verify(gap), gap[2], 1,
              "file missing: '" + missing.substr(0, missing.size() - 4) + "'");
  }
  SECTION("the oldest file removed: strict fails, --partial checks the rest") {
    auto rest = files;
    rest.erase(rest.begin());
    check_bad(verify(rest), rest[0], 1, "does not start here");
    CHECK(verify(rest, o.path + ".state", "", /*partial=*/true).valid());
  }
  SECTION("files given out of order") {
    auto swapped = files;
    std::swap(swapped[1], swapped[2]);
    CHECK(!verify(swapped).valid());
  }
  SECTION("a corrupted compressed file") {
    std::fstream f(files[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x55');
    f.close();
    const auto bad = verify(files);
    REQUIRE(!bad.valid());
    CHECK(bad.failure->file == files[1]);
  }
  SECTION("a truncated compressed file") {
    fs::resize_file(files[1], fs::file_size(files[1]) - 10);
    const auto bad = verify(files);
    REQUIRE(!bad.valid());
    CHECK(bad.failure->file == files[1]);
  }
}

TEST_CASE("chain: rotation by age", "[audit][chain]") {
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.rotate_age = std::chrono::seconds(1);
  o.flush_interval = std::chrono::milliseconds(50);
  ConnectionInfo c;
  {
    auto w = open_writer(o);
    w->on_statement(make_statement(&c, 0));
    REQUIRE(w->flush().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    w->on_statement(make_statement(&c, 1));
    REQUIRE(w->flush().ok());
    CHECK(w->rotations() == 1);
  }
  const auto files = dir_files(tmp.path);
  REQUIRE(files.size() == 2);
  CHECK(verify(files, o.path + ".state").valid());
}

TEST_CASE("chain: records removed while the agent was down are reported after restart",
          "[audit][chain]") {
  Log log(10);
  auto lines = read_lines(log.path);
  lines.resize(lines.size() - 4);
  write_lines(log.path, lines);
  write_statements(log.o, 10, 5);  // continues from the state file, not the cut tail
  check_bad(verify({log.path}, log.state), log.path, 8, "deleted: records seq 7..10 are missing");
}

TEST_CASE("chain: HMAC-keyed chain", "[audit][chain]") {
  TempDir tmp;
  const std::string key_file = tmp.path + "/key";
  std::ofstream(key_file) << "0123456789abcdef-secret\n";
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  o.hmac_key_file = key_file;
  write_statements(o, 0, 10);
  auto key = load_hmac_key(key_file);
  REQUIRE(key.ok());
  CHECK(key.value() == "0123456789abcdef-secret");
  CHECK(verify({o.path}, o.path + ".state", key.value()).valid());

  const auto no_key = verify({o.path});
  REQUIRE(!no_key.valid());
  CHECK(no_key.failure->needs_key);
  CHECK_THAT(no_key.failure->reason, Catch::Contains("hmac-sha256"));

  check_bad(verify({o.path}, "", "another key of 16+ bytes"), o.path, 1, "edited");
  // The key never shows up in the log or the state file.
  std::ifstream in(o.path);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text.find("secret") == std::string::npos);
  CHECK(text.find("\"dbwarden.chain_alg\":\"hmac-sha256\"") != std::string::npos);

  std::ofstream(key_file, std::ios::trunc) << "short\n";
  WriterOptions weak = o;
  CHECK(!JsonlWriter::Open(weak).ok());
}

TEST_CASE("chain: parse_record_chain takes exactly the writer's suffix", "[audit][chain]") {
  const std::string good =
      "{\"a\":1,\"dbwarden.seq\":12,\"dbwarden.chain\":\"" + std::string(64, 'a') + "\"}";
  auto rc = parse_record_chain(good);
  REQUIRE(rc);
  CHECK(rc->seq == 12);
  CHECK(rc->prefix == "{\"a\":1,\"dbwarden.seq\":12");
  CHECK(!parse_record_chain(good.substr(1)));
  std::string upper = good;
  upper[upper.size() - 3] = 'A';
  CHECK(!parse_record_chain(upper));
  CHECK(!parse_record_chain("{\"a\":1,\"dbwarden.seq\":012,\"dbwarden.chain\":\"" +
                            std::string(64, 'a') + "\"}"));
  CHECK(!parse_record_chain("{\"dbwarden.seq\":99999999999999999999999,\"dbwarden.chain\":\"" +
                            std::string(64, 'a') + "\"}"));
  CHECK(!parse_record_chain(""));
}

TEST_CASE("chain: state file round trip and bad state files", "[audit][chain]") {
  ChainState s;
  s.file = "audit.jsonl";
  s.next_seq = 42;
  s.chain[0] = 0xab;
  s.file_started_ns = 123;
  auto r = parse_state(format_state(s));
  REQUIRE(r.ok());
  CHECK(r.value().file == s.file);
  CHECK(r.value().next_seq == 42);
  CHECK(r.value().chain == s.chain);
  CHECK(r.value().file_started_ns == 123);
  CHECK(!parse_state("").ok());
  CHECK(!parse_state("{\"version\":2}").ok());
  CHECK(!parse_state("{\"version\":1,\"file\":\"a\",\"next_seq\":1,\"chain\":\"zz\"}").ok());

  // A state file that cannot be read stops Open: starting a new chain would
  // hide what came before.
  TempDir tmp;
  WriterOptions o;
  o.path = tmp.path + "/audit.jsonl";
  std::ofstream(o.path + ".state") << "garbage";
  auto w = JsonlWriter::Open(o);
  REQUIRE(!w.ok());
  CHECK_THAT(w.status().message(), Catch::Contains(".state"));
}

TEST_CASE("chain: a log written by an earlier build still verifies (format is stable)",
          "[audit][chain]") {
  // tests/data/audit/golden_hmac.*: 3 statements and 1 checkpoint, keyed.
  const std::string dir = std::string(DBW_TEST_DATA_DIR) + "/audit/";
  auto key = load_hmac_key(dir + "golden_hmac.key");
  REQUIRE(key.ok());
  const auto s = verify({dir + "golden_hmac.jsonl"}, dir + "golden_hmac.jsonl.state", key.value());
  INFO((s.failure ? s.failure->reason : std::string()));
  CHECK(s.valid());
  CHECK(s.statements == 3);
  CHECK(s.checkpoints == 1);
}

TEST_CASE("chain: the writer's record bytes and chain value, against OpenSSL one-shots",
          "[audit][chain]") {
  // Computed independently of ChainHasher (EVP_Q_digest / EVP_Q_mac over
  // prev || canonical line): the in-place hashing and the stack-built fields
  // must give the very bytes the format defines, keyed and not.
  const std::string key = "0123456789abcdef-secret";
  const std::string body = "{\"time\":\"2026-01-01T00:00:00Z\",\"db.query.text\":\"SELECT 1\"";
  for (const bool keyed : {false, true}) {
    auto hasher = ChainHasher::Create(keyed ? key : "");
    REQUIRE(hasher.ok());
    Digest prev{};
    prev[0] = 0x5a;
    for (const uint64_t seq : {uint64_t{0}, uint64_t{9}, uint64_t{10}, UINT64_MAX}) {
      const std::string canonical = body + ",\"dbwarden.seq\":" + std::to_string(seq) + "}";
      std::string input(reinterpret_cast<const char*>(prev.data()), prev.size());
      input += canonical;
      Digest expect{};
      size_t len = 0;
      if (keyed) {
        REQUIRE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                          expect.data(), expect.size(), &len) != nullptr);
      } else {
        REQUIRE(EVP_Q_digest(nullptr, "SHA256", nullptr, input.data(), input.size(), expect.data(),
                             &len) == 1);
      }
      REQUIRE(len == 32);
      const std::string line = canonical.substr(0, canonical.size() - 1) +
                               ",\"dbwarden.chain\":\"" + to_hex(expect) + "\"}\n";

      std::string from_elsewhere = "kept";
      CHECK(append_chained_record(*hasher.value(), prev, seq, body, from_elsewhere) == expect);
      CHECK(from_elsewhere == "kept" + line);
      std::string in_place = "kept" + body;
      CHECK(append_chain_fields(*hasher.value(), prev, seq, 4, in_place) == expect);
      CHECK(in_place == "kept" + line);
      CHECK(hasher.value()->next(prev, canonical.substr(0, canonical.size() - 1)) == expect);
      prev = expect;
    }
  }
}
