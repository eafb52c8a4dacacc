//! `orgline-bench`: the load driver. Each workload prints one line
//! `RESULT workload=<id> value=<number> unit=<unit> …` (see benches/RESULTS.md).
//!
//! ```text
//! cargo run --release -p benches --bin orgline-bench -- all
//! cargo run --release -p benches --bin orgline-bench -- p1 --seconds 20
//! ```

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::{Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// mimalloc: the allocator is a measurable share of the work of encoding events.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// P1's shape, from PERFORMANCE.md.
const P1_WRITERS: usize = 256;
const P1_STREAMS: usize = 10_000;
/// P2's shape.
const P2_EVENTS: u64 = 1_000_000;
const P2_APPEND_EVENTS: u64 = 1_000;
/// Appends a bulk import keeps in flight, so group commit can share syncs.
const P2_IN_FLIGHT: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// The disk's own limits: durable 4 KiB syncs per second and sequential bandwidth.
    Disk,
    /// sled alone doing P1's writes: batches of 256 keys, a flush after each.
    Sled,
    /// Durable appends, 1 event each, from 256 concurrent writers over 10k streams.
    P1,
    /// Bulk import: 1M events in appends of 1,000.
    P2,
    /// Rebuild all built-in projections from a log of `--events` events.
    P3,
    /// P3 broken down: each built-in projection rebuilt alone over the same log.
    P3Each,
    /// P3's second target: projection lag under P1's load. The five built-ins follow
    /// the log live while P1's writers append; a probe takes the head, then times until
    /// every projection covers it.
    P3Lag,
    /// Audit page of 50 entries filtered by action and actor, p99 over 1,000 pages.
    P6,
    /// Time travel: `organization(asOf:)` for an organization with 100k events.
    P7,
    /// The console query over HTTP, 64 connections, an org of 1,000 members (whole
    /// responses cached until a read model moves, as the server runs by default).
    P4,
    /// P4 with the response cache off: every request parsed and executed.
    P4Uncached,
    /// `consumeCredits` over HTTP from 64 bots of one org; the balance checked after.
    P5,
    /// P8 and P9 together over a store of `--events` events (targets stated for 10M):
    /// reopen a store whose projections are built and serve the first query over HTTP;
    /// then the process's RSS under P4's load.
    P8,
    /// Issue 12's attacks against a release server in a child process: each row's time
    /// to refuse (or answer) and the server's memory growth.
    Hostile,
    /// Every workload above, in order.
    All,
}

#[derive(Parser)]
#[command(name = "orgline-bench", about = "Orgline's load driver")]
struct Cli {
    /// Workloads to run.
    #[arg(value_enum, required = true)]
    workloads: Vec<Workload>,
    /// Directory for the stores under test (a fresh subdirectory per workload,
    /// removed afterwards). Defaults to a temporary directory on the same disk as
    /// the current one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measured seconds of the timed workloads (P1, disk, sled).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Size of the log P3 and P6 build (P6's target is stated for 10M).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Keep the stores under test (their directory is printed) instead of removing
    /// them: e.g. to run `orgline serve` over P8's built store and measure it apart.
    #[arg(long)]
    keep: bool,
    /// P3 and P3-each: rebuild over this existing store (e.g. one kept by `--keep`)
    /// instead of writing a fresh log first, so runs and profiles compare on one log.
    #[arg(long)]
    log: Option<PathBuf>,
    /// P3-each: only this projection (for profiling one: `perf record … p3-each --only runs`).
    #[arg(long)]
    only: Option<String>,
}

