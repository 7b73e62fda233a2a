//! Link flags of the `quai` binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Every `quai-runtime run` and monitor executes this binary, and a
        // position-independent 28 MB program spends a good part of its
        // start relocating itself: packed relative relocations (DT_RELR,
        // glibc >= 2.36) make that table ~100x smaller and faster to apply.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
