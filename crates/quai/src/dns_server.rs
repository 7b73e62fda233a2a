//! `quai internal dns-server`: the embedded DNS server of one user-defined
//! network, started by the engine (see quai-net's `dns` module).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct DnsServerArgs {
    /// The network's DNS configuration file (JSON, rewritten by the engine)
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: DnsServerArgs) -> anyhow::Result<()> {
    quai_net::dns::serve(&args.config, || {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", quai_net::dns::READY_LINE);
        let _ = stdout.flush();
    })
    .with_context(|| format!("DNS server for {}", args.config.display()))
}
