//! The handlers, one module per area of the API.

pub mod approvals;
pub mod audit;
pub mod books;
pub mod events;
pub mod feeds;
pub mod flows;
pub mod lessons;
pub mod ops;
pub mod oversight;
pub mod reconciliation;
pub mod refunds;
pub mod registry;
pub mod releases;
pub mod webhooks;
