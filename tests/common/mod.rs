//! Shared helpers for the integration tests (`mod common;` in each test file).

pub mod proxy;
pub mod samba;
pub mod server_process;
pub mod slapd;
pub mod teamsync;