fn main() -> Result<()> {
    // P8 and P9 run the server in a child process: this binary again.
    if let Some(served) = benches::api::serve_child_from_env() {
        return served;
    }
    let cli = Cli::parse();
    let base = match &cli.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::tempdir_in(d)?
        }
        None => tempfile::tempdir_in(".").context("a scratch directory here")?,
    };
    let secs = Duration::from_secs(cli.seconds);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut todo = Vec::new();
    for w in &cli.workloads {
        match w {
            Workload::All => todo.extend([
                Workload::Disk,
                Workload::Sled,
                Workload::P1,
                Workload::P2,
                Workload::P3,
                Workload::P3Lag,
                Workload::P4,
                Workload::P5,
                Workload::P6,
                Workload::P7,
                Workload::P8,
                Workload::Hostile,
            ]),
            w => todo.push(*w),
        }
    }
    for w in todo {
        let dir = base.path().join(format!("{w:?}").to_lowercase());
        std::fs::create_dir_all(&dir)?;
        match w {
            Workload::Hostile => {
                for row in benches::hostile::run(&dir)? {
                    let met = row.ok
                        && row.ms < row.target_ms
                        && (row.target_ms > 1_000.0 || row.rss_growth_mib < 50.0);
                    result(
                        &format!("hostile-{}", row.name),
                        row.ms,
                        "ms",
                        &format!(
                            "rss_growth_mib={:.1} answered_as_it_should={} target_ms={} {} met={met}",
                            row.rss_growth_mib, row.ok, row.target_ms, row.note
                        ),
                    );
                }
            }
            Workload::Disk => {
                let syncs = sync_rate(&dir, secs.min(Duration::from_secs(5)))?;
                result("disk-sync", syncs, "syncs/s", "");
                let mbs = seq_bandwidth(&dir)?;
                result("disk-seq", mbs, "MB/s", "");
            }
            Workload::Sled => {
                let keys = sled_p1(&dir, secs)?;
                result("sled-p1", keys, "events/s", "");
            }
            Workload::P1 => {
                let syncs = sync_rate(&dir, Duration::from_secs(3))?;
                let (rate, p99) = rt.block_on(p1(&dir, secs))?;
                let limit = (P1_WRITERS as f64 * syncs).min(550_000.0);
                let target = 50_000f64.min(0.7 * P1_WRITERS as f64 * syncs);
                result(
                    "P1",
                    rate,
                    "events/s",
                    &format!(
                        "syncs_per_s={syncs:.0} p99_ms={p99:.2} limit={limit:.0} ratio_to_limit={:.2} target={target:.0} met={}",
                        rate / limit,
                        rate >= target
                    ),
                );
            }
            Workload::P2 => {
                let rate = rt.block_on(p2(&dir))?;
                result(
                    "P2",
                    rate,
                    "events/s",
                    &format!("target=300000 met={}", rate >= 300_000.0),
                );
            }
            Workload::P3 => {
                let (rate, events) = rt.block_on(p3(&dir, cli.events, cli.log.as_deref()))?;
                result(
                    "P3",
                    rate,
                    "events/s",
                    &format!("events={events} target=250000 met={}", rate >= 250_000.0),
                );
            }
            Workload::P3Lag => {
                let (p99, p50, rate) = rt.block_on(p3_lag(&dir, secs))?;
                result(
                    "P3-lag",
                    p99,
                    "ms",
                    &format!(
                        "p99_ms={p99:.2} p50_ms={p50:.2} p1_events_per_s={rate:.0} target_p99_ms=100 met={}",
                        p99 < 100.0
                    ),
                );
            }
            Workload::P3Each => {
                let (rates, events) = rt.block_on(p3_each(
                    &dir,
                    cli.events,
                    cli.log.as_deref(),
                    cli.only.as_deref(),
                ))?;
                for (name, rate) in rates {
                    result(
                        &format!("P3-{name}"),
                        rate,
                        "events/s",
                        &format!("events={events}"),
                    );
                }
            }
            Workload::P6 => {
                let p99 = rt.block_on(p6(&dir, cli.events))?;
                result(
                    "P6",
                    p99,
                    "ms",
                    &format!(
                        "p99_ms={p99:.2} events={} target_p99_ms=10 met={}",
                        cli.events,
                        p99 < 10.0
                    ),
                );
            }
            Workload::P7 => {
                let ms = rt.block_on(p7(&dir))?;
                result(
                    "P7",
                    ms,
                    "ms",
                    &format!("org_events=100000 target_ms=200 met={}", ms < 200.0),
                );
            }
            Workload::P4 | Workload::P4Uncached => {
                let store = Arc::new(EmbeddedStore::open(&dir)?);
                let (org, _) = benches::api::seed_p4(&store)?;
                let cached = w == Workload::P4;
                let (load, members) = benches::api::p4(store, org, cli.seconds as f64, cached)?;
                let rps = load.per_second();
                result(
                    if cached { "P4" } else { "P4-uncached" },
                    rps,
                    "requests/s",
                    &format!(
                        "p50_ms={:.2} p99_ms={:.2} errors={} members={members} connections=64 target=10000 target_p99_ms=10 met={}",
                        load.p50_ms,
                        load.p99_ms,
                        load.errors,
                        rps >= 10_000.0 && load.p99_ms < 10.0
                    ),
                );
            }
            Workload::P8 => {
                let r = benches::api::p8_p9(&dir, cli.events, cli.seconds as f64)?;
                result(
                    "P8",
                    r.first_query_ms,
                    "ms",
                    &format!(
                        "events={} target_ms=2000 met={}",
                        r.events,
                        r.first_query_ms < 2_000.0
                    ),
                );
                result(
                    "P9",
                    r.rss_max_mb,
                    "MiB",
                    &format!(
                        "events={} peak_mib={:.0} load_requests_per_s={:.0} p99_ms={:.2} target_mib=300 met={}",
                        r.events,
                        r.peak_mb,
                        r.load.per_second(),
                        r.load.p99_ms,
                        r.rss_max_mb < 300.0
                    ),
                );
            }
            Workload::P5 => {
                let store = Arc::new(EmbeddedStore::open(&dir)?);
                let (load, exact, balance) = benches::api::p5(store, cli.seconds as f64)?;
                let rps = load.per_second();
                result(
                    "P5",
                    rps,
                    "mutations/s",
                    &format!(
                        "p50_ms={:.2} p99_ms={:.2} acknowledged={} errors={} balance={balance} balance_exact={exact} connections=64 target=5000 met={}",
                        load.p50_ms,
                        load.p99_ms,
                        load.requests,
                        load.errors,
                        rps >= 5_000.0 && exact
                    ),
                );
            }
            Workload::All => {}
        }
        if cli.keep {
            eprintln!("kept {}", dir.display());
        } else {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    if cli.keep {
        let _ = base.keep();
    }
    Ok(())
}

fn result(workload: &str, value: f64, unit: &str, extra: &str) {
    let v = if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    };
    println!("RESULT workload={workload} value={v} unit={unit} {extra}");
}

