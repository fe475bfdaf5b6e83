// SPDX-License-Identifier: Apache-2.0
//
// What the PostgreSQL relay knows of the server's relations and functions, for the column
// lineage tracer (sql/lineage.h): a relation by the name a statement used (resolved by the
// session's search_path when unqualified), table or view, its visible columns in attnum
// order, a view's definition (pg_get_viewdef); whether a function may read tables.
//
// The proxy stores no credentials: the relay asks on the client's own session, only while
// it is idle outside a transaction, with a query of its own (PgCatalogLookup) whose bytes
// and answer never reach the client or the decoder (so no audit record comes of it; the
// observer's capture mutes the proxy's upstream sockets). Answers are kept per scope, a
// database and the session's effective search_path (current_schemas(true), which also
// expands "$user" and names the session's temporary schema), shared by every connection
// of the proxy, and forgotten:
// - on DDL any steered session relays (CREATE, ALTER, DROP, COMMENT, ...: IsPgCatalogChange),
//   and again when that session's transaction ends (another session may have looked up the
//   old state meanwhile);
// - after a TTL (DDL the proxy does not see: a function's body, a superuser on an unsteered
//   path), and the oldest scope past a bound. RowDescription's table OIDs are checked
//   against what is known, so a stale entry fails closed for plain columns.
//
// The reach set. Inside a transaction block nothing can be looked up, so each scope also
// learns, at a lookup while the session is idle outside one, every relation that can reach a
// column some `columns` rule names: the relations holding such a column (matched by the
// rules' globs, loosened to LIKE patterns that match at least as much: ReachPatterns), every
// view and materialized view that depends on one of them, transitively (pg_depend through
// pg_rewrite), with their columns and definitions, and the relations those views also read
// (so that their definitions trace); and the functions that may read tables. A relation the
// scope does not know then provably reads no masked column: each relation of the reach set
// is known by its schema-qualified name, and by its bare name where the session's
// search_path finds it (pg_table_is_visible). A relation created since, or a search_path
// changed since, went through the proxy as DDL or SET and made the scope be forgotten, so
// the reach set never vouches for what it did not see (short of DDL on a path the proxy does
// not steer: the TTL bounds that, as it does for every entry).
//
// Sharing it (PgScopeKey, PgStartKey). What a scope holds depends on the server (its
// catalog), the database, the session's effective search_path (current_schemas(true):
// which names are visible; it already folds in the role, through "$user" and the USAGE
// checks, and the temporary schema) and, for the reach set, the rules' patterns: those four
// are the scope's key. A new connection does not know its search_path before it asks, so
// the cache also remembers where a fresh session of each *start* lands (PgStartKey: the
// server, and the startup parameters that can change the search_path or the role: user,
// database, options, any other GUC the client set, but not application_name and the like),
// as learnt by the first lookup of an earlier such session, one the server said runs at its
// starting search_path and role; a new session of that start takes that scope, and its
// reach set, without a query while both are under half the TTL old (the renewal rule), or
// up to the TTL while another connection renews them. One lookup is in flight per scope and
// per start (claim()): a connection that would ask the same waits for it (once) and is
// woken when it ends (take_woken()); DDL forgets the starts with the scopes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "policy/policy.h"
#include "proxy/mask_plan.h"
#include "sql/lineage.h"

