//! The architectures a seccomp profile can name: how each one appears in
//! `seccomp_data.arch` (its AUDIT_ARCH token), how wide and in which byte order
//! its syscall arguments are, and how its syscall numbers are found.

use oci_spec::runtime::Arch;

use super::syscall_table::{ABSENT, FAMILY_COUNT, SYSCALLS};

/// x32 syscalls are x86_64 syscalls with this bit set in the number; both
/// report `AUDIT_ARCH_X86_64`.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `__AUDIT_ARCH_LE`: set in the token of every little-endian architecture.
const AUDIT_ARCH_LE: u32 = 0x4000_0000;

/// Column of the generated syscall table an architecture reads its numbers
/// from (architectures that differ only in byte order share one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Family {
    X86 = 0,
    X86_64,
    X32,
    Arm,
    Aarch64,
    Loongarch64,
    M68k,
    Mips,
    Mips64,
    Mips64n32,
    Parisc,
    Parisc64,
    Ppc,
    Ppc64,
    Riscv64,
    S390,
    S390x,
    Sh,
}

// The generated table and this enum must agree on the number of columns.
const _: () = assert!(Family::Sh as usize + 1 == FAMILY_COUNT);

/// One architecture of a seccomp profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ArchSpec {
    /// The OCI / libseccomp name, `SCMP_ARCH_*`.
    pub name: &'static str,
    /// The value the kernel puts in `seccomp_data.arch` for this ABI.
    pub audit_token: u32,
    family: Family,
    /// Added to (or, for x32, or-ed into) the table's numbers: the ABI's
    /// syscall base.
    number_base: u32,
    /// Arguments are 64-bit: comparisons need both 32-bit halves. On 32-bit
    /// ABIs only the low word is compared, as libseccomp does.
    pub wide_args: bool,
}

impl ArchSpec {
    const fn new(
        name: &'static str,
        audit_token: u32,
        family: Family,
        number_base: u32,
        wide_args: bool,
    ) -> Self {
        ArchSpec {
            name,
            audit_token,
            family,
            number_base,
            wide_args,
        }
    }

    /// The architecture of the running kernel's native ABI.
    pub fn native() -> Self {
        Self::from_oci(Arch::ScmpArchNative)
    }

    pub fn from_oci(arch: Arch) -> Self {
        match arch {
            Arch::ScmpArchNative => Self::from_oci(NATIVE),
            Arch::ScmpArchX86 => X86,
            Arch::ScmpArchX86_64 => X86_64,
            Arch::ScmpArchX32 => X32,
            Arch::ScmpArchArm => ArchSpec::new("SCMP_ARCH_ARM", 0x4000_0028, Family::Arm, 0, false),
            Arch::ScmpArchAarch64 => {
                ArchSpec::new("SCMP_ARCH_AARCH64", 0xc000_00b7, Family::Aarch64, 0, true)
            }
            Arch::ScmpArchMips => {
                ArchSpec::new("SCMP_ARCH_MIPS", 0x0000_0008, Family::Mips, 4000, false)
            }
            Arch::ScmpArchMipsel => {
                ArchSpec::new("SCMP_ARCH_MIPSEL", 0x4000_0008, Family::Mips, 4000, false)
            }
            Arch::ScmpArchMips64 => {
                ArchSpec::new("SCMP_ARCH_MIPS64", 0x8000_0008, Family::Mips64, 5000, true)
            }
            Arch::ScmpArchMipsel64 => ArchSpec::new(
                "SCMP_ARCH_MIPSEL64",
                0xc000_0008,
                Family::Mips64,
                5000,
                true,
            ),
            Arch::ScmpArchMips64n32 => ArchSpec::new(
                "SCMP_ARCH_MIPS64N32",
                0xa000_0008,
                Family::Mips64n32,
                6000,
                false,
            ),
            Arch::ScmpArchMipsel64n32 => ArchSpec::new(
                "SCMP_ARCH_MIPSEL64N32",
                0xe000_0008,
                Family::Mips64n32,
                6000,
                false,
            ),
            Arch::ScmpArchPpc => ArchSpec::new("SCMP_ARCH_PPC", 0x0000_0014, Family::Ppc, 0, false),
            Arch::ScmpArchPpc64 => {
                ArchSpec::new("SCMP_ARCH_PPC64", 0x8000_0015, Family::Ppc64, 0, true)
            }
            Arch::ScmpArchPpc64le => {
                ArchSpec::new("SCMP_ARCH_PPC64LE", 0xc000_0015, Family::Ppc64, 0, true)
            }
            Arch::ScmpArchS390 => {
                ArchSpec::new("SCMP_ARCH_S390", 0x0000_0016, Family::S390, 0, false)
            }
            Arch::ScmpArchS390x => {
                ArchSpec::new("SCMP_ARCH_S390X", 0x8000_0016, Family::S390x, 0, true)
            }
            Arch::ScmpArchParisc => {
                ArchSpec::new("SCMP_ARCH_PARISC", 0x0000_000f, Family::Parisc, 0, false)
            }
            Arch::ScmpArchParisc64 => {
                ArchSpec::new("SCMP_ARCH_PARISC64", 0x8000_000f, Family::Parisc64, 0, true)
            }
            Arch::ScmpArchRiscv64 => {
                ArchSpec::new("SCMP_ARCH_RISCV64", 0xc000_00f3, Family::Riscv64, 0, true)
            }
            Arch::ScmpArchLoongarch64 => ArchSpec::new(
                "SCMP_ARCH_LOONGARCH64",
                0xc000_0102,
                Family::Loongarch64,
                0,
                true,
            ),
            Arch::ScmpArchM68k => {
                ArchSpec::new("SCMP_ARCH_M68K", 0x0000_0004, Family::M68k, 0, false)
            }
            // libseccomp's SCMP_ARCH_SH is little-endian SuperH, SHEB big-endian.
            Arch::ScmpArchSh => ArchSpec::new("SCMP_ARCH_SH", 0x4000_002a, Family::Sh, 0, false),
            Arch::ScmpArchSheb => {
                ArchSpec::new("SCMP_ARCH_SHEB", 0x0000_002a, Family::Sh, 0, false)
            }
        }
    }

