//! Classic BPF for seccomp: the instruction encoding, an assembler that lays
//! a program out back to front (so every jump target is already placed and
//! far targets get a trampoline), and an interpreter that runs a program on a
//! `seccomp_data` the way the kernel does.

use std::collections::HashMap;

pub(super) use libc::sock_filter as Instruction;

// Opcode parts (linux/bpf_common.h).
pub(super) const BPF_LD: u16 = 0x00;
pub(super) const BPF_LDX: u16 = 0x01;
pub(super) const BPF_ST: u16 = 0x02;
pub(super) const BPF_STX: u16 = 0x03;
pub(super) const BPF_ALU: u16 = 0x04;
pub(super) const BPF_JMP: u16 = 0x05;
pub(super) const BPF_RET: u16 = 0x06;
pub(super) const BPF_MISC: u16 = 0x07;
pub(super) const BPF_W: u16 = 0x00;
pub(super) const BPF_IMM: u16 = 0x00;
pub(super) const BPF_ABS: u16 = 0x20;
pub(super) const BPF_MEM: u16 = 0x60;
pub(super) const BPF_LEN: u16 = 0x80;
pub(super) const BPF_ADD: u16 = 0x00;
pub(super) const BPF_SUB: u16 = 0x10;
pub(super) const BPF_MUL: u16 = 0x20;
pub(super) const BPF_DIV: u16 = 0x30;
pub(super) const BPF_OR: u16 = 0x40;
pub(super) const BPF_AND: u16 = 0x50;
pub(super) const BPF_LSH: u16 = 0x60;
pub(super) const BPF_RSH: u16 = 0x70;
pub(super) const BPF_NEG: u16 = 0x80;
pub(super) const BPF_MOD: u16 = 0x90;
pub(super) const BPF_XOR: u16 = 0xa0;
pub(super) const BPF_JA: u16 = 0x00;
pub(super) const BPF_JEQ: u16 = 0x10;
pub(super) const BPF_JGT: u16 = 0x20;
pub(super) const BPF_JGE: u16 = 0x30;
pub(super) const BPF_JSET: u16 = 0x40;
pub(super) const BPF_K: u16 = 0x00;
pub(super) const BPF_X: u16 = 0x08;
pub(super) const BPF_A: u16 = 0x10;
pub(super) const BPF_TAX: u16 = 0x00;
pub(super) const BPF_TXA: u16 = 0x80;

/// Longest program the kernel accepts (BPF_MAXINSNS).
pub(super) const MAX_INSTRUCTIONS: usize = 4096;

/// Offsets in `struct seccomp_data`.
pub(super) const OFFSET_NR: u32 = 0;
pub(super) const OFFSET_ARCH: u32 = 4;
pub(super) const OFFSET_ARGS: u32 = 16;
/// Size of `struct seccomp_data`: loads past it are refused.
const SECCOMP_DATA_SIZE: u32 = 64;

/// Where an instruction sits, counted from the end of the program. Stable
/// while the assembler keeps prepending.
pub(super) type Label = usize;

/// Builds a program from its last instruction to its first. Each `emit`
/// places an instruction in front of everything emitted so far, so a jump's
/// targets (which come later in the program) already have a label and its
/// offsets are known when it is written.
#[derive(Default)]
pub(super) struct Assembler {
    reversed: Vec<Instruction>,
    /// The nearest `ja` trampoline placed so far for each far target.
    trampolines: HashMap<Label, Label>,
}

