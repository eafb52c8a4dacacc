//! P4 and P5: the real server on loopback, loaded over HTTP by 64 connections.
//!
//! The server runs on its own two-thread runtime; the load runs on a one-thread runtime
//! in the same process (the machine has two cores: client and server share them, as
//! they would with `wrk`).

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::EmbeddedStore;

/// Connections (and concurrent requests) of P4 and P5.
pub const CONNECTIONS: usize = 64;

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// A running server: its URL and the runtime that serves it.
pub struct Server {
    pub url: String,
    pub svc: Arc<graphql::Service>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(store: Arc<EmbeddedStore>, response_cache: bool) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (svc, url) = runtime.block_on(async {
            let config = graphql::Config {
                operator_token: None,
                base_url: String::new(),
                response_cache,
                private_webhooks: false,
                ..Default::default()
            };
            let svc = graphql::serve::service(store, config)?;
            graphql::process::spawn(svc.clone()).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let app = graphql::router(svc.clone());
            tokio::spawn(async move {
                let limits = graphql::listen::ConnLimits::default();
                let _ = graphql::listen::serve(listener, app, limits, std::future::pending()).await;
            });
            for h in svc.projections.all() {
                h.wait_for(svc_head(&svc).await?, Duration::from_secs(600))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            anyhow::Ok((svc, url))
        })?;
        Ok(Server { url, svc, runtime })
    }

    pub fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

async fn svc_head(svc: &graphql::Service) -> Result<u64> {
    Ok(svc.store.head().await?)
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Value> {
    let mut r = http.post(format!("{url}/graphql")).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    Ok(r.send().await?.json().await?)
}

async fn ok(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> Result<Value> {
    let v = post(
        http,
        url,
        token,
        &json!({ "query": query, "variables": vars }),
    )
    .await?;
    if v.get("errors").is_some() {
        bail!("{query}: {v}");
    }
    Ok(v["data"].clone())
}

/// Runs `CONNECTIONS` loops for `seconds`, each sending `request(connection, n)`.
fn drive(
    seconds: f64,
    request: impl Fn(usize, u64) -> (Option<String>, Value) + Send + Sync + 'static,
    url: String,
) -> Result<Load> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let http = client()?;
        let request = Arc::new(request);
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for c in 0..CONNECTIONS {
            let (http, request, url) = (http.clone(), request.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < end {
                    let (token, body) = request(c, n);
                    n += 1;
                    let t = Instant::now();
                    match post(&http, &url, token.as_deref(), &body).await {
                        Ok(v) if v.get("errors").is_none() => {
                            lat.push(t.elapsed().as_micros() as u32)
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await?;
            all.extend(lat);
            errors += e;
        }
        let seconds = start.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .map_or(0.0, |us| f64::from(*us) / 1000.0)
        };
        Ok(Load {
            requests: all.len() as u64,
            errors,
            seconds,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        })
    })
}

/// P4's organization: one org of ~1,000 members from the history generator, and its
/// owner's password set. Returns the org id and the owner's email.
pub fn seed_p4(store: &Arc<EmbeddedStore>) -> Result<(uuid::Uuid, usize)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let params = fixtures::generator::Params {
            orgs: 1,
            members_max: 1_000,
            events: 40_000,
            days: 30,
            demo: false,
        };
        let summary = fixtures::generator::generate_with(
            store,
            &params,
            7,
            time::OffsetDateTime::now_utc(),
            &|_| {},
        )
        .await?;
        let org = *summary.orgs.first().context("an organization")?;
        Ok((org, summary.users.len()))
    })
}

const P4_QUERY: &str = "query($o: ID!) { organization(id: $o) { overview { seats { used total } bots { total enabled online } creditBalance } members(first: 20) { totalCount edges { cursor node { alias email kind joinedAt roles { name } } } } } }";

/// P4: the console query against an org of ~1,000 members. Returns the load and the
/// members the org has.
pub fn p4(
    store: Arc<EmbeddedStore>,
    org: uuid::Uuid,
    seconds: f64,
    response_cache: bool,
) -> Result<(Load, i64)> {
    let server = Server::start(store, response_cache)?;
    let url = server.url.clone();
    // The owner signs in with a password set for the benchmark.
    let doc = server
        .svc
        .org_doc(org)
        .map_err(|e| anyhow::anyhow!(e.message))?
        .context("the org")?;
    let owner = doc.owners().next().context("an owner")?;
    let account =
        projections::accounts::query::user(&server.svc.projections.accounts.tree(), owner)?
            .context("the owner's account")?;
    let phc =
        graphql::auth::hash_password("bench-password").map_err(|e| anyhow::anyhow!(e.message))?;
    server
        .svc
        .creds
        .reserve_email(&account.email, owner)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    server
        .svc
        .creds
        .set_password_hash(owner, &phc)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (token, members) = rt.block_on(async {
        let http = client()?;
        let d = ok(&http, &url, None, "mutation($e: String!) { signIn(input: {email: $e, password: \"bench-password\"}) { token } }", json!({ "e": account.email })).await?;
        let token = d["signIn"]["token"].as_str().context("token")?.to_owned();
        let d = ok(&http, &url, Some(&token), P4_QUERY, json!({ "o": org })).await?;
        let members = d["organization"]["members"]["totalCount"].as_i64().unwrap_or(0);
        anyhow::Ok((token, members))
    })?;
    drop(rt);
    let body = json!({ "query": P4_QUERY, "variables": { "o": org } });
    let load = drive(
        seconds,
        move |_, _| (Some(token.clone()), body.clone()),
        url,
    )?;
    server.stop();
    Ok((load, members))
}

