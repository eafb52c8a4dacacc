//! Subscriptions over a real WebSocket: `graphql-transport-ws` (and legacy `graphql-ws`).

mod common;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &common::Server, protocol: &str, token: &str) -> Ws {
    let mut req = format!("ws://{}/graphql", s.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })).await;
    let ack = recv(&mut ws).await;
    assert_eq!(ack["type"], json!("connection_ack"), "{ack}");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// The next protocol message that is not a keep-alive.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == json!("ka") || v["type"] == json!("ping") {
                continue;
            }
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_tail_delivers_every_new_entry_in_log_order() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    let org = s.create_org(&owner, "A").await;
    let mut ws = connect(&s, "graphql-transport-ws", &owner).await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($o: ID!) { auditLogTail(organizationId: $o) { position action actor { kind id } } }",
        "variables": { "o": org } } })).await;
    let mut runs = connect(&s, "graphql-transport-ws", &owner).await;
    send(
        &mut runs,
        json!({ "id": "r", "type": "subscribe", "payload": {
        "query": "subscription($o: ID!) { runUpdated(organizationId: $o) { id status task } }",
        "variables": { "o": org } } }),
    )
    .await;
    // Give the subscriptions a moment to start following the log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s.head().await;
    // Writes: a profile change, a bot, its status, a plan, a run.
    s.ok(Some(&owner), "mutation($o: ID!) { updateOrganizationProfile(input: {organizationId: $o, tagline: \"t\"}) { position } }", json!({ "o": org })).await;
    let d = s.ok(Some(&owner), "mutation($o: ID!) { registerBot(input: {organizationId: $o, name: \"b\"}) { bot { id } botToken } }", json!({ "o": org })).await;
    let bot = d["registerBot"]["bot"]["id"]
        .as_str()
        .expect("bot")
        .to_owned();
    let token = d["registerBot"]["botToken"]
        .as_str()
        .expect("token")
        .to_owned();
    s.ok(
        Some(&token),
        "mutation($b: ID!) { reportBotStatus(input: {botId: $b, status: BUSY}) { position } }",
        json!({ "b": bot }),
    )
    .await;
    s.ok(Some(&owner), "mutation($o: ID!) { changePlan(input: {organizationId: $o, plan: \"team\", seats: 5}) { position } }", json!({ "o": org })).await;
    let d = s
        .ok(
            Some(&token),
            "mutation($b: ID!) { startRun(input: {botId: $b, task: \"x\"}) { run { id } } }",
            json!({ "b": bot }),
        )
        .await;
    let run = d["startRun"]["run"]["id"].as_str().expect("run").to_owned();
    s.ok(
        Some(&token),
        "mutation($r: ID!) { completeRun(input: {runId: $r, credits: \"5\"}) { position } }",
        json!({ "r": run }),
    )
    .await;
    let after = s.head().await;
    // What the org's log holds in between, read back through the events query.
    let d = s
        .ok(Some(&owner), "query($o: ID!, $f: Position!) { events(filter: {organizationId: $o, fromPosition: $f}, first: 100) { edges { node { position type } } } }",
            json!({ "o": org, "f": (before + 1).to_string() }))
        .await;
    let expected: Vec<(String, String)> = d["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["position"].as_str().expect("p").to_owned(),
                e["node"]["type"].as_str().expect("t").to_owned(),
            )
        })
        .filter(|(p, _)| p.parse::<u64>().expect("position") <= after)
        .collect();
    assert!(expected.len() >= 8, "{expected:?}");
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let m = recv(&mut ws).await;
        assert_eq!(m["type"], json!("next"), "{m}");
        let e = &m["payload"]["data"]["auditLogTail"];
        got.push((
            e["position"].as_str().expect("p").to_owned(),
            e["action"].as_str().expect("a").to_owned(),
        ));
    }
    assert_eq!(got, expected, "every entry, in log order, none skipped");
    // The run's two updates arrive on the other socket, resolved from the run history.
    let first = recv(&mut runs).await;
    assert_eq!(
        first["payload"]["data"]["runUpdated"]["id"],
        json!(run),
        "{first}"
    );
    let second = recv(&mut runs).await;
    assert_eq!(
        second["payload"]["data"]["runUpdated"]["status"],
        json!("COMPLETED"),
        "{second}"
    );
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_check_permissions_and_speak_the_legacy_protocol() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    let org = s.create_org(&owner, "A").await;
    let (member, _) = s.sign_up("m@a.test", "M").await;
    s.join(&owner, &org, "m@a.test", &member, "MEMBER").await;
    // A member may not tail the audit log.
    let mut ws = connect(&s, "graphql-transport-ws", &member).await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($o: ID!) { auditLogTail(organizationId: $o) { position } }", "variables": { "o": org } } })).await;
    let m = recv(&mut ws).await;
    // Execution errors arrive as `next` with errors (`error` is for invalid documents).
    assert_eq!(m["type"], json!("next"), "{m}");
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("FORBIDDEN"),
        "{m}"
    );
    assert_eq!(m["payload"]["data"], json!(null), "{m}");
    // A document that does not validate gets its code over the socket too.
    send(
        &mut ws,
        json!({ "id": "2", "type": "subscribe", "payload": {
        "query": "subscription { noSuchField }" } }),
    )
    .await;
    let mut m = recv(&mut ws).await;
    while m["id"] != json!("2") {
        m = recv(&mut ws).await;
    }
    let errors = if m["type"] == json!("error") {
        m["payload"].clone()
    } else {
        m["payload"]["errors"].clone()
    };
    assert_eq!(
        errors[0]["extensions"]["code"],
        json!("BAD_USER_INPUT"),
        "{m}"
    );
    // The legacy protocol: bot status changes.
    let mut legacy = connect(&s, "graphql-ws", &owner).await;
    send(&mut legacy, json!({ "id": "7", "type": "start", "payload": {
        "query": "subscription($o: ID!) { botStatusChanged(organizationId: $o) { name status } }", "variables": { "o": org } } })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = s.ok(Some(&owner), "mutation($o: ID!) { registerBot(input: {organizationId: $o, name: \"b\"}) { bot { id } botToken } }", json!({ "o": org })).await;
    let bot = d["registerBot"]["bot"]["id"]
        .as_str()
        .expect("bot")
        .to_owned();
    let token = d["registerBot"]["botToken"]
        .as_str()
        .expect("token")
        .to_owned();
    s.ok(
        Some(&token),
        "mutation($b: ID!) { reportBotStatus(input: {botId: $b, status: ONLINE}) { position } }",
        json!({ "b": bot }),
    )
    .await;
    let m = recv(&mut legacy).await;
    assert_eq!(m["type"], json!("data"), "{m}");
    assert_eq!(
        m["payload"]["data"]["botStatusChanged"],
        json!({ "name": "b", "status": "ONLINE" })
    );
}

