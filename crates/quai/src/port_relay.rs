//! `quai internal port-relay`: relays a container's published TCP ports
//! reached on `[::1]` (started by its monitor; see quai-net's `relay`).

use std::os::fd::AsFd;

use anyhow::Context;

pub fn run() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    quai_net::relay::serve(stdin.as_fd()).context("port relay for [::1]")
}
