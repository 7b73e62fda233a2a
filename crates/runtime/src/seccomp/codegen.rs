//! Profile → BPF. For every audit token the filter reads the syscall number
//! once and finds its verdict by binary search over ranges of numbers that
//! share one outcome, so a syscall costs O(log n) comparisons instead of the
//! linear chain a naive filter walks. Only syscalls with argument rules get
//! code of their own.
//!
//! Outcomes follow libseccomp's semantics (what runc and crun install) with
//! runc's ENOSYS stub folded in:
//! - an unconditional rule for a syscall wins over its argument rules;
//!   otherwise argument rules are tried in profile order, and the default
//!   action applies when none holds;
//! - on x86_64, numbers with the x32 bit belong to x32 (and are a foreign
//!   architecture unless x32 is listed), except -1, which tracers use to
//!   skip a call;
//! - a call from an architecture not in the profile gets the bad-arch action
//!   (KILL_THREAD, libseccomp's default);
//! - when the default action denies, numbers above the profile's highest
//!   known syscall on an architecture get ENOSYS, so that programs probing
//!   syscalls newer than the profile fall back gracefully (runc's stub).

use std::collections::{BTreeMap, BTreeSet};

use super::arch::{ArchSpec, X32_SYSCALL_BIT};
use super::bpf::{
    Assembler, Instruction, Label, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_K,
    MAX_INSTRUCTIONS, OFFSET_ARCH, OFFSET_ARGS, OFFSET_NR,
};
use super::profile::{Condition, Op, Profile, RET_ERRNO, RET_KILL_THREAD};
use super::SeccompError;

/// What a filter does for a call from an architecture it was not built for.
const RET_BAD_ARCH: u32 = RET_KILL_THREAD;
const RET_ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

/// The generated program and what the installer needs to know about it.
pub(super) struct Program {
    pub instructions: Vec<Instruction>,
    /// Every distinct return value the program can produce.
    pub returns: BTreeSet<u32>,
}

/// What happens to one syscall number.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Return(u32),
    /// Argument rules of a syscall, tried in order (index into the
    /// section's rule sets).
    Rules(usize),
}

/// Argument rules of one syscall on one ABI.
struct RuleSet<'p> {
    arch: ArchSpec,
    rules: Vec<(&'p [Condition], u32)>,
}

/// Everything reporting one audit token: its ABIs and the outcome of every
/// syscall number as sorted, non-overlapping ranges.
struct Section<'p> {
    audit_token: u32,
    default_ret: u32,
    /// `(first number, outcome)`; each range runs to the next start.
    ranges: Vec<(u32, Outcome)>,
    rule_sets: Vec<RuleSet<'p>>,
}

pub(super) fn generate(profile: &Profile) -> Result<Program, SeccompError> {
    let mut tokens: Vec<u32> = Vec::new();
    for arch in &profile.arches {
        if !tokens.contains(&arch.audit_token) {
            tokens.push(arch.audit_token);
        }
    }
    log_unknown_names(profile);
    let sections: Vec<Section> = tokens
        .iter()
        .map(|&token| {
            let abis: Vec<ArchSpec> = profile
                .arches
                .iter()
                .copied()
                .filter(|a| a.audit_token == token)
                .collect();
            section(profile, token, &abis)
        })
        .collect();

    let mut asm = Assembler::default();
    let mut returns = BTreeSet::from([RET_BAD_ARCH]);
    // Back to front: the last section first, the arch dispatch at the end.
    let mut entries = Vec::with_capacity(sections.len());
    for section in sections.iter().rev() {
        entries.push(emit_section(&mut asm, section, &mut returns));
    }
    entries.reverse();
    let bad_arch = asm.ret(RET_BAD_ARCH);
    let mut next = bad_arch;
    for (section, &entry) in sections.iter().zip(&entries).rev() {
        next = asm.jump(BPF_JEQ, section.audit_token, entry, next);
    }
    asm.load_word(OFFSET_ARCH);

    if asm.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::ProgramTooLarge {
            instructions: asm.len(),
        });
    }
    Ok(Program {
        instructions: asm.finish(),
        returns,
    })
}

/// runc logs and skips names libseccomp does not know; we do the same for
/// names none of the profile's architectures has.
fn log_unknown_names(profile: &Profile) {
    for name in &profile.unknown_names {
        tracing::debug!(
            syscall = name.as_str(),
            "seccomp: unknown syscall; rule skipped"
        );
    }
    for &id in &profile.all_syscalls {
        if profile.arches.iter().all(|a| a.number(id).is_none()) {
            tracing::debug!(
                syscall = id.name(),
                "seccomp: syscall absent on the profile's architectures; rule skipped"
            );
        }
    }
}