namespace dbwarden::proxy {

struct PgRelation {
  uint32_t oid = 0;
  std::string schema, name;
  bool is_view = false;              // relkind 'v' or 'm'
  std::vector<std::string> columns;  // visible, in attnum order
  std::vector<int16_t> attnums;      // of `columns`
  std::string view_definition;
};

// One `columns` glob (schema, table, column) as LIKE patterns ('\\' escapes) that match every
// name the glob matches, and maybe more: `?` and `[...]` (one byte in a glob, which may be
// part of a character) become `%`. Over-matching only makes the reach set larger.
struct ReachPattern {
  std::string schema, table, column;
  bool operator==(const ReachPattern&) const = default;
};
std::string GlobToLike(std::string_view glob);
// The patterns of every `columns` entry of every mask rule of `policy`, each once.
std::vector<ReachPattern> ReachPatterns(const policy::Policy& policy);

// A name the tracer asked for that the cache could not answer.
struct PgLookupName {
  bool function = false;
  std::string schema, name;  // schema empty: by search_path
  bool operator==(const PgLookupName&) const = default;
};

class PgCatalogCache {
 public:
  struct Limits {
    size_t max_scopes = 64;
    size_t max_names_per_scope = 8192;  // relations and functions asked by name
    size_t max_fingerprints_per_scope = 16384;
    size_t max_view_definition = 256 * 1024;  // longer: kept empty, so not followed
    uint64_t ttl_ns = 60'000'000'000ull;
    size_t max_starts = 1024;  // startup keys whose scope is known (LRU past it)
  };
  // Totals since the proxy started (read from another thread: atomics inside).
  struct Counters {
    uint64_t reach_hits = 0;    // a connection took a shared reach set instead of asking
    uint64_t reach_misses = 0;  // a lookup asked the server for the reach set
    uint64_t reach_waits = 0;   // a connection waited for another's lookup of its set
    uint64_t evictions = 0;     // scopes and starts dropped by their bounds (LRU)
  };
  class Scope {
   public:
    // Null: never asked. Pointing to null: the server said there is none.
    const std::shared_ptr<const PgRelation>* relation(std::string_view schema,
                                                      std::string_view name) const;
    const bool* function_opaque(std::string_view schema, std::string_view name) const;
    const PgRelation* by_oid(uint32_t oid) const;
    // Statements (by fingerprint) that no column rule can touch under this scope.
    bool untouched(uint64_t fingerprint) const { return untouched_.count(fingerprint) != 0; }
    void set_untouched(uint64_t fingerprint);
    // False past the bound (nothing kept).
    bool add_relation(std::string_view schema, std::string_view name,
                      std::shared_ptr<const PgRelation> rel);
    void add_function(std::string_view schema, std::string_view name, bool opaque);
    // The reach set (above): whether it is known, whether `oid` is in it, and whether a
    // function not asked by name may read tables by the reach lookup's list of them.
    bool reach_known() const { return reach_known_; }
    bool in_reach(uint32_t oid) const { return reach_.count(oid) != 0; }
    bool reach_function_opaque(std::string_view schema, std::string_view name) const;
    uint64_t created_ns() const { return created_ns_; }
    uint64_t generation() const { return generation_; }
    // A relay that keeps a pointer to the scope says when it used it (LRU).
    void note_used(uint64_t now_ns) { used_ns_ = now_ns; }

   private:
    friend class PgCatalogCache;
    friend class PgCatalogLookup;
    static std::string key(std::string_view schema, std::string_view name);
    std::unordered_map<std::string, std::shared_ptr<const PgRelation>> relations_;
    std::unordered_map<std::string, bool> functions_;
    std::unordered_map<uint32_t, std::shared_ptr<const PgRelation>> by_oid_;
    std::unordered_set<uint64_t> untouched_;
    bool reach_known_ = false;
    std::unordered_set<uint32_t> reach_;
    std::unordered_set<std::string> reach_opaque_;  // key(schema, name); schema "": on the path
    uint64_t created_ns_ = 0;
    uint64_t used_ns_ = 0;
    uint64_t generation_ = 0;
    Limits limits_;
  };

  PgCatalogCache() = default;
  explicit PgCatalogCache(const Limits& limits) : limits_(limits) {}
  // The scope `key` (PgCatalogLookup::scope_key) if known and younger than the TTL.
  Scope* find(std::string_view key, uint64_t now_ns);
  // The scope `key`, made empty if it was not there (the least recently used goes past
  // max_scopes).
  Scope& get(std::string_view key, uint64_t now_ns);
  // The scope `key` made anew, empty (a reach lookup renews an old one: see PgRelay).
  Scope& renew(std::string_view key, uint64_t now_ns);
  // DDL: everything is forgotten (the starts too).
  void invalidate();
  uint64_t generation() const { return generation_; }
  size_t scopes() const { return scopes_.size(); }
  const Limits& limits() const { return limits_; }

  // Where a fresh session of start `start` (PgStartKey) lands: the scope as its lookup said
  // it ("database/schemas"), if learnt since the last DDL and younger than the TTL (`age_ns`:
  // how old); null otherwise.
  const std::string* start_scope(std::string_view start, uint64_t now_ns, uint64_t* age_ns);
  void learn_start(std::string_view start, std::string_view scope, uint64_t now_ns);
  size_t starts() const { return starts_.size(); }

