// SPDX-License-Identifier: Apache-2.0
#include "agent/verify_audit.h"

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/chain_state.h"
#include "audit/verify.h"

namespace dbwarden::agent {
namespace {

constexpr int kValid = 0;
constexpr int kInvalid = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] =
    "Usage: dbwarden verify-audit [options] FILE|DIR...\n\n"
    "Checks the audit trail's hash chain and names the first bad record (a framed trail,\n"
    "--audit-format zst: the first bad frame and the record seqs it holds).\n"
    "Restarts after a crash (recovery records) are listed, not taken for tampering.\n"
    "FILEs are checked in the order given (plain or .zst); a DIR stands for its\n"
    "rotated files (oldest first) and the active file, and its state file.\n\n"
    "Options:\n"
    "  --state FILE     the agent's state file: detects removal of the newest records\n"
    "  --hmac-key FILE  the key the chain was written with (hmac_key_file)\n"
    "  --partial        start at the first file's checkpoint, not at record 0\n"
    "  -h, --help       this text\n\n"
    "Exit status: 0 valid, 1 invalid, 2 usage or read error.\n";

// One line per crash the writer recovered from: where, what it kept and cut.
void print_recovery(const audit::VerifyRecovery& r, std::ostream& out) {
  const audit::RecoveryView& v = r.record;
  out << "recovery: " << r.file << (r.framed ? ": frame " : ":") << r.line << ": seq " << r.seq
      << " at " << v.time << ": the agent restarted after a crash; ";
  if (v.last_good_seq) {
    out << "the chain continues after seq " << *v.last_good_seq;
  } else {
    out << "no record before it";
  }
  if (v.bytes_cut > 0) {
    out << "; " << v.bytes_cut << " byte(s) of a torn record cut off";
    if (!v.cut_file.empty()) out << " (kept in " << v.cut_file << ")";
  }
  if (v.state_next_seq && v.last_good_seq && *v.last_good_seq + 1 > *v.state_next_seq) {
    out << "; " << (*v.last_good_seq + 1 - *v.state_next_seq)
        << " record(s) were written after the last state update";
  }
  out << "\n";
}

}  // namespace

int verify_audit_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string state_file, key_file;
  bool partial = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= argc) return false;
      into = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      out << kUsageText;
      return kValid;
    } else if (arg == "--state") {
      if (!value(state_file)) {
        err << "dbwarden verify-audit: --state needs a file\n";
        return kUsage;
      }
    } else if (arg == "--hmac-key") {
      if (!value(key_file)) {
        err << "dbwarden verify-audit: --hmac-key needs a file\n";
        return kUsage;
      }
    } else if (arg == "--partial") {
      partial = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      err << "dbwarden verify-audit: unknown option '" << arg << "'\n" << kUsageText;
      return kUsage;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty()) {
    err << kUsageText;
    return kUsage;
  }
  std::string dir_state;
  auto files = audit::expand_audit_paths(paths, &dir_state);
  if (!files.ok()) {
    err << "dbwarden verify-audit: " << files.status().message() << "\n";
    return kUsage;
  }
  audit::VerifyOptions options;
  options.partial = partial;
  if (state_file.empty() && !dir_state.empty()) {
    state_file = dir_state;
    out << "using state file " << state_file << "\n";
  }
  if (!state_file.empty()) {
    auto st = audit::read_state_file(state_file);
    if (!st.ok()) {
      err << "dbwarden verify-audit: " << st.status().message() << "\n";
      return kUsage;
    }
    options.state = std::move(st.value());
  }
  if (!key_file.empty()) {
    auto key = audit::load_hmac_key(key_file);
    if (!key.ok()) {
      err << "dbwarden verify-audit: " << key.status().message() << "\n";
      return kUsage;
    }
    options.hmac_key = std::move(key.value());
  }
  auto summary = audit::verify_audit_files(files.value(), std::move(options));
  if (!summary.ok()) {
    err << "dbwarden verify-audit: " << summary.status().message() << "\n";
    return kUsage;
  }
  const audit::VerifySummary& s = summary.value();
  for (const std::string& note : s.notes) out << "note: " << note << "\n";
  for (const audit::VerifyRecovery& r : s.recoveries) print_recovery(r, out);
  if (!s.valid()) {
    const audit::VerifyFailure& f = *s.failure;
    out << "INVALID: " << f.file;
    if (f.line > 0) out << ":" << f.line;
    out << ": " << f.reason << "\n";
    out << "checked " << s.records << " records before it\n";
    return f.needs_key ? kUsage : kInvalid;
  }
  out << "valid: " << s.records << " records (" << s.statements << " statements, " << s.checkpoints
      << " checkpoints) in " << s.files << " file(s), seq " << s.first_seq << ".."
      << (s.next_seq - 1) << ", chain head " << audit::to_hex(s.head);
  if (!s.recoveries.empty()) out << ", " << s.recoveries.size() << " recovery record(s)";
  out << "\n";
  return kValid;
}

int verify_audit_main(int argc, const char* const* argv) {
  return verify_audit_main(argc, argv, std::cout, std::cerr);
}

}  // namespace dbwarden::agent
