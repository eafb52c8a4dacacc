//! An analyst's projection, written outside the built-ins: runs and credits per bot.
//!
//! ```text
//! cargo run -p projections --example runs_per_bot -- ./data
//! ```
//!
//! It implements [`Projection`] — a stable `NAME`, a `VERSION` (bump it and the runner
//! rebuilds from the start of the log), and `apply`, which reads and writes the
//! projection's own sled tree through a [`Tx`] — and hands it to the runner, which
//! catches up from its checkpoint and keeps it current. The writers are never touched.
//! Given an empty directory it first writes a small history to look at.

use projections::{Projection, ProjectionError, Tx, runner};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::{
    Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent, RecordedEvent,
};
use uuid::Uuid;

#[derive(Default, Serialize, Deserialize)]
struct BotStats {
    completed: u64,
    failed: u64,
    credits: u64,
}

/// `r/{run}` → the run's bot; `b/{bot}` → its [`BotStats`].
struct RunsPerBot;

impl Projection for RunsPerBot {
    const NAME: &'static str = "example.runs_per_bot";
    const VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let Some(run) = e.stream.strip_prefix("run-") else {
            return Ok(());
        };
        let data = e.data_value();
        if e.event_type == "run.started" {
            let bot = data["bot_id"].as_str().unwrap_or_default().to_owned();
            tx.insert(format!("r/{run}"), bot);
            return Ok(());
        }
        let Some(bot) = tx.get(format!("r/{run}").as_bytes())? else {
            return Ok(());
        };
        let key = format!("b/{}", String::from_utf8_lossy(&bot));
        let mut stats: BotStats = tx.get_json(key.as_bytes())?.unwrap_or_default();
        match e.event_type.as_str() {
            "run.completed" => stats.completed += 1,
            "run.failed" => stats.failed += 1,
            _ => return Ok(()),
        }
        stats.credits += data["credits"].as_u64().unwrap_or(0);
        tx.put_json(key, &stats)
    }
}

async fn demo_history(store: &EmbeddedStore) -> Result<(), store::StoreError> {
    let org = Uuid::new_v4();
    let bots: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for i in 0..200u64 {
        let bot = bots[(i % 4) as usize];
        let run = Uuid::new_v4();
        let meta = Metadata::new(Actor::bot(bot), Some(org), time::OffsetDateTime::now_utc());
        let started = ProposedEvent::new(
            "run.started",
            json!({ "run_id": run, "bot_id": bot, "task": "invoices" }),
            meta.clone(),
        );
        let end = if i % 9 == 0 {
            ProposedEvent::new(
                "run.failed",
                json!({ "duration_ms": 800, "error": "timeout" }),
                meta,
            )
        } else {
            ProposedEvent::new(
                "run.completed",
                json!({ "duration_ms": 1200, "credits": 5 + i % 7 }),
                meta,
            )
        };
        store
            .append(
                &format!("run-{run}"),
                ExpectedVersion::NoStream,
                vec![started, end],
            )
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./example-data".into());
    let store = Arc::new(EmbeddedStore::open(&dir)?);
    if store.head().await? == 0 {
        println!("{dir} is empty: writing a demo history first");
        demo_history(&store).await?;
    }
    let handle = runner::spawn(store.clone(), store.db().clone(), || RunsPerBot)?;
    handle
        .wait_for(store.head().await?, Duration::from_secs(60))
        .await?;
    println!(
        "{:<38} {:>9} {:>6} {:>8}",
        "bot", "completed", "failed", "credits"
    );
    for kv in handle.tree().scan_prefix(b"b/") {
        let (k, v) = kv?;
        let s: BotStats = serde_json::from_slice(&v)?;
        println!(
            "{:<38} {:>9} {:>6} {:>8}",
            String::from_utf8_lossy(&k[2..]),
            s.completed,
            s.failed,
            s.credits
        );
    }
    handle.stop().await;
    Ok(())
}
