//! The `escrow-ledger` binary: parses the command line, sets up logging
//! (and traces, for the service), hands over to the command, and sends the
//! traces still queued before it exits.

use api::{cli, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    let cli = cli::Cli::parse();
    let telemetry = telemetry::init(cli::otlp_endpoint(&cli).as_deref());
    let code = match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", cli::error_chain(&error));
            std::process::ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

/// `escrow-ledger … | head` closes our stdout early. Rust ignores SIGPIPE,
/// so the next `println!` panics ("failed printing to stdout: Broken
/// pipe"); a reader that stopped reading is not an error of ours. Exit as
/// a program stopped by SIGPIPE would (128 + 13), without a panic message.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
