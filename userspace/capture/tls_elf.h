// SPDX-License-Identifier: Apache-2.0
//
// Reads the machine code of one exported function from an ELF shared object
// (libssl), so that tls_probe_sites.h can choose where to put its uprobes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dbwarden::capture {

struct FunctionCode {
  uint64_t vaddr = 0;          // the symbol's st_value
  std::vector<uint8_t> bytes;  // st_size bytes from the file
};

// The STT_FUNC symbol `name` of .dynsym (or .symtab) of the ELF file at `path`.
// Errors: unreadable or non-ELF file, no such defined function, a size of 0
// or above kMaxFunctionBytes, bytes outside the file.
inline constexpr uint64_t kMaxFunctionBytes = 1 << 16;
Result<FunctionCode> read_function_code(const std::string& path, const std::string& name);

}  // namespace dbwarden::capture
