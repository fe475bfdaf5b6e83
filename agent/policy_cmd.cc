// SPDX-License-Identifier: Apache-2.0
#include "agent/policy_cmd.h"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <string_view>

#include "agent/catalog_columns.h"
#include "learn/learn.h"
#include "policy/policy.h"
#include "sql/analyzer.h"

namespace dbwarden::agent {
namespace {

constexpr int kOk = 0;
constexpr int kBad = 2;

constexpr char kUsage[] =
    "Usage: dbwarden policy check FILE [--postgres TARGET] [--mysql SOCKET]\n"
    "       dbwarden policy explain FILE --user U --database D [options] --sql \"...\"\n"
    "       dbwarden policy learned [--state-dir D] [list]\n"
    "       dbwarden policy learned [--state-dir D] prune --user U [--program P]\n"
    "                               [--login-uid N] | --older-than DURATION\n\n"
    "check    validates FILE as `dbwarden run --policy FILE` would load it; every error\n"
    "         is printed as FILE:LINE:COLUMN: message. Exit 0 valid, 2 invalid.\n"
    "         With a live server, also the mask rules' styles against the types of the\n"
    "         columns they name (connecting as the invoking OS user over the unix socket:\n"
    "         peer / unix_socket authentication, no password):\n"
    "  --postgres TARGET       a socket directory, a .s.PGSQL.N socket, or\n"
    "                          \"host=DIR port=N dbname=D user=U\" (default database: the user's)\n"
    "  --mysql SOCKET          a MySQL/MariaDB server's unix socket\n"
    "explain  prints what the analyser makes of one statement, each rule up to the one\n"
    "         that decides with the condition that failed or the ones that held, and the\n"
    "         decision, then each mask rule and whether it applies to the results.\n"
    "         The client is described by:\n"
    "  --user U                database user (required)\n"
    "  --database D            database (required)\n"
    "  --application-name A    application_name\n"
    "  --client-address IP     TCP client address (omit: a unix-socket client)\n"
    "  --uid N                 local client process: uid\n"
    "  --login-uid N           local client process: audit login uid (the human behind sudo)\n"
    "  --executable PATH       local client process: executable\n"
    "  --unit UNIT             local client process: systemd unit\n"
    "  --container ID          local client process: container id\n"
    "  --dialect postgresql|mysql   the server's SQL dialect (default postgresql)\n"
    "  --sql TEXT              the statement (required)\n"
    "  --state-dir D           with a `learn:` section: look the fingerprint up in what was\n"
    "                          learned in D (read only)\n"
    "learned  lists what learn mode learned in the state directory D (default\n"
    "         /var/lib/dbwarden, the agent's audit-state-dir): each identity (database\n"
    "         user, program = systemd unit or executable, login uid) and its fingerprints\n"
    "         with count and first/last seen; or prunes one identity (all three given as\n"
    "         `list` prints them; --program and --login-uid omitted mean none), or every\n"
    "         fingerprint last seen longer ago than DURATION (30d, 12h, 90m, 2w). A prune\n"
    "         reaches a running agent within a second.\n";

bool parse_u32(const std::string& s, uint32_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

std::string yes_no(bool b) { return b ? "true" : "false"; }

std::string when(int64_t unix_s);

std::string describe_learn(const policy::LearnSettings& l) {
  std::string s = std::string("learn: mode ") +
                  (l.mode == policy::LearnSettings::Mode::kLearn ? "learn" : "protect");
  if (l.until_s != 0) s += " until " + when(l.until_s) + ", then protect";
  if (l.duration_s != 0) {
    s += " for " + std::to_string(l.duration_s) + " s from the first start, then protect";
  }
  s += "; a novel fingerprint in protect mode: " + std::string(policy::action_name(l.action)) +
       " (rule " + std::string(policy::kNovelFingerprintRule) + "); caps " +
       std::to_string(l.max_per_identity) + " per identity, " + std::to_string(l.max_total) +
       " in total";
  return s;
}

// `policy check --postgres/--mysql`: the mask rules' styles against a live server's column
// types (agent/catalog_columns.h). False when the rules do not fit the columns, or when the
// server could not be read.
bool check_types(const policy::Policy& p, const std::string& postgres, const std::string& mysql,
                 std::ostream& out, std::ostream& err) {
  bool ok = true;
  for (const auto& [name, target] : {std::pair{"postgres", postgres}, std::pair{"mysql", mysql}}) {
    if (target.empty()) continue;
    const Result<std::vector<policy::DbColumn>> cols =
        std::string_view(name) == "postgres" ? read_pg_columns(target) : read_mysql_columns(target);
    if (!cols.ok()) {
      err << "dbwarden policy check: --" << name << ": " << cols.status().message() << "\n";
      ok = false;
      continue;
    }
    const policy::ColumnTypeReport r = p.check_column_types(cols.value());
    for (const std::string& e : r.errors) err << e << "\n";
    for (const std::string& w : r.warnings) err << w << "\n";
    out << "column types (--" << name << " " << target << "): " << cols.value().size()
        << " columns read, " << r.columns_checked << " named by mask rules, " << r.errors.size()
        << (r.errors.size() == 1 ? " error" : " errors") << "\n";
    ok = ok && r.errors.empty();
  }
  return ok;
}

int check(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string file, postgres, mysql;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if ((a == "--postgres" || a == "--mysql") && i + 1 < argc) {
      (a == "--postgres" ? postgres : mysql) = argv[++i];
    } else if (file.empty() && !a.starts_with("--")) {
      file = a;
    } else {
      err << "dbwarden policy check: unexpected `" << a << "`\n" << kUsage;
      return kBad;
    }
  }
  if (file.empty()) {
    err << "dbwarden policy check: give exactly one FILE\n" << kUsage;
    return kBad;
  }
  auto policy = policy::Policy::load_file(file);
  if (!policy.ok()) {
    err << policy.status().message() << "\n";
    return kBad;
  }
  const auto& p = *policy.value();
  for (const std::string& w : p.warnings()) err << w << "\n";
  if (!check_types(p, postgres, mysql, out, err)) return kBad;
  out << file << ": OK, " << p.rule_count() << (p.rule_count() == 1 ? " rule" : " rules");
  if (p.mask_rule_count() > 0) {
    out << " (" << p.mask_rule_count() << " mask, detectors on " << p.masker()->engine_name()
        << ")";
  }
  out << ", on_unparsed: " << (p.on_unparsed() == policy::OnUnparsed::kBlock ? "block" : "allow")
      << "\n";
  if (const policy::LearnSettings* l = p.learn()) out << describe_learn(*l) << "\n";
  if (postgres.empty() && mysql.empty() && p.mask_rule_count() > 0) {
    out << "column types: not checked (give --postgres or --mysql to check the mask rules' "
           "styles against a live server's columns)\n";
  }
  return kOk;
}

void print_analysis(const sql::Analysis& a, std::ostream& out) {
  out << "statement:\n"
      << "  normalised:       " << a.normalized << "\n"
      << "  dialect:          " << (a.dialect == sql::Dialect::kMysql ? "mysql" : "postgresql")
      << "\n"
      << "  operation:        " << (a.operation.empty() ? "(none)" : a.operation)
      << (a.object_type.empty() ? "" : " " + a.object_type) << "\n"
      << "  collections:      ";
  for (size_t i = 0; i < a.collections.size(); ++i) out << (i ? ", " : "") << a.collections[i];
  out << (a.collections.empty() ? "(none)" : "") << "\n"
      << "  has_where:        " << yes_no(a.has_where) << "\n"
      << "  alter_table_drop: " << yes_no(a.alter_table_drop) << "\n"
      << "  grant_to_public:  " << yes_no(a.grant_to_public) << "\n"
      << "  copy_program:     " << yes_no(a.copy_program) << "\n"
      << "  fingerprint:      " << a.fingerprint << "\n"
      << "  analysed by:      "
      << (a.source == sql::AnalysisSource::kParser          ? "the PostgreSQL grammar"
          : a.source == sql::AnalysisSource::kLexerFallback ? "tokens (the grammar rejected it)"
                                                            : "tokens")
      << (a.unterminated ? ", text cut short" : "") << "\n";
  if (a.statements > 1) {
    out << "  note: the text holds " << a.statements
        << " statements; the proxy judges each one on its own\n";
  }
}

int explain(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string file, sql_text, dialect = "postgresql", state_dir;
  bool have_user = false, have_database = false, have_sql = false;
  ConnectionInfo who;
  bool local = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out << kUsage;
      return kOk;
    }
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (!file.empty()) {
        err << "dbwarden policy explain: unexpected argument '" << arg << "'\n";
        return kBad;
      }
      file = arg;
      continue;
    }
    if (i + 1 >= argc) {
      err << "dbwarden policy explain: " << arg << " needs a value\n";
      return kBad;
    }
    const std::string value = argv[++i];
    uint32_t n = 0;
    if (arg == "--user") {
      who.user = value;
      have_user = true;
    } else if (arg == "--database") {
      who.database = value;
      have_database = true;
    } else if (arg == "--application-name") {
      who.application_name = value;
    } else if (arg == "--client-address") {
      who.client_address = value;
    } else if (arg == "--uid" || arg == "--login-uid") {
      if (!parse_u32(value, n)) {
        err << "dbwarden policy explain: " << arg << " needs a number, got '" << value << "'\n";
        return kBad;
      }
      if (arg == "--uid") {
        who.peer.uid = n;
      } else {
        who.peer.login_uid = n;
      }
      local = true;
    } else if (arg == "--executable") {
      who.peer.executable = value;
      local = true;
    } else if (arg == "--unit") {
      who.peer.systemd_unit = value;
      local = true;
    } else if (arg == "--container") {
      who.peer.container_id = value;
      local = true;
    } else if (arg == "--dialect") {
      if (value != "postgresql" && value != "mysql") {
        err << "dbwarden policy explain: --dialect is postgresql or mysql\n";
        return kBad;
      }
      dialect = value;
    } else if (arg == "--sql") {
      sql_text = value;
      have_sql = true;
    } else if (arg == "--state-dir") {
      state_dir = value;
    } else {
      err << "dbwarden policy explain: unknown option '" << arg << "'\n" << kUsage;
      return kBad;
    }
  }
  if (file.empty() || !have_user || !have_database || !have_sql) {
    err << "dbwarden policy explain: FILE, --user, --database and --sql are required\n" << kUsage;
    return kBad;
  }
  // The policy matches process conditions only for a client known to be a
  // local process (peer pid set); any process option describes one.
  if (local) who.peer.pid = static_cast<uint32_t>(::getpid());
  who.unix_socket = who.client_address.empty();
  who.db_system = dialect;

  auto loaded = policy::Policy::load_file(file);
  if (!loaded.ok()) {
    err << loaded.status().message() << "\n";
    return kBad;
  }
  const policy::Policy& policy = *loaded.value();
  sql::Analyzer analyzer;
  const sql::Analysis& a = analyzer.analyze(sql::dialect_of(dialect), sql_text);
  print_analysis(a, out);
  out << "policy " << file << " (" << policy.rule_count() << " rules, on_unparsed: "
      << (policy.on_unparsed() == policy::OnUnparsed::kBlock ? "block" : "allow") << "):\n";
  policy::Decision d = policy.explain(who, a, sql_text);
  out << d.why;
  if (policy.learn() != nullptr) {
    out << describe_learn(*policy.learn()) << "\n";
    std::unique_ptr<learn::Store> store;
    std::string empty_dir;  // nothing learned yet: an empty set, kept out of state_dir
    if (!state_dir.empty()) {
      const std::string path = state_dir + "/" + std::string(learn::Store::kFileName);
      struct stat st {};
      std::string open_dir = state_dir;
      if (::stat(path.c_str(), &st) != 0) {
        out << "learn: nothing learned in " << state_dir << " (no " << learn::Store::kFileName
            << "): every fingerprint is new\n";
        char tmpl[] = "/tmp/dbwarden-explain-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
          err << "dbwarden policy explain: cannot make a temporary directory\n";
          return kBad;
        }
        open_dir = empty_dir = tmpl;
      }
      auto s = learn::Store::Open(open_dir, {}, std::time(nullptr));
      if (!empty_dir.empty()) {
        ::unlink((empty_dir + "/" + std::string(learn::Store::kFileName)).c_str());
        ::rmdir(empty_dir.c_str());
      }
      if (!s.ok()) {
        err << s.status().message() << "\n";
        return kBad;
      }
      store = std::move(s.value());
    }
    std::string why;
    learn::apply_learn(policy, store.get(), learn::Store::to_key(learn::Identity::of(who)), who, a,
                       std::time(nullptr), d, &why, /*dry_run=*/true);
    out << why;
  }
  out << "decision: " << policy::action_name(d.action);
  if (!d.rule.empty()) {
    out << " by rule \"" << d.rule << "\"";
  } else {
    out << " (no rule)";
  }
  out << "\n";
  if (d.action == policy::Action::kBlock) {
    out << "  the client gets: ";
    if (a.dialect == sql::Dialect::kMysql) {
      out << "ERROR " << d.mysql_errno << " (" << d.sqlstate << "): " << d.message << "\n";
    } else {
      out << "ERROR:  " << d.message << " (SQLSTATE " << d.sqlstate << ")\n";
    }
  }
  // Mask rules do not decide; each that applies masks the results.
  if (d.action != policy::Action::kBlock && policy.mask_rule_count() > 0) {
    out << policy.explain_masks(who, a);
  }
  return kOk;
}