    /// Big-endian kernels store each 64-bit argument high word first.
    pub fn big_endian(&self) -> bool {
        self.audit_token & AUDIT_ARCH_LE == 0
    }

    pub fn is_x32(&self) -> bool {
        self.family == Family::X32
    }

    /// Whether this ABI shares its audit token with x86_64 / x32 and so is
    /// told apart by [`X32_SYSCALL_BIT`].
    pub fn splits_on_x32_bit(&self) -> bool {
        matches!(self.family, Family::X86_64 | Family::X32)
    }

    /// s390 multiplexes old calls through syscall 0; runc answers it with
    /// ENOSYS in its stub, and so do we.
    pub fn has_multiplexer_zero(&self) -> bool {
        matches!(self.family, Family::S390 | Family::S390x)
    }

    /// The number of a syscall on this ABI, or `None` when the ABI does not
    /// have it.
    pub fn number(&self, syscall: SyscallId) -> Option<u32> {
        let number = SYSCALLS[usize::from(syscall.0)].1[self.family as usize];
        if number == ABSENT {
            return None;
        }
        Some(if self.is_x32() {
            number | X32_SYSCALL_BIT
        } else {
            number + self.number_base
        })
    }

    /// [`number`](Self::number) by name; `None` also for names our table
    /// does not know.
    pub fn resolve(&self, name: &str) -> Option<u32> {
        self.number(SyscallId::lookup(name)?)
    }
}

/// A syscall known to the generated table (its row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SyscallId(u16);

impl SyscallId {
    pub fn lookup(name: &str) -> Option<SyscallId> {
        let row = SYSCALLS
            .binary_search_by(|(known, _)| known.cmp(&name))
            .ok()?;
        // The table has a few hundred rows.
        Some(SyscallId(row as u16))
    }

    pub fn name(self) -> &'static str {
        SYSCALLS[usize::from(self.0)].0
    }
}

const X86: ArchSpec = ArchSpec::new("SCMP_ARCH_X86", 0x4000_0003, Family::X86, 0, false);
const X86_64: ArchSpec = ArchSpec::new("SCMP_ARCH_X86_64", 0xc000_003e, Family::X86_64, 0, true);
const X32: ArchSpec = ArchSpec::new("SCMP_ARCH_X32", 0xc000_003e, Family::X32, 0, false);

#[cfg(target_arch = "x86_64")]
pub(super) const NATIVE: Arch = Arch::ScmpArchX86_64;
#[cfg(target_arch = "x86")]
pub(super) const NATIVE: Arch = Arch::ScmpArchX86;
#[cfg(target_arch = "aarch64")]
pub(super) const NATIVE: Arch = Arch::ScmpArchAarch64;
#[cfg(target_arch = "arm")]
pub(super) const NATIVE: Arch = Arch::ScmpArchArm;
#[cfg(target_arch = "riscv64")]
pub(super) const NATIVE: Arch = Arch::ScmpArchRiscv64;
#[cfg(target_arch = "loongarch64")]
pub(super) const NATIVE: Arch = Arch::ScmpArchLoongarch64;
#[cfg(target_arch = "s390x")]
pub(super) const NATIVE: Arch = Arch::ScmpArchS390x;
#[cfg(all(target_arch = "powerpc64", target_endian = "little"))]
pub(super) const NATIVE: Arch = Arch::ScmpArchPpc64le;
#[cfg(all(target_arch = "powerpc64", target_endian = "big"))]
pub(super) const NATIVE: Arch = Arch::ScmpArchPpc64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_numbers_with_abi_bases() {
        assert_eq!(X86_64.resolve("mkdir"), Some(83));
        assert_eq!(X86.resolve("mkdir"), Some(39));
        assert_eq!(X32.resolve("mkdir"), Some(83 | X32_SYSCALL_BIT));
        // x32 has its own numbers for some calls.
        assert_eq!(X32.resolve("execve"), Some(520 | X32_SYSCALL_BIT));
        let mips = ArchSpec::from_oci(Arch::ScmpArchMipsel);
        assert_eq!(mips.resolve("write"), Some(4004));
        let arm = ArchSpec::from_oci(Arch::ScmpArchArm);
        assert_eq!(arm.resolve("set_tls"), Some(0x0f_0005));
    }

    #[test]
    fn missing_names_do_not_resolve() {
        assert_eq!(X86_64.resolve("no_such_syscall"), None);
        // aarch64 has no mkdir (only mkdirat).
        let aarch64 = ArchSpec::from_oci(Arch::ScmpArchAarch64);
        assert_eq!(aarch64.resolve("mkdir"), None);
        assert_eq!(X86_64.resolve("socketcall"), None);
    }

    #[test]
    fn byte_order_follows_the_audit_token() {
        assert!(!X86_64.big_endian());
        assert!(ArchSpec::from_oci(Arch::ScmpArchS390x).big_endian());
        assert!(ArchSpec::from_oci(Arch::ScmpArchSheb).big_endian());
        assert!(!ArchSpec::from_oci(Arch::ScmpArchSh).big_endian());
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
