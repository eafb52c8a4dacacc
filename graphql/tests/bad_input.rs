//! Bad input gets a clear error with its `extensions.code`, and changes nothing.

mod common;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_request_gets_its_code_and_the_store_is_unchanged() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    let org = s.create_org(&owner, "A").await;
    let d = s
        .ok(
            Some(&owner),
            "mutation($i: RegisterBotInput!) { registerBot(input: $i) { bot { id } botToken } }",
            json!({ "i": { "organizationId": org, "name": "b1" } }),
        )
        .await;
    let bot = d["registerBot"]["bot"]["id"]
        .as_str()
        .expect("bot")
        .to_owned();
    let bot_token = d["registerBot"]["botToken"].as_str().expect("t").to_owned();
    let before = s.head().await;

    // --- GraphQL requests that are not right
    let deep = {
        let mut q = String::from("id");
        for _ in 0..4 {
            q = format!(
                "memberships {{ organization {{ members(first: 1) {{ edges {{ node {{ user {{ {q} }} }} }} }} }} }}"
            );
        }
        format!("{{ viewer {{ {q} }} }}")
    };
    let wide = "query($o: ID!) { organization(id: $o) { members(first: 100) { edges { node { user { memberships { organization { members(first: 100) { edges { node { alias email } } } } } } } } } } }";
    let many_aliases: String = (0..3000)
        .map(|i| format!("a{i}: viewer {{ id email alias }} "))
        .collect();
    let org_id = json!({ "o": org });
    let cases: Vec<(&str, Option<&str>, String, Value, &str)> = vec![
        ("syntax error", Some(&owner), "{ viewer { id ".into(), json!({}), "BAD_USER_INPUT"),
        ("unknown field", Some(&owner), "{ viewer { password } }".into(), json!({}), "BAD_USER_INPUT"),
        ("missing argument", Some(&owner), "{ organization { id } }".into(), json!({}), "BAD_USER_INPUT"),
        ("wrong variable type", Some(&owner), "query($o: ID!) { organization(id: $o) { id } }".into(), json!({ "o": [1, 2] }), "BAD_USER_INPUT"),
        ("too deep", Some(&owner), deep, json!({}), "LIMIT_EXCEEDED"),
        ("too complex", Some(&owner), wide.into(), org_id.clone(), "LIMIT_EXCEEDED"),
        ("too many fields", Some(&owner), format!("{{ {many_aliases} }}"), json!({}), "LIMIT_EXCEEDED"),
        ("page too large", Some(&owner), "query($o: ID!) { organization(id: $o) { members(first: 101) { totalCount } } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("negative page", Some(&owner), "query($o: ID!) { organization(id: $o) { runs(first: -1) { totalCount } } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("malformed cursor", Some(&owner), "query($o: ID!) { organization(id: $o) { members(after: \"!!\") { totalCount } } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("malformed id", Some(&owner), "{ organization(id: \"not-an-id\") { id } }".into(), json!({}), "BAD_USER_INPUT"),
        ("unknown id", Some(&owner), "{ organization(id: \"6f1c0000-0000-4000-8000-000000000000\") { id } }".into(), json!({}), "NOT_FOUND"),
        ("no token", None, "{ viewer { id } }".into(), json!({}), "UNAUTHENTICATED"),
        ("wrong token", Some("olu_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "{ viewer { id } }".into(), json!({}), "UNAUTHENTICATED"),
        ("wrong bot token", Some("olb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "{ viewer { id } }".into(), json!({}), "UNAUTHENTICATED"),
        ("asOf with both", Some(&owner), "query($o: ID!) { organization(id: $o, asOf: {position: \"1\", at: \"2026-01-01T00:00:00Z\"}) { id } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("asOf bad date", Some(&owner), "query($o: ID!) { organization(id: $o, asOf: {at: \"yesterday\"}) { id } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("bad audit query", Some(&owner), "query($o: ID!) { organization(id: $o) { auditLog(query: \"colour:red\") { totalCount } } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        // --- mutations with bad values
        ("negative amount", Some(&owner), "mutation($o: ID!) { grantCredits(input: {organizationId: $o, amount: \"-5\", source: \"promo\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("fractional amount", Some(&owner), "mutation($o: ID!) { grantCredits(input: {organizationId: $o, amount: \"1.5\", source: \"promo\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("amount as a word", Some(&owner), "mutation($o: ID!) { purchaseCredits(input: {organizationId: $o, amount: \"lots\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("amount overflows", Some(&owner), "mutation($o: ID!) { grantCredits(input: {organizationId: $o, amount: \"99999999999999999999999\", source: \"promo\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("unknown grant source", Some(&owner), "mutation($o: ID!) { grantCredits(input: {organizationId: $o, amount: \"5\", source: \"gift\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("bad email", Some(&owner), "mutation($o: ID!) { inviteMember(input: {organizationId: $o, email: \"not an email\"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("unknown role", Some(&owner), "mutation($o: ID!) { inviteMember(input: {organizationId: $o, email: \"a@b.test\", roleIds: [\"wizard\"]}) { position } }".into(), org_id.clone(), "NOT_FOUND"),
        ("unknown permission", Some(&owner), "mutation($o: ID!) { createRole(input: {organizationId: $o, name: \"r\", permissions: [\"root\"]}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("empty name", Some(&owner), "mutation($o: ID!) { registerBot(input: {organizationId: $o, name: \"  \"}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("bad cron", Some(&owner), format!("mutation($o: ID!) {{ createTrigger(input: {{organizationId: $o, name: \"t\", kind: SCHEDULE, schedule: \"every day\", botId: \"{bot}\", task: \"x\"}}) {{ position }} }}"), org_id.clone(), "BAD_USER_INPUT"),
        ("unknown bot", Some(&owner), "mutation { enableBot(input: {botId: \"6f1c0000-0000-4000-8000-000000000000\"}) { position } }".into(), json!({}), "NOT_FOUND"),
        ("unknown plan", Some(&owner), "mutation($o: ID!) { changePlan(input: {organizationId: $o, plan: \"platinum\", seats: 5}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("negative seats", Some(&owner), "mutation($o: ID!) { changePlan(input: {organizationId: $o, plan: \"team\", seats: -5}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("card number", Some(&owner), "mutation($o: ID!) { addPaymentMethod(input: {organizationId: $o, brand: \"visa\", last4: \"4242424242424242\", expMonth: 1, expYear: 2030}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("month 13", Some(&owner), "mutation($o: ID!) { addPaymentMethod(input: {organizationId: $o, brand: \"visa\", last4: \"4242\", expMonth: 13, expYear: 2030}) { position } }".into(), org_id.clone(), "BAD_USER_INPUT"),
        ("bad version", Some(&owner), "mutation { publishAppVersion(input: {appId: \"6f1c0000-0000-4000-8000-000000000000\", version: \"one\", visibility: PRIVATE}) { position } }".into(), json!({}), "NOT_FOUND"),
        ("short password", None, "mutation { signUp(input: {email: \"n@n.test\", alias: \"N\", password: \"short\"}) { token } }".into(), json!({}), "BAD_USER_INPUT"),
        ("taken email", None, "mutation { signUp(input: {email: \"OWNER@a.test\", alias: \"N\", password: \"long enough password\"}) { token } }".into(), json!({}), "CONFLICT"),
        ("bot for another bot", Some(&bot_token), "mutation($o: ID!) { consumeCredits(input: {organizationId: $o, amount: \"1\", botId: \"6f1c0000-0000-4000-8000-000000000000\", key: \"k\"}) { position } }".into(), org_id.clone(), "FORBIDDEN"),
        ("credits for a bot not of the org", Some(&owner), "mutation($o: ID!) { consumeCredits(input: {organizationId: $o, amount: \"1\", botId: \"6f1c0000-0000-4000-8000-000000000000\", key: \"k\"}) { position } }".into(), org_id.clone(), "NOT_FOUND"),
        ("credits for a run that is not", Some(&bot_token), format!("mutation($o: ID!) {{ consumeCredits(input: {{organizationId: $o, amount: \"1\", botId: \"{bot}\", runId: \"6f1c0000-0000-4000-8000-000000000000\", key: \"k\"}}) {{ position }} }}"), org_id.clone(), "NOT_FOUND"),
        ("a user starting a run", Some(&owner), format!("mutation {{ startRun(input: {{botId: \"{bot}\", task: \"x\"}}) {{ position }} }}"), json!({}), "FORBIDDEN"),
        ("operator as user", Some(common::OPERATOR), "{ viewer { id } }".into(), json!({}), "FORBIDDEN"),
        ("rebuild as user", Some(&owner), "mutation { rebuildProjection(name: \"audit\") { name } }".into(), json!({}), "FORBIDDEN"),
        ("rebuild unknown", Some(common::OPERATOR), "mutation { rebuildProjection(name: \"nope\") { name } }".into(), json!({}), "NOT_FOUND"),
    ];
    for (name, token, query, vars, code) in &cases {
        let body = s.gql(*token, query, vars.clone()).await;
        let shown: String = body.to_string().chars().take(400).collect();
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            json!(code),
            "{name}: {shown}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{name}: an error says what is wrong");
        assert_eq!(s.head().await, before, "{name} changed the store");
    }

    // --- HTTP-level bad input
    let post = |body: Vec<u8>| {
        s.http
            .post(format!("{}/graphql", s.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(b"{ this is not json".to_vec()).await.expect("send");
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.expect("json");
    assert_eq!(
        b["errors"][0]["extensions"]["code"],
        json!("BAD_USER_INPUT")
    );
    let r = post(b"[]".to_vec()).await.expect("send");
    assert_eq!(r.status(), 400);
    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let r = post(serde_json::to_vec(&batch).expect("json"))
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.expect("json");
    assert_eq!(
        b["errors"][0]["extensions"]["code"],
        json!("LIMIT_EXCEEDED")
    );
    let huge = format!(
        "{{\"query\": \"{{ viewer {{ id }} }}\", \"variables\": {{\"x\": \"{}\"}}}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let r = post(huge.into_bytes()).await.expect("send");
    assert_eq!(r.status(), 413);
    // A batch within the limit works and answers each operation.
    let batch: Vec<Value> = (0..3)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let r = post(serde_json::to_vec(&batch).expect("json"))
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b.as_array().map(Vec::len), Some(3));
    assert_eq!(s.head().await, before, "the store is unchanged");

    // Sign-in attempts are throttled per email.
    for _ in 0..5 {
        let code = s
            .code(None, "mutation { signIn(input: {email: \"owner@a.test\", password: \"wrong password\"}) { token } }", json!({}))
            .await;
        assert_eq!(code, "UNAUTHENTICATED");
    }
    let code = s
        .code(None, "mutation { signIn(input: {email: \"owner@a.test\", password: \"correct horse battery\"}) { token } }", json!({}))
        .await;
    assert_eq!(
        code, "LIMIT_EXCEEDED",
        "the right password is refused while throttled"
    );
}
