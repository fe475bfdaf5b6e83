// SPDX-License-Identifier: Apache-2.0
//
// Where in a libssl function to put the uprobes so that the kernel never has
// to single-step.
//
// An x86 uprobe replaces the probed instruction with int3. After the BPF
// program ran, the kernel either emulates the original instruction or copies
// it out of line and single-steps it (a debug exception and a second return
// to user mode). Measured on kernel 6.18 in this VM (bench/README.md, "TLS"):
// emulated ~1.4-2.6 us per hit, single-stepped ~13-17 us per hit. Emulated
// (arch/x86/kernel/uprobes.c, branch_setup_xol_ops and push_setup_xol_ops):
// call rel32, jmp rel8/rel32, jcc rel8/rel32, the one-byte nop 0x90, push r64.
// Measured NOT emulated: ret, pop, sub/xor/test, the five-byte nopl.
//
// A uretprobe needs its entry probe on the function's first instruction
// (where [rsp] is the return address), and OpenSSL functions start with
// `sub $N,%rsp` or `push`+`sub`. So instead of a uretprobe:
//   entry site:  the first emulated instruction such that no instruction
//                before it writes rdi, rsi, rdx or rcx (the arguments read),
//                none before it transfers control, and no branch lands
//                between the function start and it (one hit per call);
//   return sites: for every `ret`, the nearest emulated instruction before it
//                from which execution falls straight through to the ret with
//                no write to rax (the return value stays readable), no branch
//                landing in between, and whose other exits (a jcc taken)
//                cannot reach any ret (e.g. the jump to __stack_chk_fail).
// A function whose rets do not all have such a site, or that may leave by a
// tail jump or an indirect jump, keeps the entry at offset 0 + uretprobe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace dbwarden::capture {

// Instruction kinds the 6.18 x86 uprobe code emulates (no single-step).
enum class EmulatedKind { kNone, kCall, kJmp, kJcc, kNop, kPush };
const char* emulated_kind_name(EmulatedKind k);

struct ProbeSites {
  uint64_t entry = 0;             // offset from the function start
  std::vector<uint64_t> returns;  // offsets of return sites; empty: use a uretprobe
  bool entry_emulated = false;    // the entry site needs no single-step
  std::string fallback_reason;    // why `returns` is empty (for the log)
};

// `code`: the bytes of one x86-64 function (its ELF symbol's st_value, st_size).
// Errors only when the disassembler cannot be opened; code it cannot decode
// yields the safe fallback (entry 0, no return sites).
Result<ProbeSites> choose_probe_sites(std::span<const uint8_t> code);

// The kind of the instruction at `offset` of `code` (kNone when it is not
// emulated or does not decode).
EmulatedKind emulated_kind_at(std::span<const uint8_t> code, uint64_t offset);

}  // namespace dbwarden::capture
