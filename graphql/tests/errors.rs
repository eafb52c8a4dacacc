//! What a client gets when a field fails, as the GraphQL spec says ("Handling Execution
//! Errors"): the failing field is `null` if it may be, otherwise the `null` goes up to
//! the nearest nullable field (or `data`); no key the query asked for is ever missing;
//! and a response's fields come in the order the query asked for them.

mod common;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_field_nulls_the_nearest_nullable_field_and_keys_keep_the_query_order() {
    let s = common::Server::start().await;
    let (owner, org, bot, bot_token) = s.team_org().await;
    let (member, _) = s.sign_up("member@a.test", "Member").await;
    s.join(&owner, &org, "member@a.test", &member, "MEMBER")
        .await;
    let vars = json!({ "o": org });

    // A non-null field the viewer may not read (`members: MemberConnection!`): its
    // parent, the nullable `organization`, is null; the error names the field.
    let body = s
        .gql(
            Some(&member),
            "query($o: ID!) { organization(id: $o) { id name members(first: 1) { totalCount } } }",
            vars.clone(),
        )
        .await;
    assert_eq!(body["data"], json!({ "organization": null }), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], json!("FORBIDDEN"));
    assert_eq!(errors[0]["path"], json!(["organization", "members"]));

    // A nullable field that fails (`bot: Bot`, a malformed id) is null itself; its
    // siblings are answered.
    let body = s
        .gql(
            Some(&owner),
            "query($o: ID!) { organization(id: $o) { id bot(id: \"not-a-uuid\") { id } name } }",
            vars.clone(),
        )
        .await;
    let o = &body["data"]["organization"];
    assert_eq!(o["id"], json!(org), "{body}");
    assert_eq!(o["name"], json!("A"), "{body}");
    assert!(
        o.as_object().expect("object").contains_key("bot") && o["bot"].is_null(),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("BAD_USER_INPUT")
    );
    assert_eq!(body["errors"][0]["path"], json!(["organization", "bot"]));

    // A non-null root field that fails: `data` is null.
    let body = s.gql(None, "{ viewer { id } }", json!({})).await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED")
    );

    // The order of the query, whatever resolves first (a run's bot goes through a
    // DataLoader, its status does not).
    let d = s
        .ok(
            Some(&bot_token),
            "mutation($b: ID!) { startRun(input: {botId: $b, task: \"t\"}) { position } }",
            json!({ "b": bot }),
        )
        .await;
    assert!(d["startRun"]["position"].is_string());
    let text = s
        .http
        .post(format!("{}/graphql", s.url))
        .bearer_auth(&owner)
        .json(&json!({
            "query": "query($o: ID!) { organization(id: $o) { runs(first: 1) { edges { node { id bot { id name } status task } } } id name } }",
            "variables": vars,
        }))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let at = |key: &str| {
        text.find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("{key} in {text}"))
    };
    assert!(at("runs") < at("node"), "{text}");
    assert!(at("bot") < at("status"), "{text}");
    assert!(at("status") < at("task"), "{text}");
    assert!(
        text.rfind("\"id\"").expect("id") > at("task")
            && at("task") < text.rfind("\"name\"").expect("name"),
        "the organization's id and name after its runs: {text}"
    );
}

/// The contract's `ErrorCode` enum is served (introspection lists it), though no field
/// returns it: clients generate the codes' type from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_lists_the_error_codes() {
    let s = common::Server::start().await;
    let d = s
        .ok(
            None,
            "{ __type(name: \"ErrorCode\") { kind enumValues { name } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = d["__type"]["enumValues"]
        .as_array()
        .unwrap_or_else(|| panic!("ErrorCode is served: {d}"))
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "BAD_USER_INPUT",
            "CONFLICT",
            "LIMIT_EXCEEDED",
            "INTERNAL"
        ]
    );
}
