//! Subcommands of the `quai` command line, one module per area.

pub mod login;
pub mod registry;
