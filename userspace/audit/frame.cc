// SPDX-License-Identifier: Apache-2.0
#include "audit/frame.h"

#include <endian.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace dbwarden::audit {
namespace {

constexpr uint32_t kZstdMagic = 0xFD2FB528;
// Skippable frames: magic 0x184D2A50..0x184D2A5F (RFC 8878 section 3.1.2).
constexpr uint32_t kSkippableMask = 0xFFFFFFF0;
constexpr uint32_t kSkippableBase = 0x184D2A50;
constexpr uint8_t kSealVersion = 1;
constexpr size_t kSealPayload = kSealBytes - 8;
// Seal bytes 8..32: what the link covers besides the compressed frame.
constexpr size_t kSealCoveredFrom = 8, kSealCoveredTo = 32;
// Frames decode with at most this window (the writer's frames need 256 KiB).
constexpr int kMaxWindowLog = 24;

uint32_t get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return le32toh(v);
}
uint64_t get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return le64toh(v);
}
void put32(uint32_t v, char* p) {
  v = htole32(v);
  std::memcpy(p, &v, 4);
}
void put64(uint64_t v, char* p) {
  v = htole64(v);
  std::memcpy(p, &v, 8);
}

void encode_seal(const Seal& s, char* out) {
  std::memset(out, 0, kSealBytes);
  put32(kSealMagic, out);
  put32(kSealPayload, out + 4);
  std::memcpy(out + 8, kSealTag.data(), kSealTag.size());
  out[12] = static_cast<char>(kSealVersion);
  put64(s.first_seq, out + 16);
  put32(s.records, out + 24);
  put32(s.data_bytes, out + 28);
  std::memcpy(out + 32, s.link.data(), s.link.size());
}

}  // namespace

std::optional<Seal> parse_seal(std::string_view b) {
  if (b.size() < kSealBytes || get32(b.data()) != kSealMagic ||
      get32(b.data() + 4) != kSealPayload || b.substr(8, 4) != kSealTag ||
      static_cast<uint8_t>(b[12]) != kSealVersion || b[13] != 0 || b[14] != 0 || b[15] != 0) {
    return std::nullopt;
  }
  Seal s;
  s.first_seq = get64(b.data() + 16);
  s.records = get32(b.data() + 24);
  s.data_bytes = get32(b.data() + 28);
  std::memcpy(s.link.data(), b.data() + 32, s.link.size());
  if (s.records == 0) return std::nullopt;
  return s;
}

Digest seal_link(ChainHasher& hasher, const Digest& prev, const Seal& seal, std::string_view data) {
  char bytes[kSealBytes];
  encode_seal(seal, bytes);
  return hasher.hash(
      prev, std::string_view(bytes + kSealCoveredFrom, kSealCoveredTo - kSealCoveredFrom), data);
}

void append_seq_field(uint64_t seq, std::string& out) {
  char buf[kSeqKey.size() + 24];
  std::memcpy(buf, kSeqKey.data(), kSeqKey.size());
  auto r = std::to_chars(buf + kSeqKey.size(), buf + sizeof(buf) - 2, seq);
  std::memcpy(r.ptr, "}\n", 2);
  out.append(buf, static_cast<size_t>(r.ptr + 2 - buf));
}

void SeqFieldWriter::format(uint64_t seq) {
  std::memcpy(buf_, kSeqKey.data(), kSeqKey.size());
  auto r = std::to_chars(buf_ + kSeqKey.size(), buf_ + sizeof(buf_) - 2, seq);
  std::memcpy(r.ptr, "}\n", 2);
  bytes_ = static_cast<size_t>(r.ptr + 2 - buf_);
}

void SeqFieldWriter::append(uint64_t seq, std::string& out) {
  if (bytes_ == 0 || seq != last_ + 1 || seq == 0) {
    format(seq);
  } else {
    // Count up the digits in place; a carry out of the first digit makes the number
    // one digit longer (9 -> 10), formatted anew.
    char* d = buf_ + bytes_ - 3;  // the last digit
    char* const first = buf_ + kSeqKey.size();
    while (d >= first && *d == '9') *d-- = '0';
    if (d >= first) {
      ++*d;
    } else {
      format(seq);
    }
  }
  last_ = seq;
  out.append(buf_, bytes_);
}

