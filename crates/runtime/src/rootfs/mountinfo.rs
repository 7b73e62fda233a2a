//! `/proc/self/mountinfo` and `/proc/self/cgroup`, read from the host's
//! procfs before the root is switched (and checked to be a procfs).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::error::SysContext;
use super::RootfsError;
use crate::safe_path::{self, PseudoFs};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount id (what statx reports as `stx_mnt_id`).
    pub id: u64,
    /// The directory of the file system mounted here (`/` for a whole one).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_options: Vec<String>,
}

/// Reads a file of the procfs mounted at `/proc`, refusing anything else.
pub fn read_proc_file(path: &str) -> Result<String, RootfsError> {
    let fd = rfs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .or_sys(|| format!("open {path}"))?;
    safe_path::verify_pseudo_fs(fd.as_fd(), PseudoFs::Proc).or_sys(|| format!("check {path}"))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .or_sys(|| format!("read {path}"))?;
    Ok(text)
}

pub fn mounts() -> Result<Vec<MountEntry>, RootfsError> {
    let text = read_proc_file("/proc/self/mountinfo")?;
    text.lines()
        .map(|line| {
            parse_line(line).ok_or_else(|| {
                RootfsError::sys(
                    format!("parse /proc/self/mountinfo line {line:?}"),
                    rustix::io::Errno::INVAL,
                )
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    Some(MountEntry {
        id: left.first()?.parse().ok()?,
        root: PathBuf::from(unescape(left.get(3)?)),
        mount_point: PathBuf::from(unescape(left.get(4)?)),
        fstype: unescape(fstype),
        super_options: super_options.split(',').map(unescape).collect(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if let Ok(value) = u8::try_from(value) {
                    out.push(value);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/cgroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMembership {
    /// Controllers (`cpu`, `cpuacct`) or a name (`name=systemd`); empty for
    /// the cgroup v2 hierarchy.
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

pub fn own_cgroups() -> Result<Vec<CgroupMembership>, RootfsError> {
    let text = read_proc_file("/proc/self/cgroup")?;
    Ok(parse_cgroups(&text))
}

fn parse_cgroups(text: &str) -> Vec<CgroupMembership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(CgroupMembership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_mountinfo_lines_with_optional_fields_and_escapes() {
        let line = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct";
        let m = parse_line(line).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m.fstype, "cgroup");
        assert_eq!(m.super_options, vec!["rw", "cpu", "cpuacct"]);
        let m = parse_line("50 1 8:1 /sub\\040dir /mnt/a\\134b rw - ext4 /dev/sda1 rw").unwrap();
        assert_eq!(m.root, PathBuf::from("/sub dir"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt/a\\b"));
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn parses_proc_self_cgroup() {
        let got =
            parse_cgroups("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/user.slice\n");
        assert_eq!(got[0].controllers, vec!["memory"]);
        assert_eq!(got[0].path, PathBuf::from("/a/b"));
        assert_eq!(got[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(got[2].controllers, vec!["name=systemd"]);
        assert!(got[3].controllers.is_empty());
        assert_eq!(got[3].path, PathBuf::from("/user.slice"));
    }

    #[test]
    fn reads_the_real_mountinfo() {
        let mounts = mounts().unwrap();
        assert!(mounts.iter().any(|m| m.mount_point == Path::new("/")));
        assert!(mounts.iter().any(|m| m.fstype == "proc"));
    }
}
