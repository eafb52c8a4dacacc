//! `orgline`: the command-line entry point. A thin shell over the workspace's crates.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the allocator is a measurable share of the work of encoding events.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "orgline",
    version,
    about = "Event-sourced backend for an RPA organization console"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk the log and check every record's CRC, position, version and hash chain.
    /// Prints `OK <events> events`, or the first position that does not hold (exit 1).
    Verify {
        /// The store's data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { data } => verify(&data),
    }
}

fn verify(data: &std::path::Path) -> ExitCode {
    match store::verify::verify(data) {
        Ok(report) => {
            println!(
                "OK {} events ({} streams, {} segments)",
                report.events, report.streams, report.segments
            );
            ExitCode::SUCCESS
        }
        Err(store::StoreError::Corrupt { position, reason }) => {
            println!("CORRUPT at position {position}: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("verify failed: {e}");
            ExitCode::from(2)
        }
    }
}
