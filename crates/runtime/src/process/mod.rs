//! Building container processes: the init of `create` and the processes of
//! `exec`. Single-threaded code that forks without exec.

pub mod exec;
pub mod foreground;
pub mod init;
pub mod namespaces;
pub mod setup;
pub mod spawn;
pub mod sync;
pub mod sys;