/// Durable 4 KiB writes per second (`dd bs=4k oflag=dsync`).
fn sync_rate(dir: &Path, for_: Duration) -> Result<f64> {
    let path = dir.join("sync-probe");
    let mut f = File::create(&path)?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_ {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}

/// Sequential write bandwidth with one sync at the end: 256 MiB in 1 MiB writes.
fn seq_bandwidth(dir: &Path) -> Result<f64> {
    let path = dir.join("seq-probe");
    let mut f = File::create(&path)?;
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    for _ in 0..256 {
        f.write_all(&chunk)?;
    }
    f.sync_data()?;
    let mbs = 256.0 * 1.048_576 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(mbs)
}

/// sled alone: P1's writes as 256-key batches (one per group commit), flushed each time.
fn sled_p1(dir: &Path, for_: Duration) -> Result<f64> {
    let db = sled::open(dir.join("sled"))?;
    let tree = db.open_tree("events")?;
    let payload = vec![0x42u8; 300];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_ {
        let mut batch = sled::Batch::default();
        for _ in 0..P1_WRITERS {
            n += 1;
            batch.insert(&n.to_be_bytes()[..], &payload[..]);
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn meta(org: Uuid) -> Metadata {
    Metadata::new(
        Actor::bot(Uuid::from_u128(7)),
        Some(org),
        OffsetDateTime::now_utc(),
    )
}

/// A catalog-sized event (~300 bytes stored).
fn consumption(org: Uuid, n: u64) -> ProposedEvent {
    ProposedEvent::new(
        "credits.consumed",
        json!({
            "amount": 10 + n % 90,
            "bot_id": Uuid::from_u128(n as u128 % 5000),
            "run_id": Uuid::now_v7(),
            "key": format!("run-{n}"),
            // A whole catalog event, so P3-lag's projections can fold it.
            "period": domain::ledger::period_of(time::OffsetDateTime::now_utc()),
        }),
        meta(org),
    )
}

async fn p1(dir: &Path, measured: Duration) -> Result<(f64, f64)> {
    let store = Arc::new(EmbeddedStore::open(dir.join("store"))?);
    let (rate, latencies) = p1_load(&store, measured, std::future::pending()).await?;
    Ok((rate, percentile(latencies, 99)))
}

/// P1's writers (256, one event per append, over 10k streams) for a warm-up second,
/// then `measured`, while `beside` runs: the rate they reached and their latencies.
async fn p1_load(
    store: &Arc<EmbeddedStore>,
    measured: Duration,
    beside: impl std::future::Future<Output = ()>,
) -> Result<(f64, Vec<Duration>)> {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..P1_WRITERS {
        let (store, counting, stop, done) =
            (store.clone(), counting.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            let org = Uuid::from_u128(1 + (w % 16) as u128);
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let stream = format!("credits-{}", rng.random_range(0..P1_STREAMS));
                let t = Instant::now();
                store
                    .append(&stream, ExpectedVersion::Any, vec![consumption(org, n)])
                    .await?;
                n += 1;
                if counting.load(Ordering::Relaxed) {
                    latencies.push(t.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    counting.store(true, Ordering::SeqCst);
    let start = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(measured) => {}
        () = beside => {}
    }
    counting.store(false, Ordering::SeqCst);
    let elapsed = start.elapsed();
    let events = done.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok((events as f64 / elapsed.as_secs_f64(), latencies))
}

/// P3's lag target: the five built-ins on one feed, as the server runs them, follow
/// the log live under P1's load. Every 5 ms a probe reads the head (the last
/// acknowledged position) and times until every projection covers it: how stale a
/// read made right after a write can be. Returns (p99 ms, p50 ms, P1's events/s).
async fn p3_lag(dir: &Path, measured: Duration) -> Result<(f64, f64, f64)> {
    let store = Arc::new(EmbeddedStore::open(dir.join("store"))?);
    let handles = builtins(store.clone(), store.db())?;
    let lags = std::sync::Mutex::new(Vec::new());
    let failed = std::sync::Mutex::new(None);
    let probe = async {
        // Runs until P1's measured time ends (the select drops it).
        loop {
            let head = match store.head().await {
                Ok(h) => h,
                Err(e) => {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    return;
                }
            };
            let t = Instant::now();
            for h in &handles {
                if let Err(e) = h.wait_for(head, Duration::from_secs(30)).await {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{e} ({:?})", h.status().state));
                    return;
                }
            }
            lags.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (rate, _) = p1_load(&store, measured, probe).await?;
    for h in handles {
        h.stop().await;
    }
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        anyhow::bail!("the lag probe failed: {e}");
    }
    let lags = lags.into_inner().unwrap_or_else(|p| p.into_inner());
    anyhow::ensure!(lags.len() >= 10, "the probe took {} samples", lags.len());
    Ok((percentile(lags.clone(), 99), percentile(lags, 50), rate))
}

async fn p2(dir: &Path) -> Result<f64> {
    let store = Arc::new(EmbeddedStore::open(dir.join("store"))?);
    let appends = P2_EVENTS / P2_APPEND_EVENTS;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..P2_IN_FLIGHT {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let a = next.fetch_add(1, Ordering::Relaxed);
                if a >= appends {
                    return anyhow::Ok(());
                }
                let org = Uuid::from_u128(1 + (a % 100) as u128);
                let events = (0..P2_APPEND_EVENTS)
                    .map(|k| consumption(org, a * P2_APPEND_EVENTS + k))
                    .collect();
                store
                    .append(&format!("import-{a}"), ExpectedVersion::NoStream, events)
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = P2_EVENTS as f64 / start.elapsed().as_secs_f64();
    anyhow::ensure!(store.head().await? == P2_EVENTS, "every event landed");
    Ok(rate)
}

fn percentile(mut v: Vec<Duration>, p: usize) -> f64 {
    v.sort_unstable();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// The five built-ins over `store`, their state in `db`, as the server starts them: on
/// one feed, so the log is read once for all five.
fn builtins(
    store: Arc<EmbeddedStore>,
    db: &sled::Db,
) -> Result<Vec<projections::ProjectionHandle>> {
    use projections::{
        accounts::Accounts, audit::Audit, console::Console, credits::CreditsProjection, runner,
        runs::Runs,
    };
    let feed = projections::feed::Feed::new(store);
    Ok(vec![
        runner::spawn_fed(&feed, db.clone(), Accounts::default)?,
        runner::spawn_fed(&feed, db.clone(), Audit::default)?,
        runner::spawn_fed(&feed, db.clone(), Console::default)?,
        runner::spawn_fed(&feed, db.clone(), CreditsProjection::default)?,
        runner::spawn_fed(&feed, db.clone(), Runs::default)?,
    ])
}

/// P3's log: the one at `log` if given (its head is the size), else `events` written
/// fresh under `dir`.
async fn p3_log(dir: &Path, events: u64, log: Option<&Path>) -> Result<(Arc<EmbeddedStore>, u64)> {
    match log {
        Some(log) => {
            let store = Arc::new(EmbeddedStore::open(log)?);
            let head = store.head().await?;
            anyhow::ensure!(head > 0, "{} holds no events", log.display());
            Ok((store, head))
        }
        None => {
            let path = dir.join("store");
            let store = Arc::new(EmbeddedStore::open(&path)?);
            let written = benches::history::write(&store, 50, events, 0.1).await?;
            // A rebuild runs over a log at rest (`orgline rebuild` on a stopped server's
            // store): close it as a clean stop does and open it again, so the writes'
            // background work (sled's flushes of the index) is not timed with it.
            drop(store);
            EmbeddedStore::checkpoint(&path)?;
            Ok((Arc::new(EmbeddedStore::open(&path)?), written.events))
        }
    }
}

/// P3: all built-in projections (accounts, audit, console, credits, runs) rebuilt from a fresh database over the same log.
async fn p3(dir: &Path, events: u64, log: Option<&Path>) -> Result<(f64, u64)> {
    let (store, written) = p3_log(dir, events, log).await?;
    let fresh = sled::Config::new().path(dir.join("fresh")).open()?;
    let start = Instant::now();
    let handles = builtins(store.clone(), &fresh)?;
    for h in &handles {
        h.wait_for(written, Duration::from_secs(3_600)).await?;
    }
    let rate = written as f64 / start.elapsed().as_secs_f64();
    for h in handles {
        h.stop().await;
    }
    Ok((rate, written))
}

/// P6: pages of 50 audit entries filtered by action and actor, newest first and at
/// random cursors.
async fn p6(dir: &Path, events: u64) -> Result<f64> {
    use projections::audit::{self, Audit, AuditQuery};
    let store = Arc::new(EmbeddedStore::open(dir.join("store"))?);
    let written = benches::history::write(&store, 20, events, 0.3).await?;
    let h = projections::runner::spawn(store.clone(), store.db().clone(), Audit::default)?;
    h.wait_for(written.events, Duration::from_secs(3_600))
        .await?;
    let org = written.orgs[0];
    let bot = Uuid::from_u128(org.as_u128() ^ 0x1003).to_string();
    let q = AuditQuery::parse(&format!("action:run.completed actor:{bot}"))?;
    let tree = h.tree();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut latencies = Vec::with_capacity(1_000);
    for i in 0..1_000 {
        let before = (i % 2 == 1).then(|| rng.random_range(1..=written.events));
        let t = Instant::now();
        let page = audit::page(&tree, store.as_ref(), org, &q, 50, before, Some(u64::MAX)).await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            before.is_some() || page.entries.len() == 50,
            "a full first page"
        );
    }
    h.stop().await;
    Ok(percentile(latencies, 99))
}

/// P7: one organization with 100k events folded as it was at the head.
async fn p7(dir: &Path) -> Result<f64> {
    use projections::snapshots::{self, SNAPSHOT_EVERY, Snapshots};
    use projections::time_travel::{TimePoint, org_at, org_at_with};
    let store = Arc::new(EmbeddedStore::open(dir.join("store"))?);
    // One org holds the runs: 3 events per run → ~100k events for that org.
    let written = benches::history::write(&store, 2, 100_000, 1.0).await?;
    let org = written.orgs[0];
    let head = TimePoint::Position(written.events);
    // Cold: no snapshot yet (the writer has not caught up), the whole history folded.
    let mut cold = Vec::new();
    let mut full = None;
    for _ in 0..5 {
        let t = Instant::now();
        let snap = org_at(store.as_ref(), org, head).await?;
        cold.push(t.elapsed());
        full = Some(snap);
    }
    // As the server runs: the snapshot writer follows the log in the background.
    let t = Instant::now();
    let es: Arc<dyn EventStore> = store.clone();
    let writer = snapshots::spawn(es, store.db().clone(), SNAPSHOT_EVERY)?;
    writer
        .wait_for(written.events, Duration::from_secs(3_600))
        .await?;
    let written_in = t.elapsed();
    writer.stop().await;
    // What a user gets: the newest snapshot, then the events after it.
    let snaps = Snapshots::open(store.db())?;
    let mut times = Vec::new();
    let mut folded = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let snap = org_at_with(store.as_ref(), &snaps, org, head).await?;
        times.push(t.elapsed());
        // Each run consumes credits once: the org's whole history was folded.
        folded = snap.ledger.total_consumed;
        anyhow::ensure!(Some(&snap) == full.as_ref(), "snapshot + fold = full fold");
    }
    // The worst point: just before a snapshot, so SNAPSHOT_EVERY - 1 events are folded.
    let last = snaps
        .best(org, head)
        .map(|f| f.snapshot.position)
        .context("a snapshot was written")?;
    let mut worst = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        org_at_with(store.as_ref(), &snaps, org, TimePoint::Position(last - 1)).await?;
        worst.push(t.elapsed());
    }
    let (count, bytes) = snaps
        .tree()
        .iter()
        .values()
        .filter_map(|v| v.ok())
        .filter(|v| !v.is_empty())
        .fold((0, 0), |(n, b), v| (n + 1, b + v.len()));
    let load = {
        let t = Instant::now();
        snaps.best(org, head);
        t.elapsed().as_secs_f64() * 1000.0
    };
    println!(
        "p7 medians of 5: cold (full fold) {:.1} ms; head from snapshot {:.1} ms (snapshot load {load:.1} ms); \
         worst point ({} events after a snapshot) {:.1} ms; {count} snapshots ({:.1} KB) written in {:.0} ms",
        percentile(cold, 50),
        percentile(times.clone(), 50),
        SNAPSHOT_EVERY - 1,
        percentile(worst, 50),
        bytes as f64 / 1e3,
        written_in.as_secs_f64() * 1000.0,
    );
    anyhow::ensure!(
        folded > 30_000,
        "the org's runs were folded ({folded} credits consumed)"
    );
    Ok(percentile(times, 50))
}

/// Each built-in projection alone over one log: where P3's time goes.
async fn p3_each(
    dir: &Path,
    events: u64,
    log: Option<&Path>,
    only: Option<&str>,
) -> Result<(Vec<(&'static str, f64)>, u64)> {
    use projections::{
        Projection, ProjectionHandle, accounts::Accounts, audit::Audit, console::Console,
        credits::CreditsProjection, runner, runs::Runs,
    };
    let (store, written) = p3_log(dir, events, log).await?;
    let es: Arc<dyn EventStore> = store.clone();
    let mut out = Vec::new();
    // The floor under every projection: reading the log in the runner's batches, then
    // reading and decoding each event into the domain's catalog.
    for decode in [false, true].into_iter().filter(|_| only.is_none()) {
        let start = Instant::now();
        let mut from = 1;
        let mut decoded = 0u64;
        while from <= written {
            let events = store
                .read_all(from, projections::runner::REBUILD_EVENTS_MAX)
                .await?;
            let Some(last) = events.last() else { break };
            from = last.position + 1;
            if decode {
                for e in &events {
                    decoded += u64::from(projections::time_travel::decode(e)?.is_some());
                }
            }
        }
        anyhow::ensure!(!decode || decoded > 0, "events decoded");
        out.push((
            if decode { "read-decode" } else { "read" },
            written as f64 / start.elapsed().as_secs_f64(),
        ));
    }
    for (i, name) in [
        Accounts::NAME,
        Audit::NAME,
        Console::NAME,
        CreditsProjection::NAME,
        Runs::NAME,
    ]
    .into_iter()
    .enumerate()
    .filter(|(_, n)| only.is_none_or(|o| o == *n))
    {
        let db = sled::Config::new()
            .path(dir.join(format!("fresh-{i}")))
            .open()?;
        let start = Instant::now();
        let h: ProjectionHandle = match name {
            "accounts" => runner::spawn(es.clone(), db, Accounts::default)?,
            "audit" => runner::spawn(es.clone(), db, Audit::default)?,
            "console" => runner::spawn(es.clone(), db, Console::default)?,
            "credits" => runner::spawn(es.clone(), db, CreditsProjection::default)?,
            _ => runner::spawn(es.clone(), db, Runs::default)?,
        };
        h.wait_for(written, Duration::from_secs(3_600)).await?;
        out.push((name, written as f64 / start.elapsed().as_secs_f64()));
        h.stop().await;
    }
    Ok((out, written))
}
