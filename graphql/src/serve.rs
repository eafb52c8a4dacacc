//! `orgline serve`: opens the store, starts the projections, optionally loads the demo
//! organization, and serves the API until SIGTERM or Ctrl-C — then stops the
//! projections (their checkpoints are committed with their last batch) and flushes.

use crate::service::{Config, Service};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::{EmbeddedStore, EventStore};

pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub demo: bool,
}

/// Builds the service over an open store.
pub fn service(store: Arc<EmbeddedStore>, config: Config) -> anyhow::Result<Arc<Service>> {
    let db = store.db().clone();
    Service::new(store, db, config).map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// The configuration from the environment: `ORGLINE_OPERATOR_TOKEN`, `ORGLINE_BASE_URL`,
/// `ORGLINE_RESPONSE_CACHE`, `ORGLINE_WEBHOOKS_ALLOW_PRIVATE`, `ORGLINE_TRUSTED_PROXIES`.
pub fn config_from_env() -> Config {
    Config {
        operator_token: std::env::var("ORGLINE_OPERATOR_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        base_url: std::env::var("ORGLINE_BASE_URL").unwrap_or_default(),
        response_cache: std::env::var("ORGLINE_RESPONSE_CACHE").map_or(true, |v| v != "0"),
        private_webhooks: std::env::var("ORGLINE_WEBHOOKS_ALLOW_PRIVATE").is_ok_and(|v| v == "1"),
        trusted_proxies: std::env::var("ORGLINE_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect(),
    }
}

pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data)?;
    let store = Arc::new(EmbeddedStore::open(&opts.data)?);
    let mut demo = None;
    if opts.demo {
        demo = crate::demo::ensure(&store).await?;
    }
    let config = config_from_env();
    let has_operator = config.operator_token.is_some();
    let svc = service(store.clone(), config)?;
    if let Some(d) = &demo {
        crate::demo::set_passwords(&svc, d)?;
    }
    crate::process::spawn(svc.clone()).await?;
    if let Some(d) = &demo {
        crate::demo::keep_bots_alive(svc.clone(), d.org_id);
    }
    crate::scheduler::spawn(svc.clone());
    // Time-travel snapshots, written in the background (no read model waits for them).
    let snapshots = projections::snapshots::spawn(
        svc.store.clone(),
        svc.db.clone(),
        projections::snapshots::SNAPSHOT_EVERY,
    )?;
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "Orgline serving {} events from {} on http://{addr}",
        store.head().await?,
        opts.data.display()
    );
    println!("  GraphiQL  http://{addr}/");
    println!("  GraphQL   http://{addr}/graphql  (WebSocket subscriptions on the same path)");
    if !has_operator {
        println!("  (set ORGLINE_OPERATOR_TOKEN to use `projections` and `rebuildProjection`)");
    }
    if let Some(d) = &demo {
        crate::demo::print(d, addr);
    }
    let app = crate::router(svc.clone());
    crate::listen::serve(
        listener,
        app,
        crate::listen::ConnLimits::from_env(),
        shutdown(),
    )
    .await?;
    tracing::info!("shutting down: stopping projections");
    svc.projections.stop().await;
    snapshots.stop().await;
    svc.db.flush_async().await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