/// A WebSocket is only as good as its token and the viewer's rights now: a stream ends
/// with the error at its next event once the viewer loses the permission or signs out,
/// and an operation sent after the sign-out is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_session_ends_or_the_permission_is_revoked() {
    let s = common::Server::start().await;
    let (owner, org, bot, bot_token) = s.team_org().await;
    let (auditor, auditor_id) = s.sign_up("auditor@a.test", "Auditor").await;
    s.join(&owner, &org, "auditor@a.test", &auditor, "MEMBER")
        .await;
    let d = s.ok(Some(&owner), "mutation($o: ID!) { createRole(input: {organizationId: $o, name: \"Auditor\", permissions: [\"audit:read\", \"runs:read\"]}) { role { id } } }", json!({ "o": org })).await;
    let role = d["createRole"]["role"]["id"]
        .as_str()
        .expect("role")
        .to_owned();
    let grant = json!({ "i": { "organizationId": org, "userId": auditor_id, "roleId": role } });
    s.ok(
        Some(&owner),
        "mutation($i: GrantRoleInput!) { grantRole(input: $i) { position } }",
        grant.clone(),
    )
    .await;

    // The auditor's tail works, until the role is revoked: the next event ends it.
    let mut ws = connect(&s, "graphql-transport-ws", &auditor).await;
    send(
        &mut ws,
        json!({ "id": "a", "type": "subscribe", "payload": {
        "query": "subscription($o: ID!) { auditLogTail(organizationId: $o) { action } }",
        "variables": { "o": org } } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.ok(Some(&owner), "mutation($o: ID!) { updateOrganizationProfile(input: {organizationId: $o, tagline: \"x\"}) { position } }", json!({ "o": org })).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["type"], json!("next"), "{m}");
    assert!(
        m["payload"]["data"]["auditLogTail"]["action"].is_string(),
        "{m}"
    );
    s.ok(
        Some(&owner),
        "mutation($i: GrantRoleInput!) { revokeRole(input: $i) { position } }",
        grant.clone(),
    )
    .await;
    let m = recv(&mut ws).await;
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("FORBIDDEN"),
        "{m}"
    );
    let m = recv(&mut ws).await;
    assert_eq!(m, json!({ "id": "a", "type": "complete" }));

    // Runs, with the role back; then the auditor signs out (over HTTP): the stream ends
    // at the next run event, and a query on the same socket is refused.
    s.ok(
        Some(&owner),
        "mutation($i: GrantRoleInput!) { grantRole(input: $i) { position } }",
        grant,
    )
    .await;
    send(
        &mut ws,
        json!({ "id": "r", "type": "subscribe", "payload": {
        "query": "subscription($o: ID!) { runUpdated(organizationId: $o) { status } }",
        "variables": { "o": org } } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = "mutation($b: ID!) { startRun(input: {botId: $b, task: \"t\"}) { position } }";
    s.ok(Some(&bot_token), start, json!({ "b": bot })).await;
    let m = recv(&mut ws).await;
    assert_eq!(
        m["payload"]["data"]["runUpdated"]["status"],
        json!("RUNNING"),
        "{m}"
    );
    s.ok(Some(&auditor), "mutation { signOut { ok } }", json!({}))
        .await;
    s.ok(Some(&bot_token), start, json!({ "b": bot })).await;
    let m = recv(&mut ws).await;
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED"),
        "{m}"
    );
    let m = recv(&mut ws).await;
    assert_eq!(m, json!({ "id": "r", "type": "complete" }));
    send(
        &mut ws,
        json!({ "id": "q", "type": "subscribe", "payload": {
        "query": "query($o: ID!) { organization(id: $o) { name } }",
        "variables": { "o": org } } }),
    )
    .await;
    let m = recv(&mut ws).await;
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED"),
        "{m}"
    );
}

/// Connects without `connection_init`.
async fn raw(s: &common::Server) -> Ws {
    let mut req = format!("ws://{}/graphql", s.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

/// The close code the server ends the connection with.
async fn closed_with(ws: &mut Ws) -> u16 {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("closed within 20 s");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(_)) => continue,
            other => panic!("a close frame, not {other:?}"),
        }
    }
}

