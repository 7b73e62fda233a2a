#![recursion_limit = "256"]
//! quai's engine: containers, volumes and events over the OCI runtime and
//! the image store, daemonless. The CLI (and the API server) call it
//! directly; concurrent processes coordinate through `quai.db` (SQLite in
//! WAL mode) and per-container file locks. Each running container has a
//! monitor process ([`shim`]) that holds its stdio and records its exit.

pub mod archive;
pub mod client;
pub mod control;
pub mod create;
pub mod devices;
mod engine;
pub mod error;
pub mod etc_files;
pub mod events;
pub mod exec;
pub mod failpoint;
pub mod fsops;
pub mod ids;
pub mod init;
pub mod initlayer;
pub mod inspect;
pub mod lifecycle;
pub mod lock;
pub mod logs;
pub mod manage;
pub mod mounts;
pub mod netsetup;
pub mod networks;
pub mod paths;
pub mod proto;
pub mod record;
pub mod remove;
pub mod resources;
pub mod shim;
pub mod spec;
pub mod sys;
pub mod timeline;
pub mod types;
pub mod units;
pub mod users;
pub mod volumes;

pub use create::{CreateRequest, Created};
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use lifecycle::Streams;
