//! Builds quai-init (init/init.c) into a static program with no libc, which
//! src/init.rs embeds: `quai run --init` bind-mounts it into the container
//! as its pid 1. Needs only gcc (Debian's build-essential).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/init.c";
    println!("cargo:rerun-if-changed={src}");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR set by cargo")).join("quai-init");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    let status = Command::new(&cc)
        .args([
            "-static",
            "-nostdlib",
            "-Os",
            "-fno-asynchronous-unwind-tables",
            "-fno-stack-protector",
            "-fno-builtin",
            "-Wl,--build-id=none",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("run {cc} to build {src} (install build-essential): {e}"));
    assert!(status.success(), "{cc} failed to build {src}");
}