std::optional<RecordSeq> parse_record_seq(std::string_view line) {
  // `...,"dbwarden.seq":N}`: the digits back from the brace, then the key.
  if (line.size() < kSeqKey.size() + 3 || line.back() != '}') return std::nullopt;
  size_t end = line.size() - 1;
  size_t start = end;
  while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9') --start;
  if (start == end || end - start > 20 || start < kSeqKey.size() + 1) return std::nullopt;
  if (line.substr(start - kSeqKey.size(), kSeqKey.size()) != kSeqKey) return std::nullopt;
  if (line[start] == '0' && end - start > 1) return std::nullopt;  // no leading zeros
  RecordSeq r;
  const auto c = std::from_chars(line.data() + start, line.data() + end, r.seq);
  if (c.ec != std::errc() || c.ptr != line.data() + end) return std::nullopt;
  r.prefix = line.substr(0, start - kSeqKey.size());
  if (r.prefix.empty() || r.prefix.front() != '{') return std::nullopt;
  return r;
}

std::optional<uint64_t> record_seq(std::string_view line) {
  if (const auto rc = parse_record_chain(line)) return rc->seq;
  if (const auto rs = parse_record_seq(line)) return rs->seq;
  return std::nullopt;
}

Result<std::unique_ptr<FrameSealer>> FrameSealer::Create(int level) {
  std::unique_ptr<FrameSealer> s(new FrameSealer());
  s->cctx_ = ZSTD_createCCtx();
  if (s->cctx_ == nullptr) return Status::Error("audit frames: cannot create a zstd context");
  if (ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx_, ZSTD_c_compressionLevel, level))) {
    return Status::Error("audit frames: zstd level " + std::to_string(level) + " not supported");
  }
  // The checksum lets zstdcat tell a damaged frame from a good one without
  // the chain; content size lets a reader decode a frame in one call.
  ZSTD_CCtx_setParameter(s->cctx_, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(s->cctx_, ZSTD_c_contentSizeFlag, 1);
  return s;
}

FrameSealer::~FrameSealer() { ZSTD_freeCCtx(cctx_); }

Status FrameSealer::seal(ChainHasher& hasher, std::string_view records, uint64_t first_seq,
                         uint32_t count, Digest& link, std::string& out) {
  // Into a scratch buffer that keeps its size, then appended: growing `out`
  // by zstd's bound zero-filled ~256 KiB per frame (std::string::resize) for
  // the ~1/40 of it the frame fills, 13 % of the writer thread's instructions
  // (bench/README.md, "Audit writer: the frame's zero-fill").
  const size_t bound = ZSTD_compressBound(records.size());
  if (scratch_bytes_ < bound) {
    scratch_ = std::make_unique_for_overwrite<char[]>(bound);
    scratch_bytes_ = bound;
  }
  const size_t n = ZSTD_compress2(cctx_, scratch_.get(), bound, records.data(), records.size());
  if (ZSTD_isError(n)) {
    return Status::Error(std::string("audit frames: zstd: ") + ZSTD_getErrorName(n));
  }
  const std::string_view data(scratch_.get(), n);
  Seal s;
  s.first_seq = first_seq;
  s.records = count;
  s.data_bytes = static_cast<uint32_t>(n);
  s.link = seal_link(hasher, link, s, data);
  char seal[kSealBytes];
  encode_seal(s, seal);
  out.append(data);
  out.append(seal, kSealBytes);
  link = s.link;
  // A frame of a few huge records does not keep its buffer.
  if (scratch_bytes_ > 2 * kFrameMaxBytes) {
    scratch_.reset();
    scratch_bytes_ = 0;
  }
  return Status::Ok();
}

bool is_zstd_frame(std::string_view data) {
  return data.size() >= 4 && get32(data.data()) == kZstdMagic;
}

