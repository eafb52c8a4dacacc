//! `orgline seed`: writes a generated history (`fixtures::generator`) into an empty
//! store, with a progress bar, and prints who to sign in as.

use fixtures::generator::{self, GeneratedUser, Scale, Summary};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use store::EventStore;

/// Events the demo scale writes, roughly: the progress bar's length (the other scales
/// say theirs in their parameters).
const DEMO_EVENTS: u64 = 8_000;

pub fn run(data: &Path, scale: Scale, seed: u64, end: Option<&str>) -> anyhow::Result<()> {
    let end = match end {
        Some(e) => time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
            .map_err(|err| anyhow::anyhow!("--end {e:?} is not an RFC 3339 time: {err}"))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let is_store = data.join("log").is_dir();
    let has_files = std::fs::read_dir(data).is_ok_and(|mut d| d.next().is_some());
    anyhow::ensure!(
        is_store || !has_files,
        "{} is not empty and holds no Orgline store: seed into an empty or new directory",
        data.display()
    );
    let store = Arc::new(store::EmbeddedStore::open(data)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let head = store.head().await?;
        anyhow::ensure!(
            head == 0,
            "{} already holds {head} events: seed refuses a store that is not empty \
             (choose another --data directory)",
            data.display()
        );
        let bar = indicatif::ProgressBar::new(scale.params().events.max(DEMO_EVENTS));
        bar.set_style(indicatif::ProgressStyle::with_template(
            "seeding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )?);
        let started = Instant::now();
        let summary =
            generator::generate(&store, scale, seed, end, &|n| bar.set_position(n)).await?;
        bar.set_length(summary.events);
        bar.finish();
        println!(
            "seeded {} events ({} organizations, {} users) in {:.1} s into {}",
            summary.events,
            summary.orgs.len(),
            summary.users.len(),
            started.elapsed().as_secs_f64(),
            data.display()
        );
        anyhow::Ok(summary)
    })?;
    drop(store);
    print_demo(&summary);
    if summary.refused > 0 {
        // Refused commands wrote nothing, so the history still obeys the rules; but
        // the generator planned something the rules do not allow: a bug to report.
        eprintln!(
            "warning: the domain refused {} of the generator's commands: {:?}",
            summary.refused, summary.refusals
        );
    }
    Ok(())
}

fn print_demo(summary: &Summary) {
    let Some(d) = &summary.demo else {
        return;
    };
    let who = |role: &str, u: &GeneratedUser| println!("  {role:<22} {} ({})", u.email, u.alias);
    println!(
        "demo organization {} ({}): {} members, {} bots, {} triggers",
        d.name,
        d.org_id,
        d.members.len(),
        d.bots,
        d.triggers
    );
    who("owner", &d.owner);
    who("admin", &d.admin);
    if let Some(u) = &d.operator {
        who("bot operator (custom)", u);
    }
    if let Some(u) = &d.developer {
        who("developer", u);
    }
    who("member (no console)", &d.member);
    who("external collaborator", &d.external);
    for email in &d.pending_invitations {
        println!("  {:<22} {email}", "pending invitation");
    }
    println!("passwords are not part of the log: the accounts have none until one is set");
}
