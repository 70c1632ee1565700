//! The pure domain: money, the chart of accounts, entries and their posting
//! rules, rule packs and their working-day calendar, bank feed records,
//! reconciliation (the matcher and what is booked from it) and run-off risk
//! signals. No I/O, no clock, no floats: callers pass `now` in.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod accounts;
pub mod alerts;
pub mod approvals;
pub mod books;
pub mod bounds;
pub mod chain;
pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod feeds;
pub mod history;
pub mod ids;
pub mod journal;
pub mod lessons;
pub mod money;
pub mod policy;
pub mod recon;
pub mod refunds;
pub mod registry;
pub mod replay;
pub mod risk;
pub mod statements;
pub mod webhooks;
pub mod wire;
