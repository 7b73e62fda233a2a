//! OCI distribution for quai: the registry server (`quai registry serve`)
//! and the client that pulls and pushes images.

pub mod digest;
pub mod fsutil;
pub mod manifest;
pub mod names;
pub mod server;

pub use digest::{Digest, DigestError};
pub mod client;