/// P5: 64 bots consuming credits of one org through `consumeCredits`. Returns the load
/// and whether the final balance is exactly the grant minus what was acknowledged.
pub fn p5(store: Arc<EmbeddedStore>, seconds: f64) -> Result<(Load, bool, String)> {
    let server = Server::start(store, true)?;
    let url = server.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    const GRANT: u64 = 1_000_000_000;
    let (owner, org, bots) = rt.block_on(async {
        let http = client()?;
        let d = ok(&http, &url, None, "mutation { signUp(input: {email: \"owner@p5.test\", alias: \"Owner\", password: \"bench-password\"}) { token } }", json!({})).await?;
        let owner = d["signUp"]["token"].as_str().context("token")?.to_owned();
        let d = ok(&http, &url, Some(&owner), "mutation { createOrganization(input: {name: \"Hot\", adminAlias: \"A\", adminEmail: \"a@p5.test\"}) { organization { id } } }", json!({})).await?;
        let org = d["createOrganization"]["organization"]["id"].as_str().context("org")?.to_owned();
        ok(&http, &url, Some(&owner), "mutation($o: ID!, $a: String!) { grantCredits(input: {organizationId: $o, amount: $a, source: \"adjustment\"}) { position } }", json!({ "o": org, "a": GRANT.to_string() })).await?;
        let mut bots = Vec::new();
        for i in 0..CONNECTIONS {
            let d = ok(&http, &url, Some(&owner), "mutation($o: ID!, $n: String!) { registerBot(input: {organizationId: $o, name: $n}) { bot { id } botToken } }", json!({ "o": org, "n": format!("bot-{i}") })).await?;
            bots.push((
                d["registerBot"]["bot"]["id"].as_str().context("bot")?.to_owned(),
                d["registerBot"]["botToken"].as_str().context("token")?.to_owned(),
            ));
        }
        anyhow::Ok((owner, org, bots))
    })?;
    let query = "mutation($o: ID!, $b: ID!, $k: String!) { consumeCredits(input: {organizationId: $o, amount: \"1\", botId: $b, key: $k}) { position } }";
    let org2 = org.clone();
    let load = drive(
        seconds,
        move |c, n| {
            let (bot, token) = &bots[c];
            (
                Some(token.clone()),
                json!({ "query": query, "variables": { "o": org2, "b": bot, "k": format!("{c}-{n}") } }),
            )
        },
        url.clone(),
    )?;
    let balance = rt.block_on(async {
        let http = client()?;
        let d = ok(
            &http,
            &url,
            Some(&owner),
            "query($o: ID!) { organization(id: $o) { usage { balance consumed } } }",
            json!({ "o": org }),
        )
        .await?;
        anyhow::Ok(
            d["organization"]["usage"]["balance"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    })?;
    drop(rt);
    server.stop();
    let exact = balance == (GRANT - load.requests).to_string();
    Ok((load, exact, balance))
}

/// What P8 and P9 measured.
#[derive(Debug, Clone)]
pub struct Restart {
    /// Events in the store.
    pub events: u64,
    /// From opening the store to the first query answered over HTTP (P8).
    pub first_query_ms: f64,
    /// Largest resident set of the server process during the load (P9).
    pub rss_max_mb: f64,
    /// The server process's peak resident set since it started (`VmHWM`).
    pub peak_mb: f64,
    /// The console-query load P9 ran.
    pub load: Load,
}

/// The largest resident set of a process while it is sampled (a thread reads `/proc`
/// every `every` until [`RssPeak::stop`]).
pub struct RssPeak {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssPeak {
    pub fn start(pid: u32, every: Duration) -> RssPeak {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut max = rss_mb(pid, "VmRSS:");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    max = max.max(rss_mb(pid, "VmRSS:"));
                    std::thread::sleep(every);
                }
                max
            })
        };
        RssPeak { stop, thread }
    }

    /// The peak in MiB.
    pub fn stop(self) -> Result<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))
    }
}

/// Resident set of process `pid` in MiB: `VmRSS` now, or `VmHWM` (its peak so far).
pub fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Set in the environment of the server child that P8 and P9 start: its data directory
/// and listen address. See [`serve_child_from_env`].
pub const SERVE_DATA_ENV: &str = "ORGLINE_BENCH_SERVE_DATA";
pub const SERVE_LISTEN_ENV: &str = "ORGLINE_BENCH_SERVE_LISTEN";

