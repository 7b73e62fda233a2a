//! `--user name[:group]` resolved against the container's own
//! `/etc/passwd` and `/etc/group`, as docker does at start: names are looked
//! up, numbers are taken as they are, the user's supplementary groups and
//! home directory come along.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From passwd, for `HOME` when the environment does not set it.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (docker's `User`: "", "name", "uid", "name:group",
/// "uid:gid") with the given passwd and group file contents.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ResolvedUser> {
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = if let Ok(uid) = user_part.parse::<u32>() {
        users.iter().find(|u| u.uid == uid)
    } else {
        let found = users.iter().find(|u| u.name == user_part);
        if found.is_none() {
            return Err(EngineError::StartFailed {
                message: format!(
                    "unable to find user {user_part}: no matching entries in passwd file"
                ),
                status: 125,
            });
        }
        found
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part
            .parse()
            .map_err(|_| EngineError::invalid(format!("invalid user {user_part:?}")))?,
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| EngineError::StartFailed {
                    message: format!("unable to find group {g}: no matching entries in group file"),
                    status: 125,
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(e) = entry {
        for g in &groups {
            if g.members.iter().any(|m| m == &e.name) && g.gid != gid {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

/// Reads `path` (absolute, inside `rootfs`) without leaving the rootfs
/// (symlinks are clamped to it); None when it does not exist.
pub fn read_in_root(rootfs: &Path, path: &str, limit: u64) -> Result<Option<String>> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| EngineError::path("open root file system", rootfs, e.into()))?;
    let fd = match quai_runtime::safe_path::open_in_root(
        root.as_fd(),
        Path::new(path),
        OFlags::RDONLY,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io(format!("open {path} in the container"), e)),
    };
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_string(&mut text)
        .map_err(|e| EngineError::io(format!("read {path} in the container"), e))?;
    Ok(Some(text))
}

/// Resolves `spec` against the files of the container's root file system.
pub fn resolve_in_root(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let passwd = read_in_root(rootfs, "/etc/passwd", 4 << 20)?;
    let group = read_in_root(rootfs, "/etc/group", 4 << 20)?;
    resolve(spec, passwd.as_deref(), group.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/user:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        let r = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_deref()), (0, 0, Some("/root")));
        let r = resolve("user", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        assert_eq!(r.additional_gids, vec![2000]);
        assert_eq!(r.home.as_deref(), Some("/home/user"));
        let r = resolve("1000:extra", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 2000));
        let r = resolve("4242:4343", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid, r.home), (4242, 4343, None));
        let r = resolve("4242", None, None).unwrap();
        assert_eq!((r.uid, r.gid), (4242, 0));
    }

    #[test]
    fn unknown_names_fail_like_docker() {
        let e = resolve("ghost", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(e.exit_status(), 125);
        let e = resolve("user:ghosts", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(e.to_string().contains("unable to find group ghosts"), "{e}");
        assert!(resolve("ghost", None, None).is_err());
    }
}
