//! quai's images: content-addressed storage of blobs, the image formats
//! (OCI layout, docker-archive, manifests, indexes, configs), layers unpacked
//! once per chain id into overlay lower dirs, and the snapshots containers
//! run on. See docs/architecture.md, section "Images".

pub mod digest;
pub mod reference;
pub mod content;
pub mod error;

pub use error::{Error, Result};
pub mod compression;
pub mod spec;
pub mod apply;
pub mod diff;
pub mod time;
pub mod store;
pub mod hello;
pub mod archive;
pub mod changes;
pub mod import;
pub mod snapshot;
