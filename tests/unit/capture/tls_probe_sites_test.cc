// SPDX-License-Identifier: Apache-2.0
#include "capture/tls_probe_sites.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "capture/tls_elf.h"

namespace dbwarden::capture {
namespace {

ProbeSites sites_of(const std::vector<uint8_t>& code) {
  Result<ProbeSites> r = choose_probe_sites(code);
  REQUIRE(r.ok());
  return r.value();
}

// The shape of Debian 12's SSL_read, assembled by hand:
//   00 sub $0x18,%rsp      48 83 ec 18
//   04 test %edx,%edx      85 d2
//   06 js fail             78 0e
//   08 call +0             e8 00 00 00 00
//   0d test %eax,%eax      85 c0
//   0f jne fail            75 05
//   11 add $0x18,%rsp      48 83 c4 18
//   15 ret                 c3
//   16 fail: call +0       e8 00 00 00 00   (last instruction: a noreturn call)
const std::vector<uint8_t> kReadLike = {0x48, 0x83, 0xec, 0x18, 0x85, 0xd2, 0x78, 0x0e, 0xe8,
                                        0x00, 0x00, 0x00, 0x00, 0x85, 0xc0, 0x75, 0x05, 0x48,
                                        0x83, 0xc4, 0x18, 0xc3, 0xe8, 0x00, 0x00, 0x00, 0x00};

TEST_CASE("entry on the first emulated instruction, return on the jcc before ret",
          "[capture][tls]") {
  ProbeSites s = sites_of(kReadLike);
  CHECK(s.entry == 0x06);
  CHECK(s.entry_emulated);
  CHECK(emulated_kind_at(kReadLike, s.entry) == EmulatedKind::kJcc);
  REQUIRE(s.returns == std::vector<uint64_t>{0x0f});
  CHECK(emulated_kind_at(kReadLike, 0x0f) == EmulatedKind::kJcc);
  CHECK(s.fallback_reason.empty());
}

TEST_CASE("a jcc whose taken side can return is no return site", "[capture][tls]") {
  // As kReadLike, but the fail block returns: xor %eax,%eax; add; ret.
  std::vector<uint8_t> code(kReadLike.begin(), kReadLike.begin() + 0x16);
  for (uint8_t b : {0x31, 0xc0, 0x48, 0x83, 0xc4, 0x18, 0xc3}) code.push_back(b);
  ProbeSites s = sites_of(code);
  CHECK(s.returns.empty());
  CHECK(s.entry == 0);  // back on the uretprobe, which needs the first instruction
  CHECK(s.fallback_reason.find("no emulated instruction before the ret") == 0);
}

TEST_CASE("an argument register written before the first emulated instruction", "[capture][tls]") {
  // mov %rsi,%rdi; call +0; test %eax,%eax; jne +0 (to the ret); ret
  std::vector<uint8_t> code = {0x48, 0x89, 0xf7, 0xe8, 0x00, 0x00, 0x00,
                               0x00, 0x85, 0xc0, 0x75, 0x00, 0xc3};
  ProbeSites s = sites_of(code);
  CHECK(s.entry == 0);
  CHECK_FALSE(s.entry_emulated);
  CHECK(s.returns.empty());  // the jne's target is the ret itself: a join before it
}

TEST_CASE("a write to rax between the last emulated instruction and ret", "[capture][tls]") {
  // push %rbx; call +0; xor %eax,%eax; pop %rbx; ret
  std::vector<uint8_t> code = {0x53, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x31, 0xc0, 0x5b, 0xc3};
  ProbeSites s = sites_of(code);
  CHECK(s.returns.empty());
  CHECK(s.entry == 0);
  CHECK(s.entry_emulated);  // push r64 is emulated
  CHECK(emulated_kind_at(code, 0) == EmulatedKind::kPush);
  CHECK(emulated_kind_at(code, 8) == EmulatedKind::kNone);  // pop is single-stepped
  CHECK(emulated_kind_at(code, 9) == EmulatedKind::kNone);  // so is ret (measured)
}

TEST_CASE("a tail jump out of the function keeps the uretprobe", "[capture][tls]") {
  // sub $0x8,%rsp; add $0x8,%rsp; jmp rel32 far outside
  std::vector<uint8_t> code = {0x48, 0x83, 0xec, 0x08, 0x48, 0x83, 0xc4,
                               0x08, 0xe9, 0x00, 0x10, 0x00, 0x00};
  ProbeSites s = sites_of(code);
  CHECK(s.returns.empty());
  CHECK(s.entry == 0);
  CHECK(s.fallback_reason == "tail jump out of the function");
}

TEST_CASE("a branch back into the prologue moves the entry to the start", "[capture][tls]") {
  // 00 sub $0x8,%rsp; 04 nop; 05 jne 04; 07 add $0x8,%rsp; 0b ret
  std::vector<uint8_t> code = {0x48, 0x83, 0xec, 0x08, 0x90, 0x75,
                               0xfd, 0x48, 0x83, 0xc4, 0x08, 0xc3};
  ProbeSites s = sites_of(code);
  CHECK(s.entry == 0);  // the nop at 04 is a branch target: it could fire twice per call
}

TEST_CASE("bytes that do not decode fall back", "[capture][tls]") {
  std::vector<uint8_t> code = {0x48, 0x83};  // truncated instruction
  ProbeSites s = sites_of(code);
  CHECK(s.entry == 0);
  CHECK(s.returns.empty());
  CHECK(s.fallback_reason == "code does not decode");
  CHECK(emulated_kind_at(code, 0) == EmulatedKind::kNone);
  CHECK(emulated_kind_at(code, 7) == EmulatedKind::kNone);
}

TEST_CASE("emulated kinds: rel32 forms, REX.B push, prefixed forms refused", "[capture][tls]") {
  std::vector<uint8_t> jcc32 = {0x0f, 0x88, 0, 0, 0, 0};
  std::vector<uint8_t> jmp32 = {0xe9, 0, 0, 0, 0};
  std::vector<uint8_t> jmp8 = {0xeb, 0};
  std::vector<uint8_t> push_r12 = {0x41, 0x54};
  std::vector<uint8_t> nop5 = {0x0f, 0x1f, 0x44, 0x00, 0x00};
  std::vector<uint8_t> xchg_r8 = {0x41, 0x90};
  std::vector<uint8_t> push16 = {0x66, 0x53};
  std::vector<uint8_t> call_ind = {0xff, 0xd0};
  CHECK(emulated_kind_at(jcc32, 0) == EmulatedKind::kJcc);
  CHECK(emulated_kind_at(jmp32, 0) == EmulatedKind::kJmp);
  CHECK(emulated_kind_at(jmp8, 0) == EmulatedKind::kJmp);
  CHECK(emulated_kind_at(push_r12, 0) == EmulatedKind::kPush);
  CHECK(emulated_kind_at(nop5, 0) == EmulatedKind::kNone);  // measured single-stepped
  CHECK(emulated_kind_at(xchg_r8, 0) == EmulatedKind::kNone);
  CHECK(emulated_kind_at(push16, 0) == EmulatedKind::kNone);
  CHECK(emulated_kind_at(call_ind, 0) == EmulatedKind::kNone);
  CHECK(std::string(emulated_kind_name(EmulatedKind::kPush)) == "push");
}

// The machine's own libssl: every chosen site is inside the function and of
// an emulated kind; SSL_read and SSL_write (the per-statement calls of
// PostgreSQL and libpq) get sites with no single-step at all.
TEST_CASE("probe sites on the system libssl.so.3", "[capture][tls]") {
  const std::string path = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  if (access(path.c_str(), R_OK) != 0) {
    WARN("no " << path << " on this machine");
    return;
  }
  for (const char* fn : {"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex", "SSL_do_handshake",
                         "SSL_accept", "SSL_connect"}) {
    Result<FunctionCode> code = read_function_code(path, fn);
    REQUIRE(code.ok());
    REQUIRE(!code->bytes.empty());
    ProbeSites s = sites_of(code->bytes);
    std::string got = std::string(fn) + " entry +" + std::to_string(s.entry) + " returns";
    for (uint64_t r : s.returns) got += " +" + std::to_string(r);
    INFO(got << " (" << s.fallback_reason << ")");
    CHECK(s.entry < code->bytes.size());
    if (s.entry_emulated) CHECK(emulated_kind_at(code->bytes, s.entry) != EmulatedKind::kNone);
    if (!s.returns.empty()) CHECK(s.entry_emulated);
    for (uint64_t r : s.returns) {
      CHECK(r < code->bytes.size());
      CHECK(emulated_kind_at(code->bytes, r) != EmulatedKind::kNone);
    }
    if (std::string(fn) == "SSL_read" || std::string(fn) == "SSL_write") {
      CHECK(s.entry_emulated);
      CHECK_FALSE(s.returns.empty());
    }
  }
}

TEST_CASE("read_function_code errors are values", "[capture][tls]") {
  const std::string path = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  if (access(path.c_str(), R_OK) == 0) {
    Result<FunctionCode> none = read_function_code(path, "no_such_function_here");
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().message().find("no such function symbol") != std::string::npos);
  }
  Result<FunctionCode> missing = read_function_code("/nonexistent/libssl.so.3", "SSL_read");
  CHECK_FALSE(missing.ok());
  Result<FunctionCode> not_elf = read_function_code("/proc/self/status", "SSL_read");
  CHECK_FALSE(not_elf.ok());
}

}  // namespace
}  // namespace dbwarden::capture
