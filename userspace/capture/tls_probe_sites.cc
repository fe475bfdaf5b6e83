// SPDX-License-Identifier: Apache-2.0
#include "capture/tls_probe_sites.h"

#include <capstone/capstone.h>

#include <deque>
#include <map>
#include <set>

namespace dbwarden::capture {
namespace {

// Bounds the backward walk from a ret and the forward walk to the entry site:
// a site further away than this is not worth the analysis.
constexpr size_t kMaxWalk = 64;

// Which argument / return register an x86 register id is part of.
enum RegFamily : unsigned { kRax = 1, kRcx = 2, kRdx = 4, kRsi = 8, kRdi = 16 };
constexpr unsigned kArgRegs = kRcx | kRdx | kRsi | kRdi;

unsigned reg_family(uint16_t reg) {
  switch (reg) {
    case X86_REG_RAX:
    case X86_REG_EAX:
    case X86_REG_AX:
    case X86_REG_AH:
    case X86_REG_AL:
      return kRax;
    case X86_REG_RCX:
    case X86_REG_ECX:
    case X86_REG_CX:
    case X86_REG_CH:
    case X86_REG_CL:
      return kRcx;
    case X86_REG_RDX:
    case X86_REG_EDX:
    case X86_REG_DX:
    case X86_REG_DH:
    case X86_REG_DL:
      return kRdx;
    case X86_REG_RSI:
    case X86_REG_ESI:
    case X86_REG_SI:
    case X86_REG_SIL:
      return kRsi;
    case X86_REG_RDI:
    case X86_REG_EDI:
    case X86_REG_DI:
    case X86_REG_DIL:
      return kRdi;
    default:
      return 0;
  }
}

EmulatedKind kind_of(const cs_insn& insn) {
  const cs_x86& x = insn.detail->x86;
  // The kernel refuses 16-bit operand forms and we do not need prefixed ones.
  if (x.prefix[0] || x.prefix[1] || x.prefix[2] || x.prefix[3]) return EmulatedKind::kNone;
  uint8_t op = x.opcode[0];
  if (op == 0xe8 && x.rex == 0) return EmulatedKind::kCall;
  if ((op == 0xe9 || op == 0xeb) && x.rex == 0) return EmulatedKind::kJmp;
  if (op >= 0x70 && op <= 0x7f) return EmulatedKind::kJcc;
  if (op == 0x0f && x.opcode[1] >= 0x80 && x.opcode[1] <= 0x8f) return EmulatedKind::kJcc;
  if (op == 0x90 && x.rex == 0 && insn.size == 1) return EmulatedKind::kNop;
  // push r64; REX.B (0x41) selects r8-r15, which the kernel handles too.
  if (op >= 0x50 && op <= 0x57 && (x.rex == 0 || x.rex == 0x41)) return EmulatedKind::kPush;
  return EmulatedKind::kNone;
}

struct Insn {
  uint64_t off = 0;
  EmulatedKind kind = EmulatedKind::kNone;
  unsigned writes = 0;  // RegFamily bits
  bool ret = false;
  bool jump = false;  // any jump (capstone's group)
  bool cond = false;  // conditional jump with a fall-through
  bool call = false;
  bool dead = false;      // ud2, hlt, int3: no successor
  bool indirect = false;  // jump or call through a register or memory
  bool has_target = false;
  int64_t target = 0;  // direct branch target (offset from the function start)
};

class Disasm {
 public:
  Disasm() { ok_ = cs_open(CS_ARCH_X86, CS_MODE_64, &h_) == CS_ERR_OK; }
  ~Disasm() {
    if (ok_) cs_close(&h_);
  }
  Disasm(const Disasm&) = delete;
  Disasm& operator=(const Disasm&) = delete;
  bool ok() const { return ok_; }

