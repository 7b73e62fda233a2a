//! quai's images: content-addressed storage of blobs, the image formats
//! (OCI layout, docker-archive, manifests, indexes, configs), layers unpacked
//! once per chain id into overlay lower dirs, and the snapshots containers
//! run on. See docs/architecture.md, section "Images".

pub mod content;
pub mod digest;
pub mod error;
pub mod reference;

pub use error::{Error, Result};
pub mod apply;
pub mod archive;
pub mod changes;
pub mod compression;
pub mod diff;
pub mod hello;
pub mod import;
pub mod layer_ingest;
pub mod snapshot;
pub mod spec;
pub mod store;
pub mod time;
