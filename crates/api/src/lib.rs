//! The `escrow-ledger` binary's library: the command line, the HTTP service
//! and the reports they share. `main.rs` only parses and dispatches.

/// The process's allocator, for the binary, the benchmarks and the tests
/// alike. A scan builds and drops millions of small values (rows, entries,
/// postings, strings), and under glibc's allocator its bookkeeping
/// (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`) took about 40% of
/// the national risk scan's CPU (BENCHMARKS.md, "A faster allocator").
/// Its `override` feature makes it the C code's `malloc` too: the SQLite
/// that sqlx bundles allocates every row's values on the connection's
/// thread and the reading task frees them, which under glibc took a
/// quarter of a daily risk scan's CPU (BENCHMARKS.md, "SQLite without its
/// allocation counter").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