  // Decodes all of `code`; false when some bytes do not decode.
  bool decode(std::span<const uint8_t> code, std::vector<Insn>& out) {
    cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
    cs_insn* insns = nullptr;
    size_t n = cs_disasm(h_, code.data(), code.size(), 0, 0, &insns);
    uint64_t covered = 0;
    for (size_t i = 0; i < n; i++) {
      const cs_insn& in = insns[i];
      Insn d;
      d.off = in.address;
      d.kind = kind_of(in);
      cs_regs rd, wr;
      uint8_t nrd = 0, nwr = 0;
      if (cs_regs_access(h_, &in, rd, &nrd, wr, &nwr) == CS_ERR_OK) {
        for (uint8_t k = 0; k < nwr; k++) d.writes |= reg_family(wr[k]);
      } else {
        d.writes = kRax | kArgRegs;  // unknown: assume the worst
      }
      d.ret = cs_insn_group(h_, &in, CS_GRP_RET) || cs_insn_group(h_, &in, CS_GRP_IRET);
      d.jump = cs_insn_group(h_, &in, CS_GRP_JUMP);
      d.call = cs_insn_group(h_, &in, CS_GRP_CALL);
      d.dead = cs_insn_group(h_, &in, CS_GRP_INT) || in.id == X86_INS_UD2 || in.id == X86_INS_HLT;
      d.cond = d.jump && in.id != X86_INS_JMP && in.id != X86_INS_LJMP;
      const cs_x86& x = in.detail->x86;
      if ((d.jump || d.call) && x.op_count == 1 && x.operands[0].type == X86_OP_IMM) {
        d.has_target = true;
        d.target = x.operands[0].imm;
      } else if (d.jump || d.call) {
        d.indirect = true;
      }
      // The callee clobbers every caller-saved register we care about.
      if (d.call) d.writes |= kRax | kArgRegs;
      out.push_back(d);
      covered = in.address + in.size;
    }
    if (insns) cs_free(insns, n);
    return n > 0 && covered == code.size();
  }

  EmulatedKind kind_at(std::span<const uint8_t> code, uint64_t offset) {
    if (offset >= code.size()) return EmulatedKind::kNone;
    cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
    cs_insn* in = nullptr;
    size_t n = cs_disasm(h_, code.data() + offset, code.size() - offset, offset, 1, &in);
    if (n != 1 || in == nullptr) {
      if (in != nullptr) cs_free(in, n);
      return EmulatedKind::kNone;
    }
    const EmulatedKind k = kind_of(in[0]);
    cs_free(in, n);
    return k;
  }

 private:
  csh h_ = 0;
  bool ok_ = false;
};

// The function's control flow, direct branches only.
class Flow {
 public:
  Flow(const std::vector<Insn>& insns, uint64_t size) : insns_(insns) {
    for (size_t i = 0; i < insns.size(); i++) index_[insns[i].off] = i;
    for (const Insn& in : insns) {
      if (!in.has_target || in.call) continue;
      if (in.target < 0 || static_cast<uint64_t>(in.target) >= size) {
        tail_jump_ = true;  // leaves the function without a ret of its own
      } else if (!index_.count(static_cast<uint64_t>(in.target))) {
        misaligned_ = true;  // lands inside an instruction: we decoded it wrong
      } else {
        targets_.insert(static_cast<uint64_t>(in.target));
      }
    }
    for (const Insn& in : insns) indirect_jump_ |= in.jump && in.indirect;
  }

  bool tail_jump() const { return tail_jump_; }
  bool indirect_jump() const { return indirect_jump_; }
  bool misaligned() const { return misaligned_; }
  bool is_target(size_t i) const { return targets_.count(insns_[i].off) != 0; }

  // Whether execution from instruction `start` can reach a ret. A call falls
  // through unless it is the function's last instruction (a noreturn call such
  // as __stack_chk_fail: the compiler put nothing after it).
  bool reaches_ret(size_t start) const {
    std::vector<bool> seen(insns_.size(), false);
    std::deque<size_t> todo{start};
    while (!todo.empty()) {
      size_t i = todo.front();
      todo.pop_front();
      if (i >= insns_.size() || seen[i]) continue;
      seen[i] = true;
      const Insn& in = insns_[i];
      if (in.ret) return true;
      if (in.dead) continue;
      if (in.jump && in.has_target) {
        auto it = index_.find(static_cast<uint64_t>(in.target));
        if (it != index_.end()) todo.push_back(it->second);
        if (!in.cond) continue;
      }
      todo.push_back(i + 1);
    }
    return false;
  }

  size_t index_of(uint64_t off) const { return index_.at(off); }

