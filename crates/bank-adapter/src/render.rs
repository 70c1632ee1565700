//! Rendering normalized statements back into bank formats: for the fake
//! bank, for round-trip tests, and for banks that take files.

pub mod camt053;
pub mod mt940;
