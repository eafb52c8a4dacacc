//! Concurrent writers on one hot stream: every command is decided against the state the
//! ones before it left, so consumption never overdraws and nothing acknowledged is lost.

mod common;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumption_never_overdraws_and_loses_nothing() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    let org = s.create_org(&owner, "A").await;
    s.ok(Some(&owner), "mutation($o: ID!) { grantCredits(input: {organizationId: $o, amount: \"200\", source: \"promo\"}) { position } }", json!({ "o": org })).await;
    let mut bots = Vec::new();
    for i in 0..4 {
        let d = s.ok(Some(&owner), "mutation($o: ID!, $n: String!) { registerBot(input: {organizationId: $o, name: $n}) { bot { id } botToken } }", json!({ "o": org, "n": format!("b{i}") })).await;
        bots.push((
            d["registerBot"]["bot"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            d["registerBot"]["botToken"]
                .as_str()
                .expect("token")
                .to_owned(),
        ));
    }
    // 48 consumptions of 10 against a balance of 200, all at once, from 4 bots.
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for n in 0..48 {
        let (s, org) = (s.clone(), org.clone());
        let (bot, token) = bots[n % bots.len()].clone();
        tasks.push(tokio::spawn(async move {
            s.gql(Some(&token), "mutation($o: ID!, $b: ID!, $k: String!) { consumeCredits(input: {organizationId: $o, amount: \"10\", botId: $b, key: $k}) { position } }",
                json!({ "o": org, "b": bot, "k": format!("k{n}") })).await
        }));
    }
    let (mut ok, mut denied) = (0, 0);
    for t in tasks {
        let body = t.await.expect("task");
        match body["errors"][0]["extensions"]["code"].as_str() {
            None => ok += 1,
            Some("LIMIT_EXCEEDED") => denied += 1,
            Some(other) => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, denied), (20, 28));
    let d = s.ok(Some(&owner), "query($o: ID!) { organization(id: $o) { usage { balance consumed } auditLog(first: 1, query: \"action:credits.consumption_denied\") { totalCount } } }", json!({ "o": org })).await;
    assert_eq!(d["organization"]["usage"]["balance"], json!("0"));
    assert_eq!(d["organization"]["usage"]["consumed"], json!("200"));
    assert_eq!(
        d["organization"]["auditLog"]["totalCount"],
        json!(28),
        "every denial recorded"
    );
}