SplitResult split_unit(std::string_view in, bool at_end, FrameUnit& unit, std::string* why) {
  if (in.size() < 8) {
    if (at_end && why != nullptr) *why = "the last frame is incomplete";
    return at_end ? SplitResult::kDamaged : SplitResult::kNeedMore;
  }
  size_t size = 0;
  const uint32_t magic = get32(in.data());
  if ((magic & kSkippableMask) == kSkippableBase) {
    size = 8 + static_cast<size_t>(get32(in.data() + 4));
  } else if (magic == kZstdMagic) {
    size = ZSTD_findFrameCompressedSize(in.data(), in.size());
    if (ZSTD_isError(size)) {
      // srcSize_wrong: the frame goes on past the input (more may come).
      const bool incomplete = ZSTD_getErrorCode(size) == ZSTD_error_srcSize_wrong;
      if (!at_end && incomplete) return SplitResult::kNeedMore;
      if (why != nullptr) {
        *why = incomplete ? "truncated: the last frame is incomplete"
                          : "damaged: not a valid zstd frame";
      }
      return SplitResult::kDamaged;
    }
  } else {
    if (why != nullptr) *why = "damaged: not a zstd frame";
    return SplitResult::kDamaged;
  }
  if (size > in.size()) {
    if (at_end && why != nullptr) *why = "truncated: the last frame is incomplete";
    return at_end ? SplitResult::kDamaged : SplitResult::kNeedMore;
  }
  unit = FrameUnit{};
  unit.data = in.substr(0, size);
  unit.bytes = size;
  const std::string_view rest = in.substr(size);
  if (magic == kZstdMagic && rest.size() < kSealBytes) {
    // The seal may still be on its way (or was cut), unless what follows is
    // already something else.
    const bool seal_start = rest.size() >= 4 ? get32(rest.data()) == kSealMagic : !rest.empty();
    if (!at_end && (rest.size() < 4 || seal_start)) return SplitResult::kNeedMore;
    if (at_end && seal_start) {
      if (why != nullptr) *why = std::string(kSealTruncated);
      return SplitResult::kDamaged;
    }
  }
  if (magic == kZstdMagic) {
    if (auto s = parse_seal(rest)) {
      unit.seal = s;
      unit.bytes += kSealBytes;
    }
  }
  return SplitResult::kUnit;
}

Result<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open " + path + ": " + std::strerror(errno));
  std::unique_ptr<MappedFile> m(new MappedFile());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Error("cannot stat " + path + ": " + std::strerror(err));
  }
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return Status::Error("cannot map " + path + ": " + std::strerror(err));
    }
    ::madvise(p, m->size_, MADV_SEQUENTIAL);
    m->data_ = p;
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

bool starts_with_sealed_frame(std::string_view file) {
  FrameUnit unit;
  std::string why;
  const SplitResult r = split_unit(file, /*at_end=*/true, unit, &why);
  return (r == SplitResult::kUnit && is_zstd_frame(unit.data) && unit.seal.has_value()) ||
         (r == SplitResult::kDamaged && why == kSealTruncated);
}

FrameDecoder::FrameDecoder() : dctx_(ZSTD_createDCtx()) {
  ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kMaxWindowLog);
}

FrameDecoder::~FrameDecoder() { ZSTD_freeDCtx(dctx_); }

Status FrameDecoder::decode(std::string_view frame, std::string& out) {
  out.clear();
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return Status::Error("damaged: not a valid zstd frame");
  if (size != ZSTD_CONTENTSIZE_UNKNOWN) {
    if (size > kMaxFrameContentBytes) {
      return Status::Error("damaged: a frame claims " + std::to_string(size) + " bytes");
    }
    out.resize(static_cast<size_t>(size));
    const size_t n = ZSTD_decompressDCtx(dctx_, out.data(), out.size(), frame.data(), frame.size());
    if (ZSTD_isError(n) || n != size) {
      out.clear();
      return Status::Error(std::string("damaged: corrupt zstd data: ") +
                           (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame"));
    }
    return Status::Ok();
  }
  // No content size (a whole-file compressed JSON Lines frame written by
  // another tool): stream it, bounded.
  ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  while (true) {
    const size_t have = out.size();
    if (have >= kMaxFrameContentBytes) return Status::Error("damaged: a frame is too large");
    out.resize(have + ZSTD_DStreamOutSize());
    ZSTD_outBuffer o{out.data() + have, out.size() - have, 0};
    const size_t r = ZSTD_decompressStream(dctx_, &o, &in);
    out.resize(have + o.pos);
    if (ZSTD_isError(r)) {
      return Status::Error(std::string("damaged: corrupt zstd data: ") + ZSTD_getErrorName(r));
    }
    if (r == 0) return Status::Ok();
    if (in.pos == in.size && o.pos < o.size) return Status::Error("truncated zstd frame");
  }
}

}  // namespace dbwarden::audit
