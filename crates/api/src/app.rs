//! The application layer: each use case once, typed in and typed out, over
//! the store. The command line and the HTTP service are thin adapters that
//! parse, call a use case and render; nothing here knows clap, axum,
//! `println!`, `serde_json::Value` or `anyhow`.
//!
//! Use cases move here one by one (see ARCHITECTURE.md); those not yet
//! moved still live in the command modules (`feed.rs`, `workflow.rs`).

pub mod error;
pub mod jurisdictions;
pub mod reconcile;
pub mod risk;

pub use error::{AppError, AppResult, Kind};
