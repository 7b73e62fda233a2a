//! `/etc/hosts` for a container, laid out as docker does: the localhost
//! lines, then `--add-host` entries, then the container's own addresses.

use std::net::IpAddr;

use crate::error::{NetError, Result};

/// The `--add-host` value docker replaces with the host's gateway address.
pub const HOST_GATEWAY: &str = "host-gateway";

const LOCALHOST_LINES: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// One `--add-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub address: IpAddr,
}

/// Parses `--add-host NAME:IP` (or `NAME=IP`; IPv6 in brackets or bare;
/// `host-gateway` for `host_gateway`).
pub fn parse_add_host(raw: &str, host_gateway: Option<IpAddr>) -> Result<ExtraHost> {
    let bad = || NetError::InvalidConfig(format!("bad format for add-host: {raw:?}"));
    let (name, address) = raw
        .split_once('=')
        .or_else(|| raw.split_once(':'))
        .ok_or_else(bad)?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let address = address.trim();
    let address = if address == HOST_GATEWAY {
        host_gateway.ok_or_else(|| {
            NetError::InvalidConfig(
                "unable to derive the IP value for host-gateway: no gateway is known".into(),
            )
        })?
    } else {
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        bare.parse().map_err(|_| {
            NetError::InvalidConfig(format!("invalid IP address in add-host: {address:?}"))
        })?
    };
    Ok(ExtraHost {
        name: name.to_owned(),
        address,
    })
}

/// The file. `own` are the container's addresses on its networks; each
/// gets a line naming the container by hostname (and `hostname.domain`
/// first when a domain name is set).
pub fn render(
    hostname: &str,
    domainname: Option<&str>,
    own: &[IpAddr],
    extra: &[ExtraHost],
) -> String {
    let mut out = String::from(LOCALHOST_LINES);
    for host in extra {
        out.push_str(&format!("{}\t{}\n", host.address, host.name));
    }
    let names = match domainname.filter(|d| !d.is_empty()) {
        Some(domain) => format!("{hostname}.{domain} {hostname}"),
        None => hostname.to_owned(),
    };
    for address in own {
        out.push_str(&format!("{address}\t{names}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_like_docker() {
        let extra = vec![
            parse_add_host("db:10.0.0.5", None).unwrap(),
            parse_add_host("gw=host-gateway", Some("172.17.0.1".parse().unwrap())).unwrap(),
            parse_add_host("six:::1", None).unwrap(),
            parse_add_host("br=[fd00::1]", None).unwrap(),
        ];
        let text = render("abc123", None, &["172.17.0.2".parse().unwrap()], &extra);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
        assert_eq!(
            &lines[6..],
            [
                "10.0.0.5\tdb",
                "172.17.0.1\tgw",
                "::1\tsix",
                "fd00::1\tbr",
                "172.17.0.2\tabc123"
            ]
        );
    }

    #[test]
    fn domain_name_comes_first() {
        let text = render(
            "web",
            Some("example.org"),
            &["10.1.0.2".parse().unwrap()],
            &[],
        );
        assert!(text.ends_with("10.1.0.2\tweb.example.org web\n"));
    }

    #[test]
    fn bad_entries() {
        assert_eq!(
            parse_add_host("nocolon", None).unwrap_err().to_string(),
            "bad format for add-host: \"nocolon\""
        );
        assert_eq!(
            parse_add_host("a:notanip", None).unwrap_err().to_string(),
            "invalid IP address in add-host: \"notanip\""
        );
        assert!(parse_add_host("a:host-gateway", None).is_err());
        assert!(parse_add_host(":1.2.3.4", None).is_err());
    }
}
