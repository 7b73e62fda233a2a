//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program,
//! assembled here from the emulator's minimal rules (the program is a few
//! dozen instructions; a BPF toolchain or crate would be far heavier than
//! this file). Same structure as runc's and crun's programs:
//!
//! ```text
//!   r2 = ctx->access_type & 0xffff   ; device type (BPF_DEVCG_DEV_*)
//!   r3 = ctx->access_type >> 16      ; requested access (BPF_DEVCG_ACC_*)
//!   r4 = ctx->major ; r5 = ctx->minor
//!   per rule: if type, access, major, minor match -> return allow/deny
//!   return default
//! ```

use super::emulator::Emulator;
use super::rules::{DeviceKind, DeviceRule};

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
// BPF_DEVCG_ACC_MKNOD = 1, READ = 2, WRITE = 4: not the order of v1's "rwm".
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;

// Opcodes (instruction class | operation | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JNE_X: u8 = 0x5e; // BPF_JMP32 | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// `struct bpf_insn`, laid out as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg:4, src_reg:4 — bit-field order follows the byte order.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | dst;
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | src;
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }
}

/// A jump whose target (the start of the next rule's block) is not known
/// yet when it is emitted.
struct PendingJump(usize);

#[derive(Default)]
struct Assembler {
    insns: Vec<Insn>,
}

impl Assembler {
    fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    fn jump_if_not_equal_imm(&mut self, reg: u8, imm: i32) -> PendingJump {
        self.emit(Insn::new(JMP32_JNE_K, reg, 0, 0, imm));
        PendingJump(self.insns.len() - 1)
    }

    fn jump_if_not_equal_reg(&mut self, dst: u8, src: u8) -> PendingJump {
        self.emit(Insn::new(JMP32_JNE_X, dst, src, 0, 0));
        PendingJump(self.insns.len() - 1)
    }

    fn return_imm(&mut self, value: i32) {
        self.emit(Insn::new(ALU32_MOV_K, R0, 0, 0, value));
        self.emit(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    }

    /// Points `jumps` at the next instruction to be emitted.
    fn land(&mut self, jumps: Vec<PendingJump>) {
        let target = self.insns.len();
        for PendingJump(at) in jumps {
            // Offsets are relative to the instruction after the jump; a
            // program has far fewer than 32767 instructions.
            self.insns[at].off = (target - at - 1) as i16;
        }
    }
}

fn bpf_access(rule: &DeviceRule) -> i32 {
    let bits = rule.access.bits();
    let mut acc = 0;
    if bits & 1 != 0 {
        acc |= BPF_DEVCG_ACC_READ;
    }
    if bits & 2 != 0 {
        acc |= BPF_DEVCG_ACC_WRITE;
    }
    if bits & 4 != 0 {
        acc |= BPF_DEVCG_ACC_MKNOD;
    }
    acc
}

/// Assembles the filter for the table `emu` describes.
pub fn device_filter(emu: &Emulator) -> Vec<Insn> {
    let mut asm = Assembler::default();
    asm.emit(Insn::new(LDX_MEM_W, R2, R1, 0, 0));
    asm.emit(Insn::new(ALU32_AND_K, R2, 0, 0, 0xffff));
    asm.emit(Insn::new(LDX_MEM_W, R3, R1, 0, 0));
    asm.emit(Insn::new(ALU32_RSH_K, R3, 0, 0, 16));
    asm.emit(Insn::new(LDX_MEM_W, R4, R1, 4, 0));
    asm.emit(Insn::new(LDX_MEM_W, R5, R1, 8, 0));

    let all_access = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    for rule in emu.minimal_rules() {
        // The leading `a` rule only sets the default, returned at the end.
        let kind = match rule.kind {
            DeviceKind::All => continue,
            DeviceKind::Block => BPF_DEVCG_DEV_BLOCK,
            DeviceKind::Char => BPF_DEVCG_DEV_CHAR,
        };
        let mut to_next = vec![asm.jump_if_not_equal_imm(R2, kind)];
        let access = bpf_access(&rule);
        if access != all_access {
            // Match when every requested access bit is in the rule.
            asm.emit(Insn::new(ALU32_MOV_X, R1, R3, 0, 0));
            asm.emit(Insn::new(ALU32_AND_K, R1, 0, 0, access));
            to_next.push(asm.jump_if_not_equal_reg(R1, R3));
        }
        if let Some(major) = rule.major {
            to_next.push(asm.jump_if_not_equal_imm(R4, major as i32));
        }
        if let Some(minor) = rule.minor {
            to_next.push(asm.jump_if_not_equal_imm(R5, minor as i32));
        }
        asm.return_imm(i32::from(rule.allow));
        asm.land(to_next);
    }
    asm.return_imm(i32::from(emu.is_deny_list()));
    asm.insns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::rules::Access;

    /// Runs a program the way the kernel would, for the subset of
    /// instructions the assembler emits.
    fn run(prog: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> i32 {
        let ctx = [(access << 16 | kind) as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let insn = prog[pc];
            #[cfg(target_endian = "little")]
            let (dst, src) = ((insn.regs & 0xf) as usize, (insn.regs >> 4) as usize);
            #[cfg(target_endian = "big")]
            let (dst, src) = ((insn.regs >> 4) as usize, (insn.regs & 0xf) as usize);
            pc += 1;
            match insn.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1);
                    reg[dst] = u64::from(ctx[insn.off as usize / 4]);
                }
                ALU32_AND_K => reg[dst] = (reg[dst] as u32 & insn.imm as u32) as u64,
                ALU32_RSH_K => reg[dst] = ((reg[dst] as u32) >> insn.imm) as u64,
                ALU32_MOV_K => reg[dst] = insn.imm as u32 as u64,
                ALU32_MOV_X => reg[dst] = reg[src] as u32 as u64,
                JMP32_JNE_K => {
                    if reg[dst] as u32 != insn.imm as u32 {
                        pc += insn.off as usize;
                    }
                }
                JMP32_JNE_X => {
                    if reg[dst] as u32 != reg[src] as u32 {
                        pc += insn.off as usize;
                    }
                }
                JMP_EXIT => return reg[0] as i32,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: Access::parse(access).unwrap(),
        }
    }

