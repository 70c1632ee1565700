//! The `escrow-ledger` binary's library: the command line, the HTTP service
//! and the reports they share. `main.rs` only parses and dispatches.

pub mod access;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod http;
pub mod serve;
pub mod simulate;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod token;
