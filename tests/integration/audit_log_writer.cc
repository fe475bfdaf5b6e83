// SPDX-License-Identifier: Apache-2.0
//
// Writes an audit log with the real JsonlWriter for test_verify_audit.sh:
//   audit_log_writer [--format jsonl|zst] [--checkpoint-records N] PATH COUNT
//                    [ROTATE_BYTES [HMAC_KEY_FILE]]
// The format is jsonl (plain JSON Lines) unless --format zst (the framed trail).
// A checkpoint every 10 records unless --checkpoint-records (bench/audit_read.py
// writes the agent's default, 100,000).
// Statement i has the query text "SELECT i"; a second run continues the chain
// (numbering restarts at 0, which the script does not rely on).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "audit/jsonl_writer.h"

int main(int argc, char** argv) {
  dbwarden::audit::WriterOptions o;
  o.checkpoint_records = 10;
  while (argc > 2 && std::string(argv[1]).starts_with("--")) {
    const std::string flag = argv[1];
    if (flag == "--format") {
      if (std::string(argv[2]) == "zst") o.format = dbwarden::audit::TrailFormat::kFrames;
    } else if (flag == "--checkpoint-records") {
      o.checkpoint_records = std::strtoull(argv[2], nullptr, 10);
    } else {
      break;
    }
    argc -= 2;
    argv += 2;
  }
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: audit_log_writer [--format jsonl|zst] [--checkpoint-records N] PATH COUNT "
                 "[ROTATE_BYTES [HMAC_KEY_FILE]]\n");
    return 2;
  }
  o.path = argv[1];
  o.rotate_bytes = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 0;
  if (argc > 4) o.hmac_key_file = argv[4];
  auto w = dbwarden::audit::JsonlWriter::Open(o);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.status().message().c_str());
    return 1;
  }
  dbwarden::ConnectionInfo c;
  c.connection_id = 7;
  c.db_system = "postgresql";
  c.user = "alice";
  c.database = "shop";
  c.client_address = "127.0.0.1";
  c.client_port = 40000;
  c.server_port = 5432;
  const long n = std::atol(argv[2]);
  for (long i = 0; i < n; ++i) {
    dbwarden::Statement s;
    s.connection = &c;
    s.start_ns = 1'000'000'000ull + static_cast<uint64_t>(i) * 1000;
    s.end_ns = s.start_ns + 500;
    s.text = "SELECT " + std::to_string(i);
    s.operation = "SELECT";
    w.value()->on_statement(s);
  }
  const auto status = w.value()->flush();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