/// `graphql-transport-ws` as its specification has it: the close codes for protocol
/// errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_the_codes_of_graphql_transport_ws() {
    let s = common::Server::start().await;
    let (owner, org) = {
        let (t, _) = s.sign_up("owner@a.test", "Owner").await;
        let org = s.create_org(&t, "A").await;
        (t, org)
    };
    let sub = |id: &str| {
        json!({ "id": id, "type": "subscribe", "payload": {
            "query": "subscription($o: ID!) { auditLogTail(organizationId: $o) { action } }",
            "variables": { "o": org } } })
    };
    // Subscribe before connection_init: 4401.
    let mut ws = raw(&s).await;
    send(&mut ws, sub("1")).await;
    assert_eq!(closed_with(&mut ws).await, 4401);
    // Not JSON, or an unknown type: 4400.
    let mut ws = raw(&s).await;
    ws.send(Message::Text("{ not json".into()))
        .await
        .expect("send");
    assert_eq!(closed_with(&mut ws).await, 4400);
    let mut ws = connect(&s, "graphql-transport-ws", &owner).await;
    send(&mut ws, json!({ "type": "bogus" })).await;
    assert_eq!(closed_with(&mut ws).await, 4400);
    // The id of a running subscription again: 4409; after its complete, it is free.
    let mut ws = connect(&s, "graphql-transport-ws", &owner).await;
    send(&mut ws, sub("a")).await;
    send(&mut ws, json!({ "id": "a", "type": "complete" })).await;
    send(&mut ws, sub("a")).await;
    send(&mut ws, sub("a")).await;
    assert_eq!(closed_with(&mut ws).await, 4409);
    // No connection_init in time: 4408.
    let mut ws = raw(&s).await;
    assert_eq!(closed_with(&mut ws).await, 4408);
}