impl Assembler {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        self.reversed.push(Instruction { code, jt, jf, k });
        self.reversed.len() - 1
    }

    /// An instruction that falls through to the one emitted just before it.
    pub fn statement(&mut self, code: u16, k: u32) -> Label {
        self.push(code, 0, 0, k)
    }

    pub fn load_word(&mut self, offset: u32) -> Label {
        self.statement(BPF_LD | BPF_W | BPF_ABS, offset)
    }

    pub fn ret(&mut self, value: u32) -> Label {
        self.statement(BPF_RET | BPF_K, value)
    }

    /// Offset from an instruction placed next to `target`.
    fn distance(&self, target: Label) -> usize {
        self.reversed.len() - target - 1
    }

    /// A conditional jump comparing the accumulator with `k`. Targets more
    /// than 255 instructions away go through an unconditional `ja`
    /// (32-bit offset) placed right after the jump.
    pub fn jump(&mut self, op: u16, k: u32, mut on_true: Label, mut on_false: Label) -> Label {
        loop {
            let (dt, df) = (self.distance(on_true), self.distance(on_false));
            if dt > usize::from(u8::MAX) {
                on_true = self.trampoline(on_true);
            } else if df > usize::from(u8::MAX) {
                on_false = self.trampoline(on_false);
            } else {
                // Both fit in u8: checked just above.
                return self.push(BPF_JMP | op | BPF_K, dt as u8, df as u8, k);
            }
        }
    }

    fn trampoline(&mut self, target: Label) -> Label {
        if let Some(&near) = self.trampolines.get(&target) {
            // One slot of slack: the caller may still add a trampoline for
            // its other target before placing the jump.
            if self.distance(near) < usize::from(u8::MAX) {
                return near;
            }
        }
        let offset = self.distance(target) as u32;
        let label = self.push(BPF_JMP | BPF_JA, 0, 0, offset);
        self.trampolines.insert(target, label);
        label
    }

    pub fn len(&self) -> usize {
        self.reversed.len()
    }

    /// The program in execution order.
    pub fn finish(mut self) -> Vec<Instruction> {
        self.reversed.reverse();
        self.reversed
    }
}

/// The input of a seccomp filter (`struct seccomp_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    /// AUDIT_ARCH_* of the calling ABI.
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 32-bit word at `offset`, as a kernel of the data's byte order
    /// (told by the audit token's little-endian bit) would load it.
    fn word(&self, offset: u32) -> Option<u32> {
        let big_endian = self.arch & 0x4000_0000 == 0;
        let wide = |value: u64, second_half: bool| {
            let high_first = big_endian;
            if second_half == high_first {
                value as u32
            } else {
                (value >> 32) as u32
            }
        };
        match offset {
            0 => Some(self.nr),
            4 => Some(self.arch),
            8 | 12 => Some(wide(self.instruction_pointer, offset == 12)),
            16..=60 if offset.is_multiple_of(4) => {
                let index = ((offset - OFFSET_ARGS) / 8) as usize;
                Some(wide(self.args[index], offset % 8 == 4))
            }
            _ => None,
        }
    }
}

/// Why [`run`] could not finish a program (the kernel would have refused to
/// load it).
#[derive(Debug, PartialEq, Eq)]
pub enum RunError {
    FellOffTheEnd,
    BadLoad { pc: usize, offset: u32 },
    DivideByZero { pc: usize },
    BadInstruction { pc: usize, code: u16 },
}

