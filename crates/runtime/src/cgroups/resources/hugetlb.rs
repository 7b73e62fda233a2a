//! `linux.resources.hugepageLimits` → hugetlb controller files. Where the
//! kernel has them (5.7+), the reservation limits get the same value, so
//! that a mapping cannot reserve pages it would be killed for faulting in.

use std::io;
use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::{files, CgroupError};

pub(crate) fn apply(
    dir: &Path,
    limits: &[LinuxHugepageLimit],
    v2: bool,
) -> Result<(), CgroupError> {
    let (limit_suffix, rsvd_suffix) = if v2 {
        ("max", "rsvd.max")
    } else {
        ("limit_in_bytes", "rsvd.limit_in_bytes")
    };
    for l in limits {
        let size = l.page_size();
        let value = l.limit().to_string();
        let file = format!("hugetlb.{size}.{limit_suffix}");
        if !files::exists(dir, &file) {
            return Err(CgroupError::unsupported(
                format!("huge page size {size}"),
                format!("{} does not exist", dir.join(&file).display()),
            ));
        }
        files::write(dir, &file, &value)?;
        let rsvd = format!("hugetlb.{size}.{rsvd_suffix}");
        match files::write_raw(dir, &rsvd, &value) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(files::write_error(dir, &rsvd, &value, e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Page sizes as cgroup file names spell them ("2MB", "1GB"), from
/// `/sys/kernel/mm/hugepages/hugepages-<kB>kB`.
pub fn host_page_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kib, page_size_name(kib)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

fn page_size_name(kib: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut value = kib;
    let mut unit = 0;
    while value >= 1024 && value.is_multiple_of(1024) && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

/// Checks the page size spelling (`<number><KB|MB|GB|TB>`).
pub(crate) fn validate_page_size(field: &str, size: &str) -> Result<(), CgroupError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || digits.parse::<u64>().is_err()
        || !["KB", "MB", "GB", "TB"].contains(&unit)
    {
        return Err(CgroupError::invalid(
            field,
            format!("{size:?} is not a huge page size like \"2MB\" or \"1GB\""),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_named_like_the_kernel() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        validate_page_size("f", "2MB").unwrap();
        validate_page_size("f", "1GB").unwrap();
        assert!(validate_page_size("f", "2M").is_err());
        assert!(validate_page_size("f", "MB").is_err());
        assert!(validate_page_size("f", "2 MB").is_err());
    }
}
