//! `orgline`: the command-line entry point. A thin shell over the workspace's crates.

mod seed;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the allocator is a measurable share of the work of encoding events.
/// `--features heap-profile` keeps the system allocator, which heaptrack can follow.
#[cfg(not(feature = "heap-profile"))]
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
    /// Stream events out of the log for analysts: JSON Lines (one envelope per line)
    /// or CSV.
    Export {
        #[arg(long)]
        data: PathBuf,
        /// Only this organization's events (through the org index).
        #[arg(long)]
        org: Option<uuid::Uuid>,
        /// First position (inclusive).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position (inclusive).
        #[arg(long)]
        to: Option<u64>,
        /// Only these event types, comma-separated.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Serve the GraphQL API (GraphiQL at `/`, the endpoint at `/graphql`).
    /// `ORGLINE_OPERATOR_TOKEN` sets the operator token.
    Serve {
        /// The store's data directory (created if missing).
        #[arg(long, default_value = "orgline-data")]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Load the demo organization into an empty store and print its sign-in details.
        #[arg(long)]
        demo: bool,
    },
    /// Print the GraphQL schema (SDL) the server serves.
    Schema,
    /// Write a generated history of realistic organizations into an empty store, with
    /// a progress bar; prints the demo organization's people to sign in as.
    Seed {
        /// The store's data directory (created if missing; must hold no events).
        #[arg(long)]
        data: PathBuf,
        /// demo (one organization), small (~100k events), medium (~1M) or large (~10M).
        #[arg(long)]
        scale: fixtures::generator::Scale,
        /// Seed of the generator's random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// When the history ends (RFC 3339; now when absent). The same seed and end
        /// write the same history.
        #[arg(long)]
        end: Option<String>,
    },
    /// Rebuild projections from the start of the log, with a progress bar.
    Rebuild {
        #[arg(long)]
        data: PathBuf,
        /// One projection (accounts, audit, console, credits, runs); all when absent.
        #[arg(long)]
        projection: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Jsonl,
    Csv,
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
        Command::Export {
            data,
            org,
            from,
            to,
            types,
            format,
        } => report(export(&data, org, from, to, &types, format)),
        Command::Rebuild { data, projection } => {
            report(rebuild(&data, projection.as_deref()).map(|()| checkpoint(&data)))
        }
        Command::Seed {
            data,
            scale,
            seed,
            end,
        } => report(seed::run(&data, scale, seed, end.as_deref()).map(|()| checkpoint(&data))),
        Command::Serve { data, listen, demo } => report(runtime().and_then(|rt| {
            rt.block_on(graphql::serve::run(graphql::serve::ServeOptions {
                data: data.clone(),
                listen,
                demo,
            }))?;
            // Every task, and with them every handle on the store, ends with the runtime.
            drop(rt);
            checkpoint(&data);
            Ok(())
        })),
        Command::Schema => {
            print!("{}", graphql::sdl());
            ExitCode::SUCCESS
        }
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A clean stop's last step: sled's snapshot written now, so the next start is quick.
fn checkpoint(data: &std::path::Path) {
    match store::EmbeddedStore::checkpoint(data) {
        Ok(took) => tracing::info!(
            ms = took.as_millis(),
            "store checkpointed for a quick start"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint at stop: the next start replays sled's log")
        }
    }
}

/// A worker per core (tokio's default; `TOKIO_WORKER_THREADS` overrides it). Blocking
/// work — Argon2, parsing, large validations — runs on tokio's blocking pool instead.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Events read per call while exporting.
const EXPORT_PAGE_EVENTS: usize = 5_000;

fn export(
    data: &std::path::Path,
    org: Option<uuid::Uuid>,
    from: u64,
    to: Option<u64>,
    types: &[String],
    format: Format,
) -> anyhow::Result<()> {
    use std::io::Write;
    use store::EventStore;
    anyhow::ensure!(
        data.join("log").is_dir(),
        "{} holds no Orgline store",
        data.display()
    );
    let store = store::EmbeddedStore::open(data)?;
    let rt = runtime()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut csv = (format == Format::Csv).then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = &mut csv {
        w.write_record([
            "position",
            "stream",
            "version",
            "id",
            "type",
            "schema",
            "occurred_at",
            "actor_kind",
            "actor_id",
            "org",
            "hash",
            "data",
        ])?;
    }
    let mut next = from.max(1);
    'pages: loop {
        let page = rt.block_on(async {
            match org {
                Some(o) => store.read_org(o, next, EXPORT_PAGE_EVENTS).await,
                None => store.read_all(next, EXPORT_PAGE_EVENTS).await,
            }
        })?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in &page {
            if to.is_some_and(|t| e.position > t) {
                break 'pages;
            }
            if !types.is_empty() && !types.contains(&e.event_type) {
                continue;
            }
            match &mut csv {
                None => {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
                Some(w) => {
                    let occurred = e
                        .meta
                        .occurred_at
                        .format(&time::format_description::well_known::Rfc3339)?;
                    let kind = serde_json::to_value(e.meta.actor.kind)?
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    w.write_record([
                        e.position.to_string(),
                        e.stream.clone(),
                        e.version.to_string(),
                        e.id.to_string(),
                        e.event_type.clone(),
                        e.schema.to_string(),
                        occurred,
                        kind,
                        e.meta.actor.id.clone(),
                        e.meta.org.map(|o| o.to_string()).unwrap_or_default(),
                        e.hash_hex(),
                        e.data.get().to_owned(),
                    ])?;
                }
            }
        }
        // CSV rows are handed on page by page, so memory stays bounded.
        if let Some(w) = csv.take() {
            out.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
            csv = Some(csv::Writer::from_writer(Vec::new()));
        }
        next = last + 1;
    }
    if let Some(w) = csv {
        out.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    out.flush()?;
    Ok(())
}

fn rebuild(data: &std::path::Path, only: Option<&str>) -> anyhow::Result<()> {
    use projections::{
        Projection, accounts::Accounts, audit::Audit, console::Console, credits::CreditsProjection,
        runner, runs::Runs,
    };
    use std::sync::Arc;
    use store::EventStore;
    anyhow::ensure!(
        data.join("log").is_dir(),
        "{} holds no Orgline store",
        data.display()
    );
    let names = [
        Accounts::NAME,
        Audit::NAME,
        Console::NAME,
        CreditsProjection::NAME,
        Runs::NAME,
    ];
    if let Some(n) = only {
        anyhow::ensure!(
            names.contains(&n),
            "unknown projection {n:?} (one of {})",
            names.join(", ")
        );
    }
    let store = Arc::new(store::EmbeddedStore::open(data)?);
    let db = store.db().clone();
    let rt = runtime()?;
    rt.block_on(async {
        let head = store.head().await?;
        // Rebuilt together, as the server runs them: one read of the log for all.
        let dyn_store: Arc<dyn EventStore> = store.clone();
        let feed = projections::feed::Feed::new(dyn_store);
        let bars = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )?;
        let mut rebuilding = Vec::new();
        for name in names.into_iter().filter(|n| only.is_none_or(|o| o == *n)) {
            let handle = match name {
                "accounts" => runner::spawn_fed(&feed, db.clone(), Accounts::default)?,
                "audit" => runner::spawn_fed(&feed, db.clone(), Audit::default)?,
                "console" => runner::spawn_fed(&feed, db.clone(), Console::default)?,
                "runs" => runner::spawn_fed(&feed, db.clone(), Runs::default)?,
                _ => runner::spawn_fed(&feed, db.clone(), CreditsProjection::default)?,
            };
            let old = handle.tree().name();
            handle.rebuild().await?;
            let bar = bars.add(indicatif::ProgressBar::new(head));
            bar.set_style(style.clone());
            bar.set_message(name);
            rebuilding.push((name, handle, old, bar));
        }
        while !rebuilding.is_empty() {
            let mut still = Vec::new();
            for (name, handle, old, bar) in rebuilding {
                let s = handle.status();
                if let projections::ProjectionState::Failed(e) = &s.state {
                    anyhow::bail!("{name} failed: {e}");
                }
                bar.set_position(s.position.min(head));
                if handle.tree().name() != old && handle.position() >= head {
                    bar.finish();
                    handle.stop().await;
                } else {
                    still.push((name, handle, old, bar));
                }
            }
            rebuilding = still;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    })?;
    drop(store);
    Ok(())
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