  // One lookup in flight per key (a scope key, or a start key): `owner` claims it (false:
  // another holds it); another relay may wait() for it; release() ends every claim of
  // `owner` and wakes those waiting on them; forget() drops a relay that goes away (its
  // claims released too). Bounded by the relays: each holds two claims and one wait at most.
  bool claim(std::string_view key, const void* owner);
  bool claimed_by_other(std::string_view key, const void* owner) const;
  void wait(std::string_view key, const void* waiter);
  bool waiting(const void* waiter) const { return waiting_.count(waiter) != 0; }
  void release(const void* owner);
  void forget(const void* relay);
  // The relays woken since the last call (the proxy drives their connections again).
  std::vector<const void*> take_woken();

  void count_hit() { hits_.fetch_add(1, std::memory_order_relaxed); }
  void count_miss() { misses_.fetch_add(1, std::memory_order_relaxed); }
  void count_wait() { waits_.fetch_add(1, std::memory_order_relaxed); }
  Counters counters() const;

 private:
  struct Start {
    std::string scope;
    uint64_t learnt_ns = 0;
    uint64_t used_ns = 0;
  };
  struct Claim {
    const void* owner = nullptr;
    std::vector<const void*> waiters;
  };
  Limits limits_;
  std::unordered_map<std::string, std::unique_ptr<Scope>> scopes_;
  std::unordered_map<std::string, Start> starts_;
  std::unordered_map<std::string, Claim> claims_;
  std::unordered_map<const void*, std::string> waiting_;  // waiter -> the key it waits on
  std::vector<const void*> woken_;
  uint64_t generation_ = 1;
  std::atomic<uint64_t> hits_{0}, misses_{0}, waits_{0}, evictions_{0};
};

// The cache key of a scope: the server (the proxy's own name for the upstream it connects
// to: "tcp 127.0.0.1:5432", "unix /run/postgresql/.s.PGSQL.5432"), what the lookup said
// (database and current_schemas(true)) and the reach patterns it was asked with
// (ReachTag): a policy whose `columns` change does not take a set made for other columns.
std::string ReachTag(std::span<const ReachPattern> patterns);
std::string PgScopeKey(std::string_view server, std::string_view scope, std::string_view tag);
// The start key of a StartupMessage (`packet`: the whole packet, length and version
// included) to `server`; "" when it is malformed. Parameters that cannot change the
// search_path or the role are left out (application_name, client_encoding, DateStyle,
// TimeZone, ...); the others are kept, sorted, whatever they are.
std::string PgStartKey(std::string_view server, std::span<const uint8_t> packet);
// Whether a scope ("database/schemas") may name a temporary schema: a fresh session has none.
bool PgScopeHasTemp(std::string_view scope);

// The tracer's Catalog over one scope (null: nothing known yet). A name the scope has not
// answered is noted in missing(): a relation then fails the trace (nullopt), a function is
// taken as not opaque so that the trace goes on and notes more names; a trace with
// anything missing is thrown away and run again once they have been looked up. Where the
// scope knows its reach set, a relation it has not answered is outside that set, noted in
// outside() instead (still nullopt: its columns are not known), and a function is answered
// from the reach lookup's list. A name in a temporary schema (`pg_temp.x`) is never taken
// as outside, and a function there is opaque: the cache knows that schema by its real name.
class PgScopeCatalog final : public sql::Catalog {
 public:
  explicit PgScopeCatalog(const PgCatalogCache::Scope* scope) : scope_(scope) {}
  std::optional<Relation> relation(std::string_view schema, std::string_view name) override;
  bool function_is_opaque(std::string_view schema, std::string_view name) override;
  const std::vector<PgLookupName>& missing() const { return missing_; }
  const std::vector<PgLookupName>& outside() const { return outside_; }

