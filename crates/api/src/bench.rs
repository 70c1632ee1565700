//! `escrow-ledger bench post`: entries per second through the ledger, and in
//! the same run a raw-SQL baseline writing the same rows without the domain.
pub use self::post::{run, BenchCommand};
mod post;
