//! Who may read what: every console field of an organization against owner, admin,
//! member, a custom role, another organization's owner, a bot token, no token and the
//! operator token.

mod common;
use serde_json::json;

/// (field selection, permission it needs; None: every member).
const FIELDS: &[(&str, Option<&str>)] = &[
    ("name", None),
    ("profile { displayName }", None),
    ("viewerPermissions", None),
    ("members(first: 5) { totalCount }", Some("members:read")),
    ("invitations { id }", Some("members:read")),
    ("roles { id }", Some("members:read")),
    ("bots(first: 5) { totalCount }", Some("bots:read")),
    (
        "bot(id: \"00000000-0000-4000-8000-000000000000\") { id }",
        Some("bots:read"),
    ),
    ("runs(first: 5) { totalCount }", Some("runs:read")),
    ("triggers(first: 5) { totalCount }", Some("triggers:read")),
    ("apps { id }", Some("developer:manage")),
    ("subscription { plan }", Some("billing:read")),
    ("paymentMethods { id }", Some("billing:read")),
    ("billingInformation { company }", Some("billing:read")),
    ("invoices(first: 5) { totalCount }", Some("billing:read")),
    ("overview { creditBalance }", Some("console:access")),
    ("usage { balance }", Some("credits:read")),
    ("auditLog(first: 5) { totalCount }", Some("audit:read")),
    (
        "securityPolicy { sessionTtlMinutes }",
        Some("security:manage"),
    ),
];

