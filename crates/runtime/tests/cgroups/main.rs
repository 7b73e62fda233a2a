//! cgroup integration tests, as root against the real kernel (`host`,
//! `unified`) and against fake cgroup trees for what this machine's kernel
//! configuration cannot show (`fake_tree`). See the README's "cgroups:
//! what is tested how".

mod fake_tree;
mod fixtures;
mod host;
mod unified;
