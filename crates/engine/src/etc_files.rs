//! The `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` a container
//! sees: files in its directory, bind-mounted over the image's, written
//! (atomically) at every start as docker does.

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};

/// `/etc/hosts` of a container with its own network namespace.
pub fn hosts(hostname: &str, addresses: &[String]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::\tip6-localnet\n\
         ff00::\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for a in addresses {
        s.push_str(&format!("{a}\t{hostname}\n"));
    }
    s
}

/// `/etc/resolv.conf` for a container with its own network namespace: the
/// host's, without loopback name servers (unreachable from the
/// container); docker's public fallbacks when none is left.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" || addr.is_empty() {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Writes `content` to `path` through a temporary file and a rename, so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, content).at("write", &tmp)?;
    fs::rename(&tmp, path).at("rename into place", path)
}

/// Writes the three files into `dir` for a container named `hostname`;
/// with the host's network they are the host's own.
pub fn write_all(
    dir: &Path,
    hostname: &str,
    host_network: bool,
    paths: (&Path, &Path, &Path),
) -> Result<()> {
    let (hostname_path, hosts_path, resolv_path) = paths;
    fs::create_dir_all(dir).at("create container directory", dir)?;
    write_atomic(hostname_path, format!("{hostname}\n").as_bytes())?;
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host_network {
        let host_hosts = fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts(hostname, &[]));
        write_atomic(hosts_path, host_hosts.as_bytes())?;
        write_atomic(resolv_path, host_resolv.as_bytes())?;
    } else {
        write_atomic(hosts_path, hosts(hostname, &[]).as_bytes())?;
        write_atomic(resolv_path, resolv_conf(&host_resolv).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_dropped() {
        let host = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "# generated\nsearch example.com\nnameserver 10.0.0.2\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn hosts_lists_localhost_and_addresses() {
        let h = hosts("web", &["10.1.0.2".into()]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.1.0.2\tweb\n"));
    }
}
