//! Embedded DNS server (see server.rs).
