//! bank-adapter: turns whatever a supervising bank sends (ISO 20022 camt,
//! SWIFT MT940/MT942, CSV exports) into one normalized, exact model, and is
//! the only place that talks to a bank over the network.

pub mod client;
#[cfg(feature = "fake-bank")]
pub mod fake_bank;
pub mod ingest;
pub mod instruction;
pub mod model;
pub mod parse;
pub mod render;
pub mod secret;
pub mod signature;

pub use model::{Balance, Format, Line, LineDetail, LineStatus, ParseOutput, SourceRef, Statement};
pub use parse::{parse, ParseError};