/// The console fields a contract types as nullable.
const NULLABLE: &[&str] = &["bot", "subscription", "billingInformation"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_field_answers_each_kind_of_viewer_as_its_permissions_say() {
    let s = common::Server::start().await;
    let (owner, _) = s.sign_up("owner@a.test", "Owner").await;
    let org = s.create_org(&owner, "A").await;
    let (admin, _) = s.sign_up("admin@a.test", "Admin").await;
    let (member, _) = s.sign_up("member@a.test", "Member").await;
    let (custom, custom_id) = s.sign_up("custom@a.test", "Custom").await;
    let (other, _) = s.sign_up("other@b.test", "Other").await;
    s.create_org(&other, "B").await;
    // Admin joins with the admin role.
    let d = s
        .ok(
            Some(&owner),
            "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id } } }",
            json!({ "i": { "organizationId": org, "email": "admin@a.test", "roleIds": ["admin"] } }),
        )
        .await;
    let inv = d["inviteMember"]["invitation"]["id"].as_str().expect("id");
    s.ok(
        Some(&admin),
        "mutation($i: InvitationIdInput!) { acceptInvitation(input: $i) { position } }",
        json!({ "i": { "invitationId": inv } }),
    )
    .await;
    s.join(&owner, &org, "member@a.test", &member, "MEMBER")
        .await;
    s.join(
        &owner,
        &org,
        "custom@a.test",
        &custom,
        "EXTERNAL_COLLABORATOR",
    )
    .await;
    let d = s
        .ok(
            Some(&owner),
            "mutation($i: CreateRoleInput!) { createRole(input: $i) { role { id } } }",
            json!({ "i": { "organizationId": org, "name": "Bot watcher", "permissions": ["console:access", "bots:read"] } }),
        )
        .await;
    let role = d["createRole"]["role"]["id"].as_str().expect("role");
    s.ok(
        Some(&owner),
        "mutation($i: GrantRoleInput!) { grantRole(input: $i) { position } }",
        json!({ "i": { "organizationId": org, "userId": custom_id, "roleId": role } }),
    )
    .await;
    let d = s
        .ok(
            Some(&owner),
            "mutation($i: RegisterBotInput!) { registerBot(input: $i) { botToken } }",
            json!({ "i": { "organizationId": org, "name": "b1" } }),
        )
        .await;
    let bot = d["registerBot"]["botToken"]
        .as_str()
        .expect("token")
        .to_owned();

    let everything = |_: &str| true;
    let custom_perms = ["console:access", "bots:read"];
    type Rule<'a> = (
        &'a str,
        Option<&'a str>,
        Box<dyn Fn(&str) -> bool + 'a>,
        &'a str,
    );
    // (who, token, holds(permission), error code when not held)
    let viewers: Vec<Rule> = vec![
        ("owner", Some(&owner), Box::new(everything), ""),
        ("admin", Some(&admin), Box::new(everything), ""),
        ("member", Some(&member), Box::new(|_| false), "FORBIDDEN"),
        (
            "custom",
            Some(&custom),
            Box::new(move |p| custom_perms.contains(&p)),
            "FORBIDDEN",
        ),
        ("bot", Some(&bot), Box::new(|_| false), "FORBIDDEN"),
    ];
    let before = s.head().await;
    for (who, token, holds, code) in &viewers {
        for (field, perm) in FIELDS {
            let query = format!("query($o: ID!) {{ organization(id: $o) {{ {field} }} }}");
            let body = s.gql(*token, &query, json!({ "o": org })).await;
            let allowed = perm.is_none_or(holds);
            if allowed {
                assert!(
                    body.get("errors").is_none(),
                    "{who} reading {field}: {body}"
                );
            } else {
                assert_eq!(
                    body["errors"][0]["extensions"]["code"],
                    json!(code),
                    "{who} reading {field}: {body}"
                );
                // A nullable field is null itself; a non-null one nulls the
                // organization (the nearest nullable field).
                let key = field.split(['(', ' ']).next().unwrap_or(field);
                let expected = if NULLABLE.contains(&key) {
                    json!({ key: null })
                } else {
                    json!(null)
                };
                assert_eq!(body["data"]["organization"], expected, "{who} {field}");
            }
        }
    }
    // Outsiders see nothing of the organization, not even that it exists.
    for (who, token, code) in [
        ("other org's owner", Some(other.as_str()), "NOT_FOUND"),
        ("no token", None, "UNAUTHENTICATED"),
        (
            "a wrong token",
            Some("olu_not-a-real-token"),
            "UNAUTHENTICATED",
        ),
        ("operator", Some(common::OPERATOR), "FORBIDDEN"),
    ] {
        for (field, _) in FIELDS {
            let query = format!("query($o: ID!) {{ organization(id: $o) {{ {field} }} }}");
            let body = s.gql(token, &query, json!({ "o": org })).await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"],
                json!(code),
                "{who} {field}: {body}"
            );
            assert_eq!(
                body["data"],
                json!({ "organization": null }),
                "{who} {field}: {body}"
            );
        }
    }
    // The operator alone sees the projections.
    for (who, token, code) in [
        ("owner", Some(owner.as_str()), Some("FORBIDDEN")),
        ("bot", Some(bot.as_str()), Some("FORBIDDEN")),
        ("no token", None, Some("UNAUTHENTICATED")),
        ("operator", Some(common::OPERATOR), None),
    ] {
        let body = s.gql(token, "{ projections { name } }", json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"].as_str(),
            code,
            "{who}: {body}"
        );
    }
    // A member's own membership list is theirs alone.
    let body = s
        .gql(
            Some(&member),
            "query($o: ID!) { organization(id: $o) { name } viewer { memberships { organization { name } } } }",
            json!({ "o": org }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    // Reads change nothing.
    assert_eq!(s.head().await, before);
    // Writes check permissions too: a member cannot invite, a bot cannot register bots.
    for (token, m) in [
        (
            &member,
            "mutation($o: ID!) { inviteMember(input: {organizationId: $o, email: \"x@y.test\"}) { position } }",
        ),
        (
            &bot,
            "mutation($o: ID!) { registerBot(input: {organizationId: $o, name: \"x\"}) { position } }",
        ),
        (
            &custom,
            "mutation($o: ID!) { changePlan(input: {organizationId: $o, plan: \"team\", seats: 5}) { position } }",
        ),
    ] {
        assert_eq!(
            s.code(Some(token), m, json!({ "o": org })).await,
            "FORBIDDEN",
            "{m}"
        );
    }
    assert_eq!(
        s.code(Some(&other), "mutation($o: ID!) { inviteMember(input: {organizationId: $o, email: \"x@y.test\"}) { position } }", json!({ "o": org })).await,
        "NOT_FOUND"
    );
    assert_eq!(s.head().await, before, "refused writes append nothing");

    // Another user's memberships show only the organizations where the viewer reads the
    // members: the other org's owner joins A, and A's owner does not see B.
    s.join(&owner, &org, "other@b.test", &other, "MEMBER").await;
    let d = s
        .ok(
            Some(&owner),
            "query($o: ID!) { organization(id: $o) { members(first: 50) { edges { node { email user { memberships { organization { id } } } } } } } }",
            json!({ "o": org }),
        )
        .await;
    let edges = d["organization"]["members"]["edges"]
        .as_array()
        .expect("edges");
    let of_other = edges
        .iter()
        .find(|e| e["node"]["email"] == json!("other@b.test"))
        .expect("the other owner is a member now");
    assert_eq!(
        of_other["node"]["user"]["memberships"],
        json!([{ "organization": { "id": org } }]),
        "{d}"
    );
    // ... while they see both of theirs, from the payload of signing in too.
    let d = s
        .ok(
            None,
            "mutation { signIn(input: {email: \"other@b.test\", password: \"correct horse battery\"}) { user { memberships { organization { name } } } } }",
            json!({}),
        )
        .await;
    let mut names: Vec<&str> = d["signIn"]["user"]["memberships"]
        .as_array()
        .expect("memberships")
        .iter()
        .filter_map(|m| m["organization"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["A", "B"], "{d}");
}
