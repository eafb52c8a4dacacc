//! `serve --demo`: an empty store gets the demo organization from `fixtures` (Acme
//! Robotics: people, roles, bots, triggers, a month of runs, invoices, credits), every
//! account of it gets the demo password, and the sign-in details are printed.
//! Passwords never enter the log: they are set in the credentials tree here.

use crate::auth;
use crate::service::Service;
use fixtures::generator::{self, Scale};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use store::{EmbeddedStore, EventStore};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "orgline-demo";
/// The seed of the demo history.
pub const DEMO_SEED: u64 = 2026;

/// What the demo wrote, kept beside the store so a restart prints it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Demo {
    pub org_id: uuid::Uuid,
    pub org_name: String,
    /// (who, email) to sign in as.
    pub logins: Vec<(String, String)>,
    /// Every account of the history: (user id, email).
    pub accounts: Vec<(uuid::Uuid, String)>,
    pub pending_invitations: Vec<String>,
    pub events: u64,
}

const TREE: &str = "demo";

/// Loads the demo into an empty store, or finds the demo loaded before. `None` when
/// the store holds other data.
pub async fn ensure(store: &Arc<EmbeddedStore>) -> anyhow::Result<Option<Demo>> {
    let tree = store.db().open_tree(TREE)?;
    if let Some(v) = tree.get("demo")? {
        return Ok(Some(serde_json::from_slice(&v)?));
    }
    if store.head().await? > 0 {
        println!(
            "The store is not empty: --demo loads the demo organization only into an empty store."
        );
        return Ok(None);
    }
    println!("Loading the demo organization…");
    let summary = generator::generate(
        store,
        Scale::Demo,
        DEMO_SEED,
        time::OffsetDateTime::now_utc(),
        &|_| {},
    )
    .await?;
    let d = summary
        .demo
        .ok_or_else(|| anyhow::anyhow!("the demo scale holds no demo organization"))?;
    let mut logins = vec![
        ("owner".to_owned(), d.owner.email.clone()),
        ("admin".to_owned(), d.admin.email.clone()),
        ("member (no console)".to_owned(), d.member.email.clone()),
        ("external collaborator".to_owned(), d.external.email.clone()),
    ];
    if let Some(o) = &d.operator {
        logins.push(("bot operator (custom role)".to_owned(), o.email.clone()));
    }
    if let Some(dev) = &d.developer {
        logins.push(("certified developer".to_owned(), dev.email.clone()));
    }
    let demo = Demo {
        org_id: d.org_id,
        org_name: d.name.clone(),
        logins,
        accounts: summary
            .users
            .iter()
            .map(|u| (u.user_id, u.email.clone()))
            .collect(),
        pending_invitations: d.pending_invitations.clone(),
        events: summary.events,
    };
    tree.insert("demo", serde_json::to_vec(&demo)?)?;
    tree.flush()?;
    Ok(Some(demo))
}

/// Gives every demo account the demo password (once).
pub fn set_passwords(svc: &Service, demo: &Demo) -> anyhow::Result<()> {
    let err = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.message);
    let phc = auth::hash_password(DEMO_PASSWORD).map_err(err)?;
    for (user, email) in &demo.accounts {
        if svc.creds.password_hash(*user).map_err(err)?.is_some() {
            continue;
        }
        svc.creds.reserve_email(email, *user).map_err(err)?;
        svc.creds.set_password_hash(*user, &phc).map_err(err)?;
    }
    Ok(())
}

/// How often the demo's bots send their heartbeat (well inside the scheduler's
/// two-minute timeout).
pub const DEMO_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps the demo organization's bots alive while `serve --demo` runs: every bot that is
/// not offline sends a heartbeat now and every [`DEMO_HEARTBEAT`], as a bot process
/// would, so the console shows them in every status instead of the scheduler marking
/// them offline (their history ends when the demo was loaded). A bot that somebody
/// reports offline stays offline. Heartbeats are not events: the log does not grow.
/// The first heartbeats come once the console has caught up with the log; the
/// scheduler waits for the same, and a heartbeat it finds keeps a bot watched from then.
pub fn keep_bots_alive(svc: Arc<Service>, org: uuid::Uuid) -> tokio::task::JoinHandle<()> {
    let beat = move |svc: &Service| {
        let tree = svc.projections.console.tree();
        match projections::console::query::bots(&tree, org) {
            Ok(bots) => {
                for (id, bot) in bots {
                    if !bot.deleted && bot.status != domain::events::BotStatus::Offline {
                        svc.heartbeat(id, org, bot.status);
                    }
                }
            }
            Err(e) => tracing::warn!(?e, "demo heartbeats: could not list the bots"),
        }
    };
    tokio::spawn(async move {
        if let Err(e) = svc.console_caught_up().await {
            tracing::warn!(?e, "demo heartbeats start before the console caught up");
        }
        let mut tick = tokio::time::interval(DEMO_HEARTBEAT);
        loop {
            tick.tick().await;
            beat(&svc);
        }
    })
}

pub fn print(demo: &Demo, addr: std::net::SocketAddr) {
    println!();
    println!(
        "Demo organization: {} ({}), {} events",
        demo.org_name, demo.org_id, demo.events
    );
    println!("Sign in with any of these (password: {DEMO_PASSWORD}):");
    for (who, email) in &demo.logins {
        println!("  {who:<28} {email}");
    }
    if let Some(email) = demo.pending_invitations.first() {
        println!("  (an invitation is pending for {email}: sign up with it and accept)");
    }
    println!();
    println!("Try it:");
    println!(
        "  curl -s http://{addr}/graphql -H 'content-type: application/json' \\\n    -d '{{\"query\":\"mutation {{ signIn(input: {{email: \\\"{}\\\", password: \\\"{DEMO_PASSWORD}\\\"}}) {{ token }} }}\"}}'",
        demo.logins.first().map_or("", |(_, e)| e.as_str())
    );
}