/// Runs a classic BPF program on `data` and returns its verdict, as the
/// kernel's seccomp does. Jumps are forward only, so it always terminates.
pub fn run(program: &[Instruction], data: &SeccompData) -> Result<u32, RunError> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut memory = [0u32; 16];
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        let k = insn.k;
        let operand = |x: u32| if insn.code & BPF_X != 0 { x } else { k };
        pc += 1;
        match insn.code & 0x07 {
            BPF_LD | BPF_LDX => {
                let value = match insn.code & 0xe0 {
                    BPF_ABS if insn.code & 0x18 == BPF_W && k < SECCOMP_DATA_SIZE => {
                        data.word(k).ok_or(RunError::BadLoad {
                            pc: pc - 1,
                            offset: k,
                        })?
                    }
                    BPF_ABS => {
                        return Err(RunError::BadLoad {
                            pc: pc - 1,
                            offset: k,
                        })
                    }
                    BPF_IMM => k,
                    BPF_MEM => *memory.get(k as usize).ok_or(RunError::BadLoad {
                        pc: pc - 1,
                        offset: k,
                    })?,
                    BPF_LEN => SECCOMP_DATA_SIZE,
                    _ => {
                        return Err(RunError::BadInstruction {
                            pc: pc - 1,
                            code: insn.code,
                        })
                    }
                };
                if insn.code & 0x07 == BPF_LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            BPF_ST | BPF_STX => {
                let slot = memory.get_mut(k as usize).ok_or(RunError::BadInstruction {
                    pc: pc - 1,
                    code: insn.code,
                })?;
                *slot = if insn.code & 0x07 == BPF_ST { a } else { x };
            }
            BPF_ALU => {
                let b = operand(x);
                a = match insn.code & 0xf0 {
                    BPF_ADD => a.wrapping_add(b),
                    BPF_SUB => a.wrapping_sub(b),
                    BPF_MUL => a.wrapping_mul(b),
                    BPF_DIV | BPF_MOD if b == 0 => {
                        return Err(RunError::DivideByZero { pc: pc - 1 })
                    }
                    BPF_DIV => a / b,
                    BPF_MOD => a % b,
                    BPF_OR => a | b,
                    BPF_AND => a & b,
                    BPF_XOR => a ^ b,
                    BPF_LSH => a.checked_shl(b).unwrap_or(0),
                    BPF_RSH => a.checked_shr(b).unwrap_or(0),
                    BPF_NEG => a.wrapping_neg(),
                    _ => {
                        return Err(RunError::BadInstruction {
                            pc: pc - 1,
                            code: insn.code,
                        })
                    }
                };
            }
            BPF_JMP => {
                let b = operand(x);
                let taken = match insn.code & 0xf0 {
                    BPF_JA => {
                        pc += k as usize;
                        continue;
                    }
                    BPF_JEQ => a == b,
                    BPF_JGT => a > b,
                    BPF_JGE => a >= b,
                    BPF_JSET => a & b != 0,
                    _ => {
                        return Err(RunError::BadInstruction {
                            pc: pc - 1,
                            code: insn.code,
                        })
                    }
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            BPF_RET => {
                return Ok(match insn.code & 0x18 {
                    BPF_A => a,
                    _ => k,
                });
            }
            BPF_MISC => {
                if insn.code & 0xf8 == BPF_TXA {
                    a = x;
                } else if insn.code & 0xf8 == BPF_TAX {
                    x = a;
                } else {
                    return Err(RunError::BadInstruction {
                        pc: pc - 1,
                        code: insn.code,
                    });
                }
            }
            _ => unreachable!("an opcode class has three bits"),
        }
    }
    Err(RunError::FellOffTheEnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_targets_get_a_trampoline() {
        let mut asm = Assembler::default();
        let far = asm.ret(1);
        for _ in 0..300 {
            asm.ret(2);
        }
        let near = asm.ret(3);
        asm.jump(BPF_JEQ, 7, far, near);
        asm.load_word(OFFSET_NR);
        let program = asm.finish();
        assert_eq!(program.len(), 305, "one trampoline was added");
        let verdict = |nr| {
            run(
                &program,
                &SeccompData {
                    nr,
                    ..Default::default()
                },
            )
        };
        assert_eq!(verdict(7), Ok(1));
        assert_eq!(verdict(8), Ok(3));
    }

    #[test]
    fn words_follow_the_arch_byte_order() {
        let little = SeccompData {
            arch: 0xc000_003e,
            args: [0x1111_2222_3333_4444, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        assert_eq!(little.word(16), Some(0x3333_4444));
        assert_eq!(little.word(20), Some(0x1111_2222));
        let big = SeccompData {
            arch: 0x8000_0016,
            ..little
        };
        assert_eq!(big.word(16), Some(0x1111_2222));
        assert_eq!(big.word(20), Some(0x3333_4444));
        assert_eq!(big.word(18), None);
    }

    #[test]
    fn running_off_the_end_is_an_error() {
        let program = [Instruction {
            code: BPF_LD | BPF_W | BPF_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        assert_eq!(
            run(&program, &SeccompData::default()),
            Err(RunError::FellOffTheEnd)
        );
        let bad_load = [Instruction {
            code: BPF_LD | BPF_W | BPF_ABS,
            jt: 0,
            jf: 0,
            k: 64,
        }];
        assert!(matches!(
            run(&bad_load, &SeccompData::default()),
            Err(RunError::BadLoad { .. })
        ));
    }
}