 private:
  const PgCatalogCache::Scope* scope_;
  std::vector<PgLookupName> missing_;
  std::vector<PgLookupName> outside_;
};

// Whether statement `text` provably reads no column some `columns` rule names, under a scope
// that knows its reach set: it parses, runs nothing elsewhere (FETCH, EXECUTE, CALL, DO, a
// built-in reading by name), names no relation of the reach set and no temporary-schema
// name, and calls no function that may read tables (sql::pg_named_objects).
bool PgOutsideReach(const std::string& text, const PgCatalogCache::Scope& scope);

// One lookup: the Query message, then the server's answer message by message.
class PgCatalogLookup {
 public:
  static constexpr size_t kMaxNames = 64;
  static constexpr size_t kMaxNameBytes = 128;
  static constexpr size_t kMaxReachRelations = 4096;
  static constexpr size_t kMaxReachFunctions = 32768;
  static constexpr size_t kMaxReachColumns = 262144;
  // The Query message asking for `names` (at most kMaxNames; longer names are skipped) and
  // the scope key, and with `reach` (ReachPatterns) the reach set too; false when none can
  // be asked.
  bool query(std::span<const PgLookupName> names, std::vector<uint8_t>& message,
             std::span<const ReachPattern> reach = {});
  // After kDone: whether the answer held the reach set whole (asked, within the bounds).
  bool reach_listed() const { return reach_end_ && !reach_overflow_; }
  enum class State : uint8_t { kRunning, kDone, kFailed };
  // One whole server message (type, body without the header). kDone after ReadyForQuery
  // of an answer read whole; kFailed after ReadyForQuery of one that was not (an error:
  // nothing of it is kept). Messages the lookup does not own (ParameterStatus,
  // NotificationResponse) return kRunning with `forward` set: they belong to the client.
  State on_message(uint8_t type, std::span<const uint8_t> body, bool* forward);
  State state() const { return state_; }
  // After kDone: the scope the session is in ("database/schema,schema,...").
  const std::string& scope_key() const { return scope_key_; }
  // After kDone: whether the server said the session runs at its starting search_path
  // (equal to its reset value) as its session user (no SET ROLE), and that user.
  bool at_start() const { return at_start_; }
  const std::string& session_user() const { return session_user_; }
  // After kDone: what the answer listed, for every asked name (not found included), and
  // the reach set when reach_listed().
  void fill(PgCatalogCache::Scope& scope, size_t max_view_definition) const;

 private:
  void row(std::span<const uint8_t> body);
  void reach_row(std::string_view kind, long flag, const std::string_view* v, const bool* null);
  void fill_reach(PgCatalogCache::Scope& scope, size_t max_view_definition) const;
  std::vector<PgLookupName> names_;
  struct Found {
    bool listed = false;
    PgRelation rel;
    bool found = false;
    std::vector<std::pair<int16_t, std::string>> columns;
    bool opaque = true;
  };
  std::vector<Found> found_;
  // The reach set's relations ('R' in it, 'U' read by a view in it) and functions.
  struct ReachRelation {
    PgRelation rel;
    bool in_reach = false, visible = false;
  };
  std::vector<ReachRelation> reach_rels_;
  std::unordered_map<uint32_t, std::vector<std::pair<int16_t, std::string>>> reach_columns_;
  size_t reach_column_count_ = 0;
  std::vector<std::pair<std::string, std::string>> reach_functions_;
  std::vector<bool> reach_function_on_path_;
  bool reach_asked_ = false, reach_end_ = false, reach_overflow_ = false;
  std::string scope_key_;
  bool at_start_ = false;
  std::string session_user_;
  bool error_ = false;
  bool shape_ok_ = false;
  State state_ = State::kRunning;
};

// The relay's view of one traced statement: where each result column comes from, what it
// reads in predicates and at all.
StatementOrigins origins_from_lineage(const sql::Lineage& lineage);

// What a statement may change for the catalog, by its first word (and `into` after SELECT,
// `set_config` anywhere). Cheap: the relay asks it of every statement while the policy
// has mask rules.
enum PgCatalogEffect : uint8_t {
  // Relations or functions created, altered, dropped or renamed (CREATE, ALTER, DROP,
  // COMMENT, SELECT INTO, IMPORT FOREIGN SCHEMA; DO and CALL, which may run any of these).
  kPgCatalogChange = 1,
  // The session's search_path or role may change (SET, RESET, DISCARD, set_config()).
  kPgScopeChange = 2,
  // A transaction ends (COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION).
  kPgTransactionEnd = 4,
};
uint8_t PgCatalogEffects(std::string_view text);

}  // namespace dbwarden::proxy
