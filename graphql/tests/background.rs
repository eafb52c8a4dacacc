//! What happens without a request: schedules fire, silent bots go offline, usage alerts
//! reach their webhooks.

mod common;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_and_silent_bots_go_offline() {
    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    let d = s.ok(Some(&owner), "mutation($o: ID!, $b: ID!) { createTrigger(input: {organizationId: $o, name: \"every 5\", kind: SCHEDULE, schedule: \"*/5 * * * *\", botId: $b, task: \"tick\"}) { trigger { id } } }", json!({ "o": org, "b": bot })).await;
    let trigger = d["createTrigger"]["trigger"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.ok(
        Some(&token),
        "mutation($b: ID!) { reportBotStatus(input: {botId: $b, status: ONLINE}) { position } }",
        json!({ "b": bot }),
    )
    .await;
    let now = time::OffsetDateTime::now_utc();
    // Nothing is due yet.
    graphql::scheduler::run_once(&s.svc, now)
        .await
        .expect("round");
    let q = "query($o: ID!, $b: ID!) { organization(id: $o) { bot(id: $b) { status lastSeenAt } triggers(first: 5) { edges { node { fireCount lastFiredAt } } } runs(first: 5) { totalCount edges { node { task trigger { id } status } } } } }";
    let d = s.ok(Some(&owner), q, json!({ "o": org, "b": bot })).await;
    assert_eq!(d["organization"]["bot"]["status"], json!("ONLINE"));
    let first = d["organization"]["bot"]["lastSeenAt"].clone();
    assert!(first.is_string(), "{d}");
    // A heartbeat (the same status again: no event) is a sighting too, read at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.ok(
        Some(&token),
        "mutation($b: ID!) { reportBotStatus(input: {botId: $b, status: ONLINE}) { position } }",
        json!({ "b": bot }),
    )
    .await;
    let d = s.ok(Some(&owner), q, json!({ "o": org, "b": bot })).await;
    let seen = d["organization"]["bot"]["lastSeenAt"].clone();
    let at = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().expect("a time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    assert!(at(&seen) > at(&first), "{first} then {seen}");
    assert_eq!(
        d["organization"]["triggers"]["edges"][0]["node"]["fireCount"],
        json!(0)
    );
    // Ten minutes on: the schedule is due (once), and the bot has been silent too long.
    graphql::scheduler::run_once(&s.svc, now + time::Duration::minutes(10))
        .await
        .expect("round");
    let d = s.ok(Some(&owner), q, json!({ "o": org, "b": bot })).await;
    let o = &d["organization"];
    assert_eq!(o["bot"]["status"], json!("OFFLINE"), "{d}");
    // The system marked it offline: it has not been seen since its own report.
    assert_eq!(o["bot"]["lastSeenAt"], seen, "{d}");
    assert_eq!(
        o["triggers"]["edges"][0]["node"]["fireCount"],
        json!(1),
        "{d}"
    );
    assert_eq!(o["runs"]["totalCount"], json!(1));
    assert_eq!(
        o["runs"]["edges"][0]["node"]["trigger"]["id"],
        json!(trigger)
    );
    assert_eq!(o["runs"]["edges"][0]["node"]["task"], json!("tick"));
    // Fired (at the real time): not due again before the next occurrence after it.
    graphql::scheduler::run_once(&s.svc, time::OffsetDateTime::now_utc())
        .await
        .expect("round");
    let d = s.ok(Some(&owner), q, json!({ "o": org, "b": bot })).await;
    assert_eq!(
        d["organization"]["triggers"]["edges"][0]["node"]["fireCount"],
        json!(1)
    );
    let d = s.ok(Some(&owner), "query($o: ID!) { organization(id: $o) { auditLog(first: 5, query: \"action:bot.status_changed actor:system\") { totalCount } } }", json!({ "o": org })).await;
    assert_eq!(
        d["organization"]["auditLog"]["totalCount"],
        json!(1),
        "the system took the bot offline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_alert_reaches_its_webhook() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    let d = s.ok(Some(&owner), "mutation($o: ID!, $u: String) { setUsageAlert(input: {organizationId: $o, threshold: \"9000\", webhookUrl: $u}) { usage { alerts { id } } } }", json!({ "o": org, "u": hook })).await;
    let alert = d["setUsageAlert"]["usage"]["alerts"][0]["id"]
        .as_str()
        .expect("alert")
        .to_owned();
    s.ok(Some(&token), "mutation($o: ID!, $b: ID!) { consumeCredits(input: {organizationId: $o, amount: \"1500\", botId: $b, key: \"k1\"}) { position } }", json!({ "o": org, "b": bot })).await;
    for _ in 0..100 {
        if !received.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["alertId"], json!(alert));
    assert_eq!(got[0]["organizationId"], json!(org));
    assert_eq!(got[0]["balance"], json!("8500"));
}
