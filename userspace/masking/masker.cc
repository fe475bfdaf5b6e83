// SPDX-License-Identifier: Apache-2.0
//
// Masker: construction (engine + exact patterns + key), whole-value masking
// (column rules) and in-place item masking (content rules).
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/read_file.h"
#include "masking/detectors.h"
#include "masking/masker_impl.h"
#include "masking/text_styles.h"
#include "masking/value_types.h"

namespace dbwarden::masking {
namespace {

constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 4096;
constexpr int64_t kMaxExactMemory = 8 << 20;

std::unique_ptr<re2::RE2> exact_pattern(std::string_view pattern) {
  re2::RE2::Options options;
  options.set_encoding(re2::RE2::Options::EncodingLatin1);
  options.set_dot_nl(true);
  options.set_log_errors(false);
  options.set_max_mem(kMaxExactMemory);
  return std::make_unique<re2::RE2>(pattern, options);
}

bool json_type(ValueType t) { return t == ValueType::kJson || t == ValueType::kJsonb; }

}  // namespace

std::string_view style_name(Style style) {
  switch (style) {
    case Style::kFull:
      return "full";
    case Style::kPartial:
      return "partial";
    case Style::kFormat:
      return "format";
    case Style::kHash:
      return "hash";
    case Style::kNull:
      return "null";
  }
  return "full";
}

bool parse_style(std::string_view name, Style& out) {
  for (Style s : {Style::kFull, Style::kPartial, Style::kFormat, Style::kHash, Style::kNull}) {
    if (style_name(s) == name) {
      out = s;
      return true;
    }
  }
  return false;
}

Masker::Masker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Masker::~Masker() = default;

Result<std::unique_ptr<const Masker>> Masker::create(MaskerOptions options) {
  if (options.custom.size() > kMaxCustomDetectors) {
    return Status::Error("at most " + std::to_string(kMaxCustomDetectors) +
                         " user-defined detectors");
  }
  auto impl = std::make_unique<Impl>();
  std::vector<EnginePattern> patterns;
  for (uint8_t id = 0; id < kBuiltinDetectors; ++id) {
    patterns.push_back({std::string(builtin_pattern(id)), false});
    impl->names.emplace_back(builtin_detector_name(id));
  }
  for (const CustomDetector& c : options.custom) {
    if (builtin_detector_id(c.name) >= 0) {
      return Status::Error("detector name `" + c.name + "` is a built-in detector's");
    }
    patterns.push_back({c.regex, true});
    impl->names.push_back(c.name);
  }
  for (size_t i = 0; i < patterns.size(); ++i) {
    auto re = exact_pattern(patterns[i].regex);
    if (!re->ok()) {
      return Status::Error("detector `" + impl->names[i] + "`: invalid pattern: " + re->error());
    }
    if (re2::RE2::PartialMatch("", *re)) {
      return Status::Error("detector `" + impl->names[i] +
                           "`: the pattern matches the empty string (it would match everywhere)");
    }
    impl->exact.push_back(std::move(re));
  }
  const std::vector<EnginePattern> builtin(patterns.begin(), patterns.begin() + kBuiltinDetectors);
  const std::vector<EnginePattern> custom(patterns.begin() + kBuiltinDetectors, patterns.end());
  auto engine = PatternEngine::compile(builtin, options.use_re2_set);
  if (!engine.ok()) return engine.status();
  impl->builtin = std::move(engine.value());
  if (!custom.empty()) {
    auto c = PatternEngine::compile(custom, options.use_re2_set);
    if (!c.ok()) return c.status();
    impl->custom = std::move(c.value());
  }
#ifdef DBWARDEN_HAVE_HYPERSCAN
  impl->engine_name = options.use_re2_set ? "re2-set" : "hyperscan";
#else
  impl->engine_name = "re2-set";
#endif
  impl->all =
      patterns.size() == kMaxDetectors ? ~DetectorSet{0} : (DetectorSet{1} << patterns.size()) - 1;
  impl->key = std::move(options.hash_key);
  if (impl->key.empty()) {
    impl->key.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(impl->key.data()), 32) != 1) {
      return Status::Error("no random bytes for the masking key");
    }
  }
  return std::unique_ptr<const Masker>(new Masker(std::move(impl)));
}

std::string_view Masker::detector_name(uint8_t id) const {
  return id < impl_->names.size() ? std::string_view(impl_->names[id]) : std::string_view();
}

size_t Masker::detector_count() const { return impl_->names.size(); }

std::string_view Masker::engine_name() const { return impl_->engine_name; }

Outcome Masker::mask_value(const Column& column, Style style, std::string_view in,
                           std::string& out) const {
  out.clear();
  if (style == Style::kNull && column.nullable) return Outcome::kNull;
  if (is_text_type(column.type) && style != Style::kNull) {
    append_styled(style, in, impl_->key, out);
    return Outcome::kReplaced;
  }
  // Not text (or NULL not allowed): the type's fixed substitute; a type with
  // none goes NULL, which every client reads.
  return substitute(column.type, column.encoding, out) ? Outcome::kReplaced : Outcome::kNull;
}

Outcome Masker::mask_content(const Column& column, Style style, DetectorSet detectors,
                             std::string_view in, std::string& out,
                             std::vector<Span>* found) const {
  if (!is_text_type(column.type) && !json_type(column.type)) return Outcome::kUnchanged;
  // PostgreSQL's binary jsonb is a version byte and the text.
  const size_t skip =
      column.type == ValueType::kJsonb && column.encoding == Encoding::kPgBinary ? 1 : 0;
  if (in.size() <= skip) return Outcome::kUnchanged;
  const std::string_view text = in.substr(skip);
  thread_local std::vector<Span> spans;
  spans.clear();
  if (scan_text(text, detectors, spans) == 0) return Outcome::kUnchanged;
  out.clear();
  out.append(in.substr(0, skip));
  if (json_type(column.type)) {
    bool in_string = false, escaped = false;
    int hex_left = 0;
    size_t at = 0;
    for (const Span& s : spans) {
      append_json_masked(text, at, s.begin, false, style, impl_->key, in_string, escaped, hex_left,
                         out);
      append_json_masked(text, s.begin, s.end, true, style, impl_->key, in_string, escaped,
                         hex_left, out);
      at = s.end;
    }
    append_json_masked(text, at, text.size(), false, style, impl_->key, in_string, escaped,
                       hex_left, out);
  } else {
    size_t at = 0;
    for (const Span& s : spans) {
      out.append(text.substr(at, s.begin - at));
      append_styled(style, text.substr(s.begin, s.end - s.begin), impl_->key, out);
      at = s.end;
    }
    out.append(text.substr(at));
  }
  if (found != nullptr) found->insert(found->end(), spans.begin(), spans.end());
  return Outcome::kReplaced;
}

Result<std::string> load_hash_key(const std::string& path) {
  // O_NONBLOCK: a FIFO named as the key must not hang the policy load.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) return Status::Error(path + ": not a regular file");
  std::string key = read_whole_file(path, kMaxKeyBytes + 1);
  if (key.size() < kMinKeyBytes || key.size() > kMaxKeyBytes) {
    return Status::Error(path + ": a hash key must be " + std::to_string(kMinKeyBytes) + "-" +
                         std::to_string(kMaxKeyBytes) +
                         " bytes (e.g. `head -c 32 /dev/urandom`), " + "this file has " +
                         std::to_string(key.size()));
  }
  return key;
}

}  // namespace dbwarden::masking