std::string when(int64_t unix_s) {
  char buf[32];
  const time_t t = static_cast<time_t>(unix_s);
  tm parts{};
  gmtime_r(&t, &parts);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buf;
}

int learned(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string dir = "/var/lib/dbwarden", verb = "list", older;
  learn::Identity id;
  bool have_user = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out << kUsage;
      return kOk;
    }
    if (arg == "list" || arg == "prune") {
      verb = arg;
      continue;
    }
    if (i + 1 >= argc || arg.compare(0, 2, "--") != 0) {
      err << "dbwarden policy learned: unexpected argument '" << arg << "'\n" << kUsage;
      return kBad;
    }
    const std::string value = argv[++i];
    uint32_t n = 0;
    if (arg == "--state-dir") {
      dir = value;
    } else if (arg == "--user") {
      id.user = value;
      have_user = true;
    } else if (arg == "--program") {
      id.program = value == "-" ? "" : value;
    } else if (arg == "--login-uid") {
      if (value != "-" && !parse_u32(value, n)) {
        err << "dbwarden policy learned: --login-uid needs a number or -\n";
        return kBad;
      }
      if (value != "-") id.login_uid = n;
    } else if (arg == "--older-than") {
      older = value;
    } else {
      err << "dbwarden policy learned: unknown option '" << arg << "'\n" << kUsage;
      return kBad;
    }
  }
  const std::string path = dir + "/" + std::string(learn::Store::kFileName);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (verb == "list") {
      out << "nothing learned in " << dir << " (no " << learn::Store::kFileName << ")\n";
      return kOk;
    }
    err << "dbwarden policy learned: nothing learned in " << dir << "\n";
    return kBad;
  }
  const int64_t now = std::time(nullptr);
  auto opened = learn::Store::Open(dir, {UINT64_MAX, UINT64_MAX}, now);
  if (!opened.ok()) {
    err << opened.status().message() << "\n";
    return kBad;
  }
  learn::Store& store = *opened.value();
  if (verb == "list") {
    const auto all = store.list();
    for (const auto& ie : all) {
      out << "identity --user " << (ie.identity.user.empty() ? "''" : ie.identity.user)
          << " --program " << (ie.identity.program.empty() ? "-" : ie.identity.program)
          << " --login-uid "
          << (ie.identity.login_uid ? std::to_string(*ie.identity.login_uid) : "-") << " ("
          << ie.entries.size() << " fingerprint" << (ie.entries.size() == 1 ? "" : "s") << ")\n";
      for (const learn::Entry& e : ie.entries) {
        char fp[17];
        std::snprintf(fp, sizeof(fp), "%016llx", static_cast<unsigned long long>(e.fingerprint));
        out << "  " << fp << "  count " << e.count << "  first " << when(e.first_s) << "  last "
            << when(e.last_s) << "\n";
      }
    }
    const learn::Stats s = store.stats();
    out << s.identities << " identit" << (s.identities == 1 ? "y" : "ies") << ", " << s.fingerprints
        << " fingerprint" << (s.fingerprints == 1 ? "" : "s") << ", learning since "
        << when(store.created_s());
    if (s.bad_lines != 0) out << ", " << s.bad_lines << " unreadable line(s) skipped";
    out << "\n";
    return kOk;
  }
  if (have_user == !older.empty()) {
    err << "dbwarden policy learned prune: give --user U [--program P] [--login-uid N], or "
           "--older-than DURATION\n";
    return kBad;
  }
  Result<size_t> n = Status::Error("unset");
  if (have_user) {
    n = store.prune_identity(id);
  } else {
    uint64_t secs = 0;
    if (!policy::parse_duration(older, secs)) {
      err << "dbwarden policy learned prune: --older-than needs a duration such as 30d, got '"
          << older << "'\n";
      return kBad;
    }
    n = store.prune_older_than(now - static_cast<int64_t>(secs));
  }
  if (!n.ok()) {
    err << n.status().message() << "\n";
    return kBad;
  }
  out << "pruned " << n.value() << " fingerprint" << (n.value() == 1 ? "" : "s") << "\n";
  return kOk;
}

}  // namespace

int policy_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  if (argc < 2 || std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help") {
    (argc < 2 ? err : out) << kUsage;
    return argc < 2 ? kBad : kOk;
  }
  const std::string_view sub = argv[1];
  if (sub == "check") return check(argc - 1, argv + 1, out, err);
  if (sub == "explain") return explain(argc - 1, argv + 1, out, err);
  if (sub == "learned") return learned(argc - 1, argv + 1, out, err);
  err << "dbwarden policy: unknown subcommand '" << sub << "' (check, explain or learned)\n";
  return kBad;
}

int policy_main(int argc, const char* const* argv) {
  return policy_main(argc, argv, std::cout, std::cerr);
}

}  // namespace dbwarden::agent
