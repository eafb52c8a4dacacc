//! Reads after writes, time travel, the event log for analysts, audit exports, and the
//! process manager repairing a follow-up a crash left undone.

mod common;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_sent_after_a_mutation_always_sees_it() {
    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    for i in 1..=40u64 {
        let d = s
            .ok(Some(&token), "mutation($o: ID!, $b: ID!, $k: String!) { consumeCredits(input: {organizationId: $o, amount: \"7\", botId: $b, key: $k}) { position } }",
                json!({ "o": org, "b": bot, "k": format!("key-{i}") }))
            .await;
        let position: u64 = d["consumeCredits"]["position"]
            .as_str()
            .expect("p")
            .parse()
            .expect("u64");
        let d = s
            .ok(Some(&owner), "query($o: ID!) { organization(id: $o) { usage { balance consumed } auditLog(first: 1) { edges { node { position action } } } } }", json!({ "o": org }))
            .await;
        assert_eq!(
            d["organization"]["usage"]["balance"],
            json!((10_000 - 7 * i).to_string()),
            "after consumption {i}"
        );
        assert_eq!(
            d["organization"]["usage"]["consumed"],
            json!((7 * i).to_string())
        );
        let newest: u64 = d["organization"]["auditLog"]["edges"][0]["node"]["position"]
            .as_str()
            .expect("p")
            .parse()
            .expect("u64");
        assert!(
            newest >= position,
            "the audit log shows the write at {position}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_shows_the_organization_as_it_was() {
    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    let d = s.ok(Some(&owner), "mutation($o: ID!) { updateOrganizationProfile(input: {organizationId: $o, tagline: \"old\"}) { position } }", json!({ "o": org })).await;
    let then = d["updateOrganizationProfile"]["position"]
        .as_str()
        .expect("p")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.ok(Some(&owner), "mutation($o: ID!) { updateOrganizationProfile(input: {organizationId: $o, tagline: \"new\"}) { position } }", json!({ "o": org })).await;
    let d = s.ok(Some(&token), "mutation($o: ID!, $b: ID!) { consumeCredits(input: {organizationId: $o, amount: \"100\", botId: $b, key: \"k\"}) { position } }", json!({ "o": org, "b": bot })).await;
    assert!(d["consumeCredits"]["position"].is_string());
    s.ok(
        Some(&owner),
        "mutation($b: ID!) { disableBot(input: {botId: $b}) { position } }",
        json!({ "b": bot }),
    )
    .await;
    let q = "query($o: ID!, $p: TimePoint) { organization(id: $o, asOf: $p) { profile { tagline } bots(first: 5) { edges { node { enabled } } } usage { balance } overview { creditBalance } auditLog(first: 100) { totalCount edges { node { position } } } } }";
    for point in [json!({ "position": then }), json!({ "at": at })] {
        let d = s.ok(Some(&owner), q, json!({ "o": org, "p": point })).await;
        let o = &d["organization"];
        assert_eq!(o["profile"]["tagline"], json!("old"), "{point}");
        assert_eq!(
            o["bots"]["edges"][0]["node"]["enabled"],
            json!(true),
            "{point}"
        );
        assert_eq!(o["usage"]["balance"], json!("10000"), "{point}");
        assert_eq!(o["overview"]["creditBalance"], json!("10000"), "{point}");
        let then: u64 = then.parse().expect("u64");
        for e in o["auditLog"]["edges"].as_array().expect("edges") {
            let p: u64 = e["node"]["position"]
                .as_str()
                .expect("p")
                .parse()
                .expect("u64");
            assert!(p <= then, "the past audit log stops at {then}: {p}");
        }
    }
    let d = s.ok(Some(&owner), q, json!({ "o": org, "p": null })).await;
    assert_eq!(d["organization"]["profile"]["tagline"], json!("new"));
    assert_eq!(d["organization"]["usage"]["balance"], json!("9900"));
    assert_eq!(
        s.code(
            Some(&owner),
            q,
            json!({ "o": org, "p": { "position": "1" } })
        )
        .await,
        "NOT_FOUND",
        "the organization did not exist yet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_page_through_the_log_and_auditors_download_it() {
    let s = common::Server::start().await;
    let (owner, org, _, _) = s.team_org().await;
    let (other, _) = s.sign_up("o@b.test", "O").await;
    let other_org = s.create_org(&other, "B").await;
    // The events query pages through the org's events, oldest first, nothing of org B.
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let d = s.ok(Some(&owner), "query($a: String) { events(first: 3, after: $a) { edges { cursor node { position type stream meta } } pageInfo { hasNextPage endCursor } } }", json!({ "a": after })).await;
        for e in d["events"]["edges"].as_array().expect("edges") {
            assert_eq!(e["node"]["meta"]["org"], json!(org), "{e}");
            seen.push(
                e["node"]["position"]
                    .as_str()
                    .expect("p")
                    .parse::<u64>()
                    .expect("u64"),
            );
        }
        if d["events"]["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = d["events"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert!(
        seen.len() >= 5 && seen.windows(2).all(|w| w[0] < w[1]),
        "{seen:?}"
    );
    assert_eq!(
        s.code(
            Some(&owner),
            "query($o: ID!) { events(filter: {organizationId: $o}) { edges { cursor } } }",
            json!({ "o": other_org })
        )
        .await,
        "NOT_FOUND"
    );
    let d = s.ok(Some(common::OPERATOR), "{ events(first: 100, filter: {types: [\"organization.created\"]}) { edges { node { data } } } }", json!({})).await;
    assert_eq!(
        d["events"]["edges"].as_array().map(Vec::len),
        Some(2),
        "the operator reads every org"
    );

    // Audit exports, as JSON Lines and CSV; the export is itself recorded.
    let get = |path: String, token: Option<String>| {
        let mut r = s.http.get(format!("{}{path}", s.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = get(
        format!("/organizations/{org}/audit-log.jsonl"),
        Some(owner.clone()),
    )
    .await
    .expect("get");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), seen.len(), "every entry of the org");
    let r = get(
        format!("/organizations/{org}/audit-log.csv?actions=subscription.plan_changed"),
        Some(owner.clone()),
    )
    .await
    .expect("get");
    let csv = r.text().await.expect("text");
    assert_eq!(csv.lines().count(), 2, "a header and one entry: {csv}");
    let d = s.ok(Some(&owner), "query($o: ID!) { organization(id: $o) { auditLog(first: 5, filter: {actions: [\"audit.exported\"]}) { totalCount edges { node { data } } } } }", json!({ "o": org })).await;
    assert_eq!(d["organization"]["auditLog"]["totalCount"], json!(2), "{d}");
    for (path, token, status) in [
        (format!("/organizations/{org}/audit-log.jsonl"), None, 401),
        (
            format!("/organizations/{org}/audit-log.jsonl"),
            Some(other.clone()),
            404,
        ),
        (
            format!("/organizations/{org}/audit-log.xml"),
            Some(owner.clone()),
            404,
        ),
        (
            format!("/organizations/{org}/audit-log.csv?from=yesterday"),
            Some(owner.clone()),
            400,
        ),
        (
            // A misspelt filter (actor for actorId) is refused, not ignored.
            format!("/organizations/{org}/audit-log.jsonl?actor=x"),
            Some(owner.clone()),
            400,
        ),
    ] {
        let r = get(path.clone(), token).await.expect("get");
        assert_eq!(r.status(), status, "{path}");
    }
    // GET /graphql without a query (or a WebSocket upgrade it cannot speak) says how.
    let r = get("/graphql".into(), None).await.expect("get");
    assert_eq!(r.status(), 400);
    // Health, readiness, metrics.
    assert_eq!(
        get("/healthz".into(), None).await.expect("get").status(),
        200
    );
    assert_eq!(
        get("/readyz".into(), None).await.expect("get").status(),
        200
    );
    let m = get("/metrics".into(), None)
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        m.contains("orgline_http_requests_total") && m.contains("orgline_projection_lag_events"),
        "{m}"
    );
    let page = get("/".into(), None)
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(page.to_lowercase().contains("graphiql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_a_crash_left_undone_is_carried_out_by_the_process_manager() {
    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    let d = s
        .ok(
            Some(&token),
            "mutation($b: ID!) { startRun(input: {botId: $b, task: \"t\"}) { run { id } } }",
            json!({ "b": bot }),
        )
        .await;
    let run: uuid::Uuid = d["startRun"]["run"]["id"]
        .as_str()
        .expect("run")
        .parse()
        .expect("uuid");
    let org_id: uuid::Uuid = org.parse().expect("uuid");
    // The run's completion is appended, and the server "crashes" before consuming its
    // credits: decide without the mutation's follow-ups.
    s.svc
        .decide::<domain::run::Run>(
            &domain::streams::run(run),
            Some(org_id),
            domain::Actor::Bot(bot.parse().expect("uuid")),
            Default::default(),
            domain::run::RunCommand::Complete {
                duration_ms: 5,
                credits: domain::Credits(250),
            },
        )
        .await
        .expect("completed");
    let mut balance = Value::Null;
    for _ in 0..100 {
        let d = s
            .ok(
                Some(&owner),
                "query($o: ID!) { organization(id: $o) { usage { balance } } }",
                json!({ "o": org }),
            )
            .await;
        balance = d["organization"]["usage"]["balance"].clone();
        if balance == json!("9750") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        balance,
        json!("9750"),
        "the process manager consumed the run's credits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_page_with_opaque_cursors() {
    let s = common::Server::start().await;
    let (owner, org, _, _) = s.team_org().await;
    for i in 0..4 {
        s.ok(Some(&owner), "mutation($o: ID!, $n: String!) { registerBot(input: {organizationId: $o, name: $n}) { position } }", json!({ "o": org, "n": format!("bot-{i}") })).await;
    }
    for (field, extra) in [
        ("bots", ""),
        ("members", ""),
        ("runs", ""),
        ("invoices", ""),
        ("auditLog", ""),
    ] {
        let mut after: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        let mut total;
        loop {
            let q = format!(
                "query($o: ID!, $a: String) {{ organization(id: $o) {{ {field}(first: 2, after: $a{extra}) {{ totalCount edges {{ cursor node {{ __typename }} }} pageInfo {{ hasNextPage endCursor hasPreviousPage }} }} }} }}"
            );
            let d = s
                .ok(Some(&owner), &q, json!({ "o": org, "a": after }))
                .await;
            let c = &d["organization"][field];
            total = c["totalCount"].as_u64();
            let edges = c["edges"].as_array().expect("edges");
            assert!(edges.len() <= 2);
            for e in edges {
                assert!(
                    seen.insert(e["cursor"].as_str().expect("cursor").to_owned()),
                    "{field}: a cursor twice"
                );
            }
            assert_eq!(c["pageInfo"]["hasPreviousPage"], json!(after.is_some()));
            if c["pageInfo"]["hasNextPage"] != json!(true) {
                break;
            }
            after = c["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(Some(seen.len() as u64), total, "{field}: every item once");
        assert!(!seen.is_empty() || field == "runs", "{field}");
    }
}

/// The payload of `createOrganization` shows what its follow-up (the free plan's
/// subscription) wrote, whether the mutation or the process manager carried it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_organizations_payload_has_its_subscription() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    for i in 0..60 {
        let d = s
            .ok(
                Some(&owner),
                "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { subscription { plan } overview { seats { total } } } } }",
                json!({ "i": { "name": format!("Org {i}"), "adminAlias": "Admin", "adminEmail": "admin@example.com" } }),
            )
            .await;
        assert_eq!(
            d["createOrganization"]["organization"]["subscription"]["plan"],
            json!("free"),
            "try {i}: {d}"
        );
    }
}

/// `consumed` and `breakdown` take `from` and `to` to the instant, not to the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_windows_are_exact_to_the_instant() {
    let s = common::Server::start().await;
    let (owner, org, bot, token) = s.team_org().await;
    let consume = "mutation($o: ID!, $b: ID!, $a: String!, $k: String!) { consumeCredits(input: {organizationId: $o, amount: $a, botId: $b, key: $k}) { position } }";
    let now = || {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let mut marks = Vec::new();
    for (amount, key) in [("7", "a"), ("11", "b"), ("13", "c")] {
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.ok(
            Some(&token),
            consume,
            json!({ "o": org, "b": bot, "a": amount, "k": key }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        marks.push(now());
    }
    let q = "query($o: ID!, $f: DateTime, $t: DateTime) { organization(id: $o) { usage { consumed(from: $f, to: $t) breakdown(by: BOT, from: $f, to: $t) { key credits runs } } } }";
    for (f, t, want) in [
        (None, None, 31),
        (Some(&marks[0]), None, 24),
        (None, Some(&marks[1]), 18),
        (Some(&marks[0]), Some(&marks[1]), 11),
        (Some(&marks[2]), None, 0),
    ] {
        let d = s
            .ok(Some(&owner), q, json!({ "o": org, "f": f, "t": t }))
            .await;
        let u = &d["organization"]["usage"];
        assert_eq!(u["consumed"], json!(want.to_string()), "{f:?}..{t:?}: {d}");
        let by_bot: u64 = u["breakdown"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                r["credits"]
                    .as_str()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(by_bot, want, "{f:?}..{t:?}: {d}");
    }
}
