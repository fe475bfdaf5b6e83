// SPDX-License-Identifier: Apache-2.0
#include "capture/tls_elf.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dbwarden::capture {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class ElfHandle {
 public:
  explicit ElfHandle(Elf* e) : e_(e) {}
  ~ElfHandle() {
    if (e_) elf_end(e_);
  }
  ElfHandle(const ElfHandle&) = delete;
  ElfHandle& operator=(const ElfHandle&) = delete;
  Elf* get() const { return e_; }

 private:
  Elf* e_;
};

// Searches one symbol table section for a defined function called `name`.
bool find_in(Elf* elf, Elf_Scn* scn, const GElf_Shdr& sh, const std::string& name, GElf_Sym& out) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data || sh.sh_entsize == 0) return false;
  size_t n = sh.sh_size / sh.sh_entsize;
  for (size_t i = 0; i < n; i++) {
    GElf_Sym sym;
    if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
    if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF) continue;
    const char* s = elf_strptr(elf, sh.sh_link, sym.st_name);
    if (s && name == s) {
      out = sym;
      return true;
    }
  }
  return false;
}

}  // namespace

Result<FunctionCode> read_function_code(const std::string& path, const std::string& name) {
  auto fail = [&](const std::string& why) {
    return Status::Error("TLS capture: " + path + ": " + name + ": " + why);
  };
  if (elf_version(EV_CURRENT) == EV_NONE) return fail("libelf is unusable");
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail(std::string("cannot open: ") + strerror(errno));
  ElfHandle elf(elf_begin(fd.get(), ELF_C_READ, nullptr));
  if (!elf.get() || elf_kind(elf.get()) != ELF_K_ELF) return fail("not an ELF file");
  GElf_Sym sym{};
  bool found = false;
  for (Elf64_Word type : {SHT_DYNSYM, SHT_SYMTAB}) {
    for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn && !found;
         scn = elf_nextscn(elf.get(), scn)) {
      GElf_Shdr sh;
      if (gelf_getshdr(scn, &sh) && sh.sh_type == type) {
        found = find_in(elf.get(), scn, sh, name, sym);
      }
    }
    if (found) break;
  }
  if (!found) return fail("no such function symbol");
  if (sym.st_size == 0 || sym.st_size > kMaxFunctionBytes) {
    return fail("symbol size " + std::to_string(sym.st_size) + " out of range");
  }
  // The section holding the code maps st_value (a virtual address) to a file offset.
  Elf_Scn* scn = elf_getscn(elf.get(), sym.st_shndx);
  GElf_Shdr sh;
  if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || sym.st_value < sh.sh_addr ||
      sym.st_value + sym.st_size > sh.sh_addr + sh.sh_size) {
    return fail("symbol outside its section");
  }
  FunctionCode code;
  code.vaddr = sym.st_value;
  code.bytes.resize(sym.st_size);
  off_t off = static_cast<off_t>(sym.st_value - sh.sh_addr + sh.sh_offset);
  ssize_t got = pread(fd.get(), code.bytes.data(), code.bytes.size(), off);
  if (got != static_cast<ssize_t>(code.bytes.size())) return fail("short read of the code");
  return code;
}

}  // namespace dbwarden::capture