    #[test]
    fn allow_list_program_matches_v1_semantics() {
        let emu = Emulator::from_rules(&[
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(true, DeviceKind::Char, Some(136), None, "rw"),
            rule(true, DeviceKind::Block, None, None, "m"),
        ])
        .unwrap();
        let prog = device_filter(&emu);
        let (r, w, m) = (BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE, BPF_DEVCG_ACC_MKNOD);
        let (c, b) = (BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK);
        assert_eq!(run(&prog, c, r | w, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&prog, c, r, 1, 5), 0, "/dev/zero not listed");
        assert_eq!(run(&prog, c, w, 136, 7), 1, "pty write");
        assert_eq!(run(&prog, c, m, 136, 7), 0, "pty mknod not allowed");
        assert_eq!(run(&prog, b, m, 8, 0), 1, "block mknod");
        assert_eq!(run(&prog, b, r, 8, 0), 0, "block read");
    }

    #[test]
    fn deny_list_program_defaults_to_allow() {
        let emu = Emulator::from_rules(&[
            rule(true, DeviceKind::All, None, None, "rwm"),
            rule(false, DeviceKind::Block, Some(8), None, "rw"),
        ])
        .unwrap();
        let prog = device_filter(&emu);
        let b = BPF_DEVCG_DEV_BLOCK;
        assert_eq!(run(&prog, b, BPF_DEVCG_ACC_READ, 8, 1), 0);
        assert_eq!(run(&prog, b, BPF_DEVCG_ACC_MKNOD, 8, 1), 1);
        assert_eq!(run(&prog, b, BPF_DEVCG_ACC_READ, 9, 1), 1);
        assert_eq!(run(&prog, BPF_DEVCG_DEV_CHAR, BPF_DEVCG_ACC_READ, 8, 1), 1);
    }

    #[test]
    fn large_device_numbers_compare_as_unsigned_32_bit() {
        let emu = Emulator::from_rules(&[
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(
                true,
                DeviceKind::Char,
                Some(u32::MAX),
                Some(0x8000_0000),
                "r",
            ),
        ])
        .unwrap();
        let prog = device_filter(&emu);
        let c = BPF_DEVCG_DEV_CHAR;
        assert_eq!(run(&prog, c, BPF_DEVCG_ACC_READ, u32::MAX, 0x8000_0000), 1);
        assert_eq!(run(&prog, c, BPF_DEVCG_ACC_READ, u32::MAX, 0), 0);
    }
}
