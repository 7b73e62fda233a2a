//! Linux security modules: an AppArmor profile or SELinux label requested by
//! the config is applied to the container process at its execve; a host
//! without that module makes the config fail before anything is created,
//! rather than run the container less confined than asked.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::error::{Result, RuntimeError};

/// True when the running kernel enforces AppArmor.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim_start().starts_with('Y'))
        .unwrap_or(false)
}

/// True when SELinux is active (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuses labels the host cannot apply.
pub fn validate(spec: &Spec) -> Result<()> {
    if let Some(process) = spec.process() {
        validate_process(process)?;
    }
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().as_ref());
    if let Some(label) = mount_label {
        if !label.is_empty() && !selinux_enabled() {
            return Err(RuntimeError::config(
                "linux.mountLabel",
                format!("label {label:?} requested but SELinux is not enabled on this host"),
            ));
        }
    }
    Ok(())
}

/// Refuses process labels the host cannot apply.
pub fn validate_process(process: &Process) -> Result<()> {
    if let Some(profile) = process.apparmor_profile().as_ref() {
        if !profile.is_empty() && !apparmor_enabled() {
            return Err(RuntimeError::config(
                "process.apparmorProfile",
                format!("profile {profile:?} requested but AppArmor is not enabled on this host"),
            ));
        }
    }
    if let Some(label) = process.selinux_label().as_ref() {
        if !label.is_empty() && !selinux_enabled() {
            return Err(RuntimeError::config(
                "process.selinuxLabel",
                format!("label {label:?} requested but SELinux is not enabled on this host"),
            ));
        }
    }
    Ok(())
}

/// Arranges for the next execve of the calling thread to enter the given
/// AppArmor profile and/or SELinux context. Runs in the container's init (or
/// exec'd process) while the host's /proc is still reachable.
pub fn set_exec_labels(apparmor_profile: Option<&str>, selinux_label: Option<&str>) -> Result<()> {
    if let Some(profile) = apparmor_profile.filter(|p| !p.is_empty()) {
        // The LSM-specific directory exists on kernels with LSM stacking;
        // older kernels only have the shared attr/exec file.
        let stacked = Path::new("/proc/thread-self/attr/apparmor/exec");
        let path = if stacked.exists() {
            stacked
        } else {
            Path::new("/proc/thread-self/attr/exec")
        };
        write_attr(path, format!("exec {profile}").as_bytes())
            .map_err(|e| RuntimeError::io(format!("apply AppArmor profile {profile:?}"), e))?;
    }
    if let Some(label) = selinux_label.filter(|l| !l.is_empty()) {
        write_attr(Path::new("/proc/thread-self/attr/exec"), label.as_bytes())
            .map_err(|e| RuntimeError::io(format!("apply SELinux label {label:?}"), e))?;
    }
    Ok(())
}

fn write_attr(path: &Path, value: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.write_all(value)
}
