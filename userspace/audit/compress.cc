// SPDX-License-Identifier: Apache-2.0
#include "audit/compress.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

namespace dbwarden::audit {
namespace {

// 2^24 = 16 MiB: well above what the writer's compression level uses.
constexpr int kMaxWindowLog = 24;

Status errno_error(const char* what, const std::string& path, int err) {
  return Status::Error(std::string("audit compression: cannot ") + what + " " + path + ": " +
                       std::strerror(err));
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Status zstd_compress_file(const std::string& src, int level) {
  const std::string dst = src + std::string(kZstdSuffix);
  const std::string tmp = dst + ".tmp";
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno_error("open", src, errno);
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return errno_error("create", tmp, err);
  }
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);  // detect corruption on decode
  const size_t in_cap = ZSTD_CStreamInSize();
  const size_t out_cap = ZSTD_CStreamOutSize();
  std::unique_ptr<char[]> ibuf(new char[in_cap]);
  std::unique_ptr<char[]> obuf(new char[out_cap]);
  Status status;
  bool last = false;
  while (!last && status.ok()) {
    const ssize_t n = ::read(in, ibuf.get(), in_cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = errno_error("read", src, errno);
      break;
    }
    last = n == 0;
    ZSTD_inBuffer input{ibuf.get(), static_cast<size_t>(n), 0};
    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    bool done = false;
    while (!done) {
      ZSTD_outBuffer output{obuf.get(), out_cap, 0};
      const size_t remaining = ZSTD_compressStream2(cctx, &output, &input, mode);
      if (ZSTD_isError(remaining)) {
        status = Status::Error("audit compression: " + std::string(ZSTD_getErrorName(remaining)));
        break;
      }
      if (!write_all(out, obuf.get(), output.pos)) {
        status = errno_error("write", tmp, errno);
        break;
      }
      done = last ? remaining == 0 : input.pos == input.size;
    }
  }
  ZSTD_freeCCtx(cctx);
  ::close(in);
  if (status.ok() && ::fsync(out) != 0) status = errno_error("fsync", tmp, errno);
  ::close(out);
  if (status.ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) {
    status = errno_error("rename to", dst, errno);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  if (::unlink(src.c_str()) != 0) return errno_error("remove", src, errno);
  return Status::Ok();
}

ZstdDecoder::ZstdDecoder()
    : ctx_(ZSTD_createDCtx()),
      out_(new char[ZSTD_DStreamOutSize()]),
      out_size_(ZSTD_DStreamOutSize()) {
  ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, kMaxWindowLog);
}

ZstdDecoder::~ZstdDecoder() { ZSTD_freeDCtx(ctx_); }

Status ZstdDecoder::feed(std::string_view input,
                         const std::function<void(std::string_view)>& sink) {
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  while (true) {
    ZSTD_outBuffer out{out_.get(), out_size_, 0};
    const size_t r = ZSTD_decompressStream(ctx_, &out, &in);
    if (ZSTD_isError(r)) {
      return Status::Error(std::string("corrupt zstd data: ") + ZSTD_getErrorName(r));
    }
    if (out.pos > 0) sink(std::string_view(out_.get(), out.pos));
    at_frame_end_ = r == 0;
    // Done once all input is consumed and the output buffer was not filled
    // (a full buffer may mean more output is pending).
    if (in.pos == in.size && out.pos < out.size) break;
  }
  return Status::Ok();
}

}  // namespace dbwarden::audit
