//! Entering a container's namespaces: new ones are created by clone (or
//! unshare), existing ones are joined with setns through descriptors opened
//! before any process is cloned, so that the files cannot be swapped
//! between validation and use.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::config::{namespace_name, NamespaceRequest};
use crate::error::{Result, RuntimeError};
use crate::process::sys;

/// A namespace to join, already opened and checked to be of its type.
#[derive(Debug)]
pub struct NamespaceFile {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    fd: OwnedFd,
}

/// The clone flag of a namespace type (the spec's enum uses the values).
pub fn clone_flag(typ: LinuxNamespaceType) -> i32 {
    typ as i32
}

fn link_type(typ: LinuxNamespaceType) -> LinkNameSpaceType {
    match typ {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

impl NamespaceFile {
    /// Opens `path` and checks that it is a namespace of type `typ`.
    pub fn open(typ: LinuxNamespaceType, path: &Path) -> Result<NamespaceFile> {
        let what = || format!("{} namespace {}", namespace_name(typ), path.display());
        let file = File::open(path).map_err(|e| RuntimeError::io(what(), e))?;
        let fd = OwnedFd::from(file);
        match sys::namespace_type(fd.as_fd()) {
            Ok(t) if t == clone_flag(typ) => Ok(NamespaceFile {
                typ,
                path: path.to_path_buf(),
                fd,
            }),
            Ok(_) => Err(RuntimeError::io(
                what(),
                std::io::Error::other("is a namespace of another type"),
            )),
            Err(e) => Err(RuntimeError::io(
                what(),
                std::io::Error::other(format!("is not a namespace file ({e})")),
            )),
        }
    }

    pub fn join(&self) -> Result<()> {
        move_into_link_name_space(self.fd.as_fd(), Some(link_type(self.typ))).map_err(|e| {
            RuntimeError::io(
                format!(
                    "join {} namespace {}",
                    namespace_name(self.typ),
                    self.path.display()
                ),
                e,
            )
        })
    }
}

/// Opens every namespace the config joins, user namespace first and mount
/// namespace last, the order in which they must be entered.
pub fn open_joined(req: &NamespaceRequest) -> Result<Vec<NamespaceFile>> {
    let mut files = req
        .join
        .iter()
        .map(|(typ, path)| NamespaceFile::open(*typ, path))
        .collect::<Result<Vec<_>>>()?;
    files.sort_by_key(|f| match f.typ {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    Ok(files)
}

/// CLONE_NEW* flags of the namespaces to create.
pub fn new_flags(req: &NamespaceRequest) -> i32 {
    req.new.iter().fold(0, |acc, t| acc | clone_flag(*t))
}
