// SPDX-License-Identifier: Apache-2.0
//
// Learn mode: what each identity (database user x executable or systemd unit x login uid)
// runs, as statement fingerprints, kept in the state directory so that it survives
// restarts; and the decision it feeds (apply_learn): while learning, every statement the
// rules let through is remembered; in protect mode a fingerprint the identity never ran
// while learning gets the policy's learn action, rule `learn:novel_fingerprint`.
//
// The store is a log-structured text file, `learned.log` in the state directory:
//
//   dbwarden-learned<TAB>1<TAB><created unix s>              header, first line
//   F<TAB>user<TAB>program<TAB>login uid|-<TAB>fp<TAB>first s<TAB>last s<TAB>count
//   P<TAB>user<TAB>program<TAB>login uid|-<TAB>fp|*          prune one fingerprint / identity
//   A<TAB>cutoff s                                           prune everything last seen before
//
// Fields are percent-escaped (%, tab, newline, control bytes), fp is 16 hex digits. A later
// F line for the same (identity, fingerprint) replaces the earlier one, so updates are
// appends; the agent rewrites the file whole (temporary file, fsync, rename) once the dead
// lines outweigh the live ones. Writers take an exclusive flock: `dbwarden policy learned
// prune` appends its P/A lines while the agent runs, and the agent applies lines it did not
// write before it appends its own. A torn last line (a crash mid-write) is cut off at open;
// other malformed lines are skipped and counted.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "policy/policy.h"
#include "protocol/statement.h"
#include "sql/analysis.h"

namespace dbwarden::learn {

// Who runs statements, for learn mode. `program` is the systemd unit when the client
// process runs in one (a service keeps its name across upgrades of its binary), else its
// executable; empty for a client that is not a local process (remote TCP).
struct Identity {
  std::string user;
  std::string program;
  std::optional<uint32_t> login_uid;

  static Identity of(const ConnectionInfo& who);
  // "user=etl program=/usr/bin/psql login_uid=1000", for people.
  std::string to_string() const;
  bool operator==(const Identity&) const = default;
};

struct Limits {
  uint64_t max_per_identity = 10000;
  uint64_t max_total = 200000;
  // The file is rewritten once it is at least this large and four times its live size.
  uint64_t compact_min_bytes = 1 << 20;
};

struct Stats {
  uint64_t identities = 0;
  uint64_t fingerprints = 0;
  uint64_t learned = 0;          // fingerprints added since open
  uint64_t capped_identity = 0;  // not learned: the identity's cap was reached
  uint64_t capped_total = 0;     // not learned: the store's cap was reached
  uint64_t bad_lines = 0;        // skipped at load (malformed)
  uint64_t write_errors = 0;     // flushes that failed (the entries stay pending)
  uint64_t compactions = 0;
};

struct Entry {
  uint64_t fingerprint = 0;
  uint64_t count = 0;
  int64_t first_s = 0;
  int64_t last_s = 0;
};

struct IdentityEntries {
  Identity identity;
  std::vector<Entry> entries;  // by first seen
};

class Store {
 public:
  static constexpr std::string_view kFileName = "learned.log";

  // Opens (creating the directory's file when missing) and loads `dir`/learned.log.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir, const Limits& limits,
                                             int64_t now_s);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  enum class Seen : uint8_t {
    kKnown,    // learned before: its count and last-seen time were updated
    kLearned,  // new, and now learned (learn == true)
    kNovel,    // new, not learned (learn == false)
    kCapped,   // new, learn == true, but a cap refused it (counted)
  };
  // One statement run by `key` (Identity::to_key). Thread-safe.
  Seen observe(const std::string& key, uint64_t fingerprint, int64_t now_s, bool learn);
  // Was `fingerprint` learned for `key`? Changes nothing.
  bool known(const std::string& key, uint64_t fingerprint) const;
  // The store's key of an identity (its escaped fields).
  static std::string to_key(const Identity& identity);

  // Writes what changed since the last flush (new fingerprints always; count and last-seen
  // updates when `with_counts`) and fdatasyncs; first applies what another process appended.
  // A failure keeps everything pending for the next flush.
  Status flush(bool with_counts);
  // Re-reads lines other processes appended (a prune) without writing.
  Status refresh();

  // Prunes: appended as P/A lines and applied here. Return how many fingerprints went.
  Result<size_t> prune_identity(const Identity& identity);
  Result<size_t> prune_older_than(int64_t cutoff_s);

  std::vector<IdentityEntries> list() const;
  Stats stats() const;
  int64_t created_s() const { return created_s_; }
  void set_limits(const Limits& limits);
  const std::string& path() const { return path_; }

 private:
  struct Fp {
    Entry e;
    bool dirty_new = false;    // never written
    bool dirty_count = false;  // written, count/last seen changed since
  };
  struct Ident {
    Identity identity;
    std::unordered_map<uint64_t, Fp> fps;
  };

  Store() = default;
  Status load_locked();
  Status apply_tail_locked();
  void apply_line(std::string_view line);
  Status append_locked(const std::string& lines);
  Status compact_locked();
  Status write_header_locked();
  void sync_dir() const;
  size_t erase_if(const std::string* key, uint64_t fingerprint, int64_t cutoff_s);

  mutable std::mutex mu_;
  std::string dir_, path_;
  int fd_ = -1;
  uint64_t offset_ = 0;      // bytes of the file applied here (ours and others')
  uint64_t live_bytes_ = 0;  // an estimate of the compacted size
  int64_t created_s_ = 0;
  Limits limits_;
  std::unordered_map<std::string, Ident> idents_;
  uint64_t total_ = 0;
  std::vector<std::pair<std::string, uint64_t>> dirty_;
  Stats stats_;
};

// Learn mode on one statement the rules decided `d` for. Rules win: a statement they block
// is neither learned nor judged here. For an identity the learn section covers: learning,
// the fingerprint is remembered; protecting, a fingerprint never learned turns `d` into the
// learn action (rule kNovelFingerprintRule). `store` null (no state directory): nothing is
// learned and nothing is novel. `why` (optional) receives lines for people; `dry_run`
// (`policy explain`) looks the fingerprint up without learning or counting it.
void apply_learn(const policy::Policy& policy, Store* store, const std::string& key,
                 const ConnectionInfo& who, const sql::Analysis& analysis, int64_t now_s,
                 policy::Decision& d, std::string* why = nullptr, bool dry_run = false);

}  // namespace dbwarden::learn
