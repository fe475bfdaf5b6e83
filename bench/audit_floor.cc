// SPDX-License-Identifier: Apache-2.0
//
// What the audit trail issue 5 requires costs per statement record, measured
// with the agent's own code on this machine: the SHA-256 chain
// (append_chained_record, the writer's own call), the write(2) of the line into the
// page cache, and zstd of the rotated file (zstd_compress_file). Issues 2 and
// 3 budget 1.5 us of CPU per audited statement for everything, capture and
// decoding included; this prints how much of it these three steps alone
// take, as a ratio to that budget.
//
// Records come from an audit file (plain JSONL, e.g. one written during
// `pgbench -S`); their seq and chain fields are recomputed, so the file's own
// chain need not verify, only every line end in a seq and a chain field. With --minimal, each
// record is cut down to the keys issue 2 requires (the smallest record the issues allow), to show
// the floor does not come from optional fields.
//
// With --frames L1,L2,... it also measures the framed trail (issue 16,
// --audit-format zst) on the same records in the same run, with the writer's
// own calls (SeqFieldWriter, FrameSealer::seal): records (seq only, no
// per-record chain) grouped into 256 KiB frames, each zstd-compressed at level
// L (negative levels included) and sealed with one SHA-256 over the
// compressed bytes and the previous link, written compressed. Printed per
// level with its ratio to the per-record floor (--audit-format jsonl) above.
//
// Usage: audit_floor --records FILE [--minimal] [--level N] [--rounds N] [--frames L,...]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/compress.h"
#include "audit/frame.h"
#include "audit/trail_reader.h"
#include "audit/verify.h"
#include "thread_cpu.h"