fn section<'p>(profile: &'p Profile, audit_token: u32, abis: &[ArchSpec]) -> Section<'p> {
    // The outcome of every number a rule names, on each ABI of the token
    // (x86_64 and x32 numbers never collide).
    let mut named: Vec<(u32, Outcome)> = Vec::new();
    let mut rule_sets: Vec<RuleSet> = Vec::new();
    for &arch in abis {
        let mut hits: Vec<(u32, usize)> = profile
            .rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| Some((arch.number(rule.syscall?)?, index)))
            .collect();
        // By number, then profile order.
        hits.sort_unstable();
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let rules = group.iter().map(|&(_, index)| &profile.rules[index]);
            let outcome = match rules.clone().find(|r| r.conditions.is_empty()) {
                Some(unconditional) => Outcome::Return(unconditional.ret),
                None => {
                    rule_sets.push(RuleSet {
                        arch,
                        rules: rules.map(|r| (&r.conditions[..], r.ret)).collect(),
                    });
                    Outcome::Rules(rule_sets.len() - 1)
                }
            };
            named.push((group[0].0, outcome));
        }
    }
    named.sort_unstable_by_key(|(number, _)| *number);

    // runc's ENOSYS stub: the highest number the profile names, per ABI.
    let highest: Vec<(ArchSpec, u32)> = if profile.enosys_for_newer {
        abis.iter()
            .filter_map(|&arch| {
                let max = profile
                    .all_syscalls
                    .iter()
                    .filter_map(|&id| arch.number(id))
                    .max()?;
                (max != 0).then_some((arch, max))
            })
            .collect()
    } else {
        Vec::new()
    };

    // Every number where the outcome may change.
    let mut starts: Vec<u32> = vec![0, 1, X32_SYSCALL_BIT, 0x8000_0000, 0xc000_0000, u32::MAX];
    for &(number, _) in &named {
        starts.push(number);
        starts.extend(number.checked_add(1));
    }
    starts.extend(highest.iter().filter_map(|(_, max)| max.checked_add(1)));
    starts.sort_unstable();
    starts.dedup();

    let mut ranges: Vec<(u32, Outcome)> = Vec::new();
    let mut next_named = named.iter().peekable();
    for start in starts {
        let outcome = match next_named.next_if(|(number, _)| *number == start) {
            Some((_, outcome)) => outcome.clone(),
            None => Outcome::Return(unnamed_outcome(profile, abis, &highest, start)),
        };
        if ranges.last().map(|(_, last)| last) != Some(&outcome) {
            ranges.push((start, outcome));
        }
    }
    Section {
        audit_token,
        default_ret: profile.default_ret,
        ranges,
        rule_sets,
    }
}

/// The outcome of a number no rule names.
fn unnamed_outcome(
    profile: &Profile,
    abis: &[ArchSpec],
    highest: &[(ArchSpec, u32)],
    nr: u32,
) -> u32 {
    let shared_x86_token = abis.iter().any(|a| a.splits_on_x32_bit());
    let has = |x32: bool| {
        abis.iter()
            .any(|a| a.splits_on_x32_bit() && a.is_x32() == x32)
    };

    // runc's stub runs first and claims numbers by the x32 bit alone.
    if !highest.is_empty() {
        if nr == 0 && abis.len() == 1 && abis[0].has_multiplexer_zero() {
            return RET_ENOSYS;
        }
        let claimant = highest
            .iter()
            .find(|(arch, _)| !shared_x86_token || arch.is_x32() == (nr & X32_SYSCALL_BIT != 0));
        if let Some((_, max)) = claimant {
            if nr > *max {
                return RET_ENOSYS;
            }
        }
    }
    if shared_x86_token {
        let in_x32_range = nr >= X32_SYSCALL_BIT;
        if in_x32_range && !has(true) {
            // libseccomp lets -1 through to the rules when x86_64 is there.
            return if nr == u32::MAX && has(false) {
                profile.default_ret
            } else {
                RET_BAD_ARCH
            };
        }
        if !in_x32_range && !has(false) {
            return RET_BAD_ARCH;
        }
    }
    profile.default_ret
}