/// In the server child of P8 and P9 (the driver re-executes itself with
/// [`SERVE_DATA_ENV`] set): serves exactly as `orgline serve --data DIR --listen ADDR`
/// does — `graphql::serve::run`, with its projections, process managers and
/// time-travel snapshot writer — until it is killed. `None` in any other process.
pub fn serve_child_from_env() -> Option<Result<()>> {
    let data = std::env::var_os(SERVE_DATA_ENV)?;
    Some((|| {
        let listen = std::env::var(SERVE_LISTEN_ENV)
            .context("the listen address")?
            .parse()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(graphql::serve::run(graphql::serve::ServeOptions {
            data: data.into(),
            listen,
            demo: false,
        }))
    })())
}

/// Starts this binary again as the server over `dir` on `addr` (see
/// [`serve_child_from_env`]).
pub fn spawn_server_child(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
) -> Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .env(SERVE_DATA_ENV, dir)
        .env(SERVE_LISTEN_ENV, addr.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the server process")
}

/// P8 and P9: a store of `events` events — its projections and time-travel snapshots
/// built, as a server that has run for a while leaves it — is closed cleanly. Then the
/// clock starts: a fresh server process starts over it (`orgline serve`'s code, in a
/// child process), and the first console query is answered over HTTP (P8). Then P4's
/// load runs against that process while its RSS is sampled (P9): the server alone, not
/// the process that built the store, nor the load driver.
pub fn p8_p9(dir: &std::path::Path, events: u64, seconds: f64) -> Result<Restart> {
    const PASSWORD: &str = "bench-password";
    // Build: the log, every projection caught up, a session for the busiest org's owner.
    let (org, token) = {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let store = Arc::new(EmbeddedStore::open(dir)?);
            let written = crate::history::write(&store, 50, events, 0.1).await?;
            let config = graphql::Config {
                operator_token: None,
                base_url: String::new(),
                response_cache: true,
                private_webhooks: false,
                ..Default::default()
            };
            let svc = graphql::serve::service(store.clone(), config)?;
            let head = svc_head(&svc).await?;
            let snapshots = projections::snapshots::spawn(
                svc.store.clone(),
                svc.db.clone(),
                projections::snapshots::SNAPSHOT_EVERY,
            )?;
            for h in svc.projections.all() {
                h.wait_for(head, Duration::from_secs(3_600))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            snapshots
                .wait_for(head, Duration::from_secs(3_600))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            snapshots.stop().await;
            let owner = *written.users.first().context("a user")?;
            let org = *written.orgs.first().context("an org")?;
            let e = |e: graphql::error::ApiError| anyhow::anyhow!(e.message);
            let phc = graphql::auth::hash_password(PASSWORD).map_err(e)?;
            svc.creds
                .reserve_email("p8-owner@bench.test", owner)
                .map_err(e)?;
            svc.creds.set_password_hash(owner, &phc).map_err(e)?;
            let token = svc
                .creds
                .open_session(&graphql::auth::Session {
                    user_id: owner,
                    session_id: uuid::Uuid::new_v4(),
                    expires_at: time::OffsetDateTime::now_utc() + time::Duration::days(1),
                })
                .map_err(e)?;
            svc.projections.stop().await;
            svc.db.flush_async().await?;
            anyhow::Ok((org, token))
        })?
    };
    // A clean stop, as `orgline serve` ends: sled's snapshot written at close (without
    // it the open below replays all sled logged while the store was built).
    let took = EmbeddedStore::checkpoint(dir)?;
    eprintln!(
        "P8 clean stop: checkpoint {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    // Measure: a fresh server process, up to its first answer.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let url = format!("http://{addr}");
    let start = Instant::now();
    let mut child = spawn_server_child(dir, addr)?;
    let pid = child.id();
    let body = json!({ "query": P4_QUERY, "variables": { "o": org } });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let first = rt.block_on(async {
        let http = client()?;
        loop {
            match post(&http, &url, Some(&token), &body).await {
                Ok(v) if v.get("errors").is_none() && !v["data"]["organization"].is_null() => {
                    return anyhow::Ok(());
                }
                Ok(v) => bail!("the first query failed: {v}"),
                Err(_) if child.try_wait()?.is_some() => bail!("the server process exited"),
                // Not listening yet.
                Err(_) if start.elapsed() < Duration::from_secs(600) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => bail!("the server never answered: {e}"),
            }
        }
    });
    let first_query_ms = start.elapsed().as_secs_f64() * 1000.0;
    drop(rt);
    if let Err(e) = first {
        let _ = child.kill();
        return Err(e);
    }
    eprintln!(
        "P8: server process started, first answer after {first_query_ms:.0} ms; RSS then {:.0} MiB",
        rss_mb(pid, "VmRSS:")
    );
    // P9: the server's RSS under P4's load.
    let peak = RssPeak::start(pid, Duration::from_millis(100));
    let load = drive(
        seconds,
        move |_, _| (Some(token.clone()), body.clone()),
        url,
    );
    let rss_max_mb = peak.stop()?;
    let peak = rss_mb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    let load = load?;
    eprintln!("P9: server RSS max {rss_max_mb:.0} MiB under load (peak since start {peak:.0} MiB)");
    Ok(Restart {
        events,
        first_query_ms,
        rss_max_mb,
        peak_mb: peak,
        load,
    })
}