namespace {

using dbwarden::bench::thread_cpu_ns;
using dbwarden::bench::median;

using dbwarden::audit::ChainHasher;
using dbwarden::audit::Digest;

// The keys issue 2 requires of every statement record.
const char* const kRequiredKeys[] = {"time",
                                     "duration_us",
                                     "connection_id",
                                     "db.system.name",
                                     "db.namespace",
                                     "db.user",
                                     "db.query.text",
                                     "db.operation.name",
                                     "db.response.status_code",
                                     "db.response.returned_rows",
                                     "client.address",
                                     "client.port",
                                     "server.port",
                                     "process.pid"};

// A statement record's body as the writer receives it: the line without its
// seq and chain fields and without the closing brace. "" for anything else
// (checkpoints, lines that are not chained records).
std::string record_body(const std::string& line, bool minimal) {
  const auto chained = dbwarden::audit::parse_record_chain(line);
  if (!chained) return {};
  std::string_view body = chained->prefix;
  body = body.substr(0, body.rfind(dbwarden::audit::kSeqKey));
  if (body.find("\"db.query.text\":") == std::string_view::npos) return {};
  if (!minimal) return std::string(body);
  const auto j = nlohmann::json::parse(std::string(body) + "}", nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  nlohmann::json m = nlohmann::json::object();
  for (const char* k : kRequiredKeys) {
    if (j.contains(k)) m[k] = j[k];
  }
  // nlohmann sorts keys; the byte count and content are what matter here.
  std::string out = m.dump();
  out.pop_back();  // the closing brace
  return out;
}

// Chains every record with the writer's own call (append_chained_record: the
// SHA-256 chain and the line put together in the output buffer), timed over
// the whole loop: a clock read per record would cost more than a hash.
std::string chain_all(const std::vector<std::string>& bodies, ChainHasher& hasher,
                      double& chain_ns) {
  // The writer appends into a buffer it reuses: size this one up front and
  // touch its pages, so that growing it is not counted as chaining.
  size_t bytes = 0;
  for (const std::string& b : bodies) {
    bytes +=
        b.size() + dbwarden::audit::kSeqKey.size() + 20 + dbwarden::audit::kChainFieldBytes + 1;
  }
  std::string out(bytes, '\0');
  out.clear();
  Digest prev{};
  const double t0 = thread_cpu_ns();
  for (size_t seq = 0; seq < bodies.size(); ++seq) {
    prev = dbwarden::audit::append_chained_record(hasher, prev, seq, bodies[seq], out);
  }
  chain_ns = thread_cpu_ns() - t0;
  return out;
}

// CPU time of writing `text` to `path` in 256 KiB pieces, as the writer does.
double write_file(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  constexpr size_t kPiece = 256 * 1024;
  const double t0 = thread_cpu_ns();
  for (size_t off = 0; off < text.size(); off += kPiece) {
    const size_t n = std::min(kPiece, text.size() - off);
    if (write(fd, text.data() + off, n) != static_cast<ssize_t>(n)) {
      std::perror("write");
      std::exit(1);
    }
  }
  const double spent = thread_cpu_ns() - t0;
  close(fd);
  return spent;
}

// Issue 16's frame: what the writer would have at a flush, at most 256 KiB.
constexpr size_t kFrameBytes = dbwarden::audit::kFrameMaxBytes;

struct FrameCost {
  double format_ns = 0, seal_ns = 0, write_ns = 0;
  size_t plain_bytes = 0, sealed_bytes = 0, frames = 0;
};

// Frames the records at `level` with the writer's own calls (the framed
// trail, --audit-format zst): each record gets its seq field
// (SeqFieldWriter), and FrameSealer::seal compresses a frame as one zstd
// frame and appends its seal, a skippable frame holding the link
// SHA-256(prev link || seal fields || compressed frame). Timed per step over
// the whole run; the seal step is zstd and SHA-256 together.
FrameCost seal_frames(const std::vector<std::string>& bodies, int level, ChainHasher& hasher,
                      const std::string& path) {
  FrameCost c;
  auto sealer = dbwarden::audit::FrameSealer::Create(level);
  if (!sealer.ok()) {
    std::fprintf(stderr, "audit_floor: %s\n", sealer.status().message().c_str());
    std::exit(1);
  }
  std::string frame, out;
  frame.reserve(kFrameBytes + 64 * 1024);
  out.reserve(bodies.size() * 64 + 1024);
  Digest link{};
  uint64_t first = 0;
  uint32_t count = 0;
  auto seal = [&] {
    const double t = thread_cpu_ns();
    const auto st = sealer.value()->seal(hasher, frame, first, count, link, out);
    c.seal_ns += thread_cpu_ns() - t;
    if (!st.ok()) {
      std::fprintf(stderr, "audit_floor: %s\n", st.message().c_str());
      std::exit(1);
    }
    c.plain_bytes += frame.size();
    ++c.frames;
    frame.clear();
    first += count;
    count = 0;
  };
  dbwarden::audit::SeqFieldWriter seq_field;  // the writer's own
  double t = thread_cpu_ns();
  for (size_t seq = 0; seq < bodies.size(); ++seq) {
    frame.append(bodies[seq]);
    seq_field.append(seq, frame);
    ++count;
    if (frame.size() >= kFrameBytes) {
      c.format_ns += thread_cpu_ns() - t;
      seal();
      t = thread_cpu_ns();
    }
  }
  c.format_ns += thread_cpu_ns() - t;
  if (!frame.empty()) seal();
  c.sealed_bytes = out.size();
  c.write_ns = write_file(path, out);
  return c;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: audit_floor --records FILE [--minimal] [--level N] [--rounds N]"
               " [--frames L,...]\n"
               "  FILE: plain JSONL audit records (e.g. written during pgbench -S)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string records;
  bool minimal = false;
  int level = 1;  // the agent's default --audit-compress-level
  int rounds = 5;
  std::vector<int> frame_levels;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--records" && i + 1 < argc) {
      records = argv[++i];
    } else if (a == "--minimal") {
      minimal = true;
    } else if (a == "--level" && i + 1 < argc) {
      level = std::atoi(argv[++i]);
    } else if (a == "--frames" && i + 1 < argc) {
      for (const char* p = argv[++i]; *p != '\0';) {
        char* end = nullptr;
        frame_levels.push_back(static_cast<int>(std::strtol(p, &end, 10)));
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p != '\0') usage();
      }
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      usage();
    }
  }
  if (records.empty()) usage();

  std::ifstream in(records);
  if (!in) {
    std::fprintf(stderr, "audit_floor: cannot read %s\n", records.c_str());
    return 1;
  }
  std::vector<std::string> bodies;
  std::string line;
  constexpr size_t kMaxRecords = 200000;
  while (bodies.size() < kMaxRecords && std::getline(in, line)) {
    std::string body = record_body(line, minimal);
    if (!body.empty()) bodies.push_back(std::move(body));
  }
  if (bodies.empty()) {
    std::fprintf(stderr, "audit_floor: no statement records in %s\n", records.c_str());
    return 1;
  }
  auto hasher = ChainHasher::Create("");
  if (!hasher.ok()) {
    std::fprintf(stderr, "audit_floor: %s\n", hasher.status().message().c_str());
    return 1;
  }

  char dir_tmpl[] = "/tmp/dbw-audit-floor-XXXXXX";
  if (mkdtemp(dir_tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string path = std::string(dir_tmpl) + "/audit.jsonl";
  std::vector<double> hash_ns, write_ns, zstd_ns;
  size_t line_bytes = 0, zst_bytes = 0;
  for (int r = 0; r < rounds; ++r) {
    double h = 0;
    const std::string text = chain_all(bodies, **hasher, h);
    line_bytes = text.size();
    hash_ns.push_back(h);
    write_ns.push_back(write_file(path, text));
    const double t0 = thread_cpu_ns();
    const auto st = dbwarden::audit::zstd_compress_file(path, level);
    zstd_ns.push_back(thread_cpu_ns() - t0);
    if (!st.ok()) {
      std::fprintf(stderr, "audit_floor: zstd: %s\n", st.message().c_str());
      return 1;
    }
    struct stat sb {};
    if (stat((path + ".zst").c_str(), &sb) == 0) zst_bytes = static_cast<size_t>(sb.st_size);
    unlink((path + ".zst").c_str());
  }
  // Issue 16's frames, same records, same run.
  struct FrameRow {
    int level;
    std::vector<double> format, seal, write, verify, cat;  // verify, cat: JSON bytes per ns
    double ratio = 0;
  };
  std::vector<FrameRow> frame_rows;
  for (int frame_level : frame_levels) {
    FrameRow row{frame_level, {}, {}, {}, {}, {}};
    for (int r = 0; r < rounds; ++r) {
      const FrameCost fc = seal_frames(bodies, frame_level, **hasher, path);
      row.format.push_back(fc.format_ns);
      row.seal.push_back(fc.seal_ns);
      row.write.push_back(fc.write_ns);
      // Reading it back: verify-audit's and audit cat's own calls, one core.
      const double plain = static_cast<double>(fc.plain_bytes);
      double t = thread_cpu_ns();
      const auto v = dbwarden::audit::verify_audit_files({path}, {});
      row.verify.push_back(plain / (thread_cpu_ns() - t));
      if (!v.ok() || !v.value().valid() || v.value().records != bodies.size()) {
        std::fprintf(stderr, "audit_floor: the framed file does not verify\n");
        return 1;
      }
      size_t printed = 0;
      t = thread_cpu_ns();
      const auto st = dbwarden::audit::cat_audit_file(
          path, [&](std::string_view lines) { printed += lines.size(); });
      row.cat.push_back(plain / (thread_cpu_ns() - t));
      if (!st.ok() || printed != fc.plain_bytes) {
        std::fprintf(stderr, "audit_floor: audit cat does not read the framed file back\n");
        return 1;
      }
      row.ratio = static_cast<double>(fc.plain_bytes) / static_cast<double>(fc.sealed_bytes);
    }
    frame_rows.push_back(std::move(row));
  }
  unlink(path.c_str());
  rmdir(dir_tmpl);

  const double n = static_cast<double>(bodies.size());
  const double hash = median(hash_ns) / n, wr = median(write_ns) / n, zs = median(zstd_ns) / n;
  const double sum = hash + wr + zs;
  constexpr double kBudgetNs = 1500;
  std::printf("%zu %s records, %.0f bytes each (chained), zstd level %d: x%.1f, %d rounds\n",
              bodies.size(), minimal ? "minimal (issue 2 keys only)" : "full",
              static_cast<double>(line_bytes) / n, level,
              static_cast<double>(line_bytes) / static_cast<double>(std::max<size_t>(zst_bytes, 1)),
              rounds);
  std::printf("  SHA-256 chain      %7.0f ns/record\n", hash);
  std::printf("  write(2)           %7.0f ns/record\n", wr);
  std::printf("  zstd (rotation)    %7.0f ns/record\n", zs);
  std::printf("  sum                %7.0f ns/record = %.2f of the 1.5 us budget\n", sum,
              sum / kBudgetNs);
  for (const FrameRow& f : frame_rows) {
    const double fmt = median(f.format) / n, sl = median(f.seal) / n, w = median(f.write) / n,
                 total = fmt + sl + w;
    std::printf(
        "  frames, zstd level %3d (x%.1f on disk): seq %4.0f + seal (zstd + SHA-256) %5.0f"
        " + write %4.0f = %5.0f ns/record, %.2f of the per-record floor\n",
        f.level, f.ratio, fmt, sl, w, total, total / sum);
    std::printf("    read back: verify-audit %5.0f MB/s, audit cat %5.0f MB/s of JSON, one core\n",
                median(f.verify) * 1000, median(f.cat) * 1000);
  }
  std::printf(
      "RESULT {\"records\": %zu, \"minimal\": %s, \"bytes_per_record\": %.1f, \"hash_ns\": %.1f, "
      "\"write_ns\": %.1f, \"zstd_ns\": %.1f, \"sum_ns\": %.1f, \"budget_ratio\": %.3f}\n",
      bodies.size(), minimal ? "true" : "false", static_cast<double>(line_bytes) / n, hash, wr, zs,
      sum, sum / kBudgetNs);
  return 0;
}