/// Emits one section (back to front) and returns its entry label.
fn emit_section(asm: &mut Assembler, section: &Section, returns: &mut BTreeSet<u32>) -> Label {
    // Return instructions end the section, one per value, so that the
    // search tree's leaves jump a short way.
    let mut values = BTreeSet::from([section.default_ret]);
    for (_, outcome) in &section.ranges {
        if let Outcome::Return(ret) = outcome {
            values.insert(*ret);
        }
    }
    for set in &section.rule_sets {
        values.extend(set.rules.iter().map(|(_, ret)| *ret));
    }
    returns.extend(values.iter().copied());
    let ret_labels: BTreeMap<u32, Label> = values.iter().map(|&v| (v, asm.ret(v))).collect();

    // A syscall whose argument rules all fail gets the default action.
    let fallback = ret_labels[&section.default_ret];
    let rule_labels: Vec<Label> = section
        .rule_sets
        .iter()
        .map(|set| emit_rule_set(asm, set, &ret_labels, fallback))
        .collect();
    let target = |outcome: &Outcome| match outcome {
        Outcome::Return(ret) => ret_labels[ret],
        Outcome::Rules(index) => rule_labels[*index],
    };
    let root = emit_search_tree(asm, &section.ranges, &target);
    if section.ranges.len() == 1 {
        // One outcome for every number: no need to look at it.
        root
    } else {
        asm.load_word(OFFSET_NR)
    }
}

/// Binary search over `ranges` (the first range starts at a number the
/// caller already knows is reached): each node is one `jge`.
fn emit_search_tree(
    asm: &mut Assembler,
    ranges: &[(u32, Outcome)],
    target: &dyn Fn(&Outcome) -> Label,
) -> Label {
    if let [(_, only)] = ranges {
        return target(only);
    }
    let middle = ranges.len() / 2;
    // The upper half is placed after the lower one.
    let upper = emit_search_tree(asm, &ranges[middle..], target);
    let lower = emit_search_tree(asm, &ranges[..middle], target);
    asm.jump(BPF_JGE, ranges[middle].0, upper, lower)
}

/// Emits the checks of one rule set; returns the label of its first check.
fn emit_rule_set(
    asm: &mut Assembler,
    set: &RuleSet,
    ret_labels: &BTreeMap<u32, Label>,
    fallback: Label,
) -> Label {
    let mut next = fallback;
    for (conditions, ret) in set.rules.iter().rev() {
        let mut on_true = ret_labels[ret];
        for condition in conditions.iter().rev() {
            on_true = emit_condition(asm, set.arch, condition, on_true, next);
        }
        next = on_true;
    }
    next
}

/// Emits one argument comparison. 64-bit arguments are compared as two
/// 32-bit words, high word first; on 32-bit ABIs only the low word exists
/// (and, as in libseccomp, only the low half of the value is compared).
fn emit_condition(
    asm: &mut Assembler,
    arch: ArchSpec,
    condition: &Condition,
    on_true: Label,
    on_false: Label,
) -> Label {
    let base = OFFSET_ARGS + 8 * u32::from(condition.index);
    let (low_offset, high_offset) = if arch.big_endian() {
        (base + 4, base)
    } else {
        (base, base + 4)
    };
    let value_low = condition.value as u32;
    let value_high = (condition.value >> 32) as u32;
    // NE, LT and LE are the negations of EQ, GE and GT.
    let (op, on_true, on_false) = match condition.op {
        Op::Ne => (Op::Eq, on_false, on_true),
        Op::Lt => (Op::Ge, on_false, on_true),
        Op::Le => (Op::Gt, on_false, on_true),
        op => (op, on_true, on_false),
    };

    // The low word decides once the high words are equal.
    let low_jump = match op {
        Op::Gt => BPF_JGT,
        Op::Ge => BPF_JGE,
        _ => BPF_JEQ,
    };
    let (mask_low, mask_high) = match op {
        Op::MaskedEq { mask } => (Some(mask as u32), Some((mask >> 32) as u32)),
        _ => (None, None),
    };

    let mut low_entry = on_true;
    // Low word: skipped when a mask clears all of it (always equal).
    if mask_low != Some(0) {
        asm.jump(low_jump, value_low, on_true, on_false);
        if let Some(mask) = mask_low {
            asm.statement(BPF_ALU | BPF_AND | BPF_K, mask);
        }
        low_entry = asm.load_word(low_offset);
    }
    if !arch.wide_args || mask_high == Some(0) {
        return low_entry;
    }
    // High word: different settles EQ/MASKED_EQ, strictly greater settles
    // GT/GE.
    let high_equal = asm.jump(BPF_JEQ, value_high, low_entry, on_false);
    if matches!(op, Op::Gt | Op::Ge) {
        asm.jump(BPF_JGT, value_high, on_true, high_equal);
    }
    if let Some(mask) = mask_high {
        asm.statement(BPF_ALU | BPF_AND | BPF_K, mask);
    }
    asm.load_word(high_offset)
}
