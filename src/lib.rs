//! teamsync keeps the team memberships of service accounts in a local SQLite
//! store in line with their security-group membership in Active Directory.
//!
//! # Layout
//! Arrows point down only:
//! `main -> commands -> daemon -> sync -> {directory, store} -> config -> model`.
//!
//! - [`model`]: shared nouns (names, SIDs, identities, changes); no I/O.
//! - [`config`]: YAML to a validated [`config::Config`]; the `Secret` type.
//! - [`store`]: the SQLite account store; the only place rusqlite appears.
//! - [`directory`]: "which security groups is this AD account in?"; the only
//!   place ldap3 appears.
//! - [`sync`]: one reconcile pass: `plan` decides (pure), `mod` wires the I/O,
//!   `report` sums up.
//! - [`daemon`]: the scheduled worker (`teamsync daemon`): when to run a
//!   pass, signals, sd_notify; [`metrics`]: Prometheus metrics.
//! - [`apikey`]: generating and hashing API keys.
//! - [`cli`]: the command line; [`commands`]: what each command does.
//! - [`exit`]: the documented exit codes and which error maps to which.
//! - [`krb5_env`]: the environment the Kerberos library needs (GSSAPI binds).

pub mod apikey;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod exit;
pub mod krb5_env;
pub mod metrics;
pub mod model;
pub mod store;
pub mod sync;