 private:
  const std::vector<Insn>& insns_;
  std::map<uint64_t, size_t> index_;
  std::set<uint64_t> targets_;
  bool tail_jump_ = false;
  bool indirect_jump_ = false;
  bool misaligned_ = false;
};

bool transfers_control(const Insn& in) { return in.ret || in.jump || in.call || in.dead; }

// The entry site (index) or 0.
size_t entry_site(const std::vector<Insn>& insns, const Flow& flow) {
  for (size_t i = 0; i < insns.size() && i < kMaxWalk; i++) {
    if (i > 0 && flow.is_target(i)) return 0;  // a second way in: the site could fire twice
    if (insns[i].kind != EmulatedKind::kNone) return i;
    if ((insns[i].writes & kArgRegs) || transfers_control(insns[i])) return 0;
  }
  return 0;
}

// The return site for the ret at index `r`, or -1.
int64_t return_site(const std::vector<Insn>& insns, const Flow& flow, size_t r) {
  size_t k = r;
  for (size_t steps = 0; steps < kMaxWalk && k > 0; steps++) {
    if (flow.is_target(k)) return -1;  // another path joins between the site and the ret
    const Insn& p = insns[k - 1];
    if (p.ret || p.dead || p.call || (p.jump && !p.cond) || p.indirect) return -1;
    if (p.writes & kRax) return -1;  // the return value is not yet final at p
    if (p.jump) {
      // A conditional jump off the straight path: the probe at or before it
      // fires whether or not it is taken, so the taken side must never return.
      if (p.kind != EmulatedKind::kJcc || !p.has_target) return -1;
      if (flow.reaches_ret(flow.index_of(static_cast<uint64_t>(p.target)))) return -1;
    }
    if (p.kind != EmulatedKind::kNone) return static_cast<int64_t>(k - 1);
    k--;
  }
  return -1;
}

}  // namespace

const char* emulated_kind_name(EmulatedKind k) {
  switch (k) {
    case EmulatedKind::kNone:
      return "none";
    case EmulatedKind::kCall:
      return "call";
    case EmulatedKind::kJmp:
      return "jmp";
    case EmulatedKind::kJcc:
      return "jcc";
    case EmulatedKind::kNop:
      return "nop";
    case EmulatedKind::kPush:
      return "push";
  }
  return "none";
}

Result<ProbeSites> choose_probe_sites(std::span<const uint8_t> code) {
  Disasm dis;
  if (!dis.ok()) return Status::Error("TLS capture: cannot open the capstone x86-64 disassembler");
  ProbeSites sites;
  std::vector<Insn> insns;
  if (!dis.decode(code, insns)) {
    sites.fallback_reason = "code does not decode";
    return sites;
  }
  Flow flow(insns, code.size());
  if (flow.misaligned()) {
    sites.fallback_reason = "a branch lands inside an instruction";
    return sites;
  }
  size_t e = entry_site(insns, flow);
  sites.entry = insns[e].off;
  sites.entry_emulated = insns[e].kind != EmulatedKind::kNone;
  if (flow.tail_jump()) {
    sites.fallback_reason = "tail jump out of the function";
  } else if (flow.indirect_jump()) {
    sites.fallback_reason = "indirect jump";
  } else {
    for (size_t i = 0; i < insns.size(); i++) {
      if (!insns[i].ret) continue;
      int64_t s = return_site(insns, flow, i);
      if (s < 0) {
        sites.returns.clear();
        sites.fallback_reason =
            "no emulated instruction before the ret at +" + std::to_string(insns[i].off);
        break;
      }
      sites.returns.push_back(insns[static_cast<size_t>(s)].off);
    }
    if (sites.returns.empty() && sites.fallback_reason.empty()) {
      sites.fallback_reason = "no ret";
    }
  }
  // A uretprobe must sit on the first instruction; the entry program shares it.
  if (sites.returns.empty()) {
    sites.entry = 0;
    sites.entry_emulated = insns[0].kind != EmulatedKind::kNone;
  }
  return sites;
}

EmulatedKind emulated_kind_at(std::span<const uint8_t> code, uint64_t offset) {
  Disasm dis;
  return dis.ok() ? dis.kind_at(code, offset) : EmulatedKind::kNone;
}

}  // namespace dbwarden::capture
