//! A real server on 127.0.0.1:0 over a real store in a temp dir, and a small GraphQL
//! client speaking HTTP to it.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::sync::Arc;
use store::{EmbeddedStore, EventStore};

pub struct Server {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<EmbeddedStore>,
    pub svc: Arc<graphql::Service>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub const OPERATOR: &str = "operator-secret-for-tests";

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let config = graphql::Config {
            operator_token: Some(OPERATOR.into()),
            base_url: String::new(),
            response_cache: true,
            private_webhooks: true,
            ..Default::default()
        };
        let svc = graphql::serve::service(store.clone(), config).expect("service");
        graphql::process::spawn(svc.clone())
            .await
            .expect("processes");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = graphql::router(svc.clone());
        tokio::spawn(async move {
            let limits = graphql::listen::ConnLimits::default();
            graphql::listen::serve(listener, app, limits, std::future::pending())
                .await
                .expect("serve");
        });
        Server {
            url: format!("http://{addr}"),
            addr,
            store,
            svc,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub async fn head(&self) -> u64 {
        self.store.head().await.expect("head")
    }

    /// POSTs a GraphQL request; returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        resp.json().await.expect("json body")
    }

    /// Like [`gql`], but panics on errors and returns `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "unexpected errors for {query}: {body:#}"
        );
        body["data"].clone()
    }

    /// The `extensions.code` of the first error (panics when there is none).
    pub async fn code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let body = self.gql(token, query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error for {query}: {body:#}"))
            .to_owned()
    }

    /// Signs up a user; returns (token, user id).
    pub async fn sign_up(&self, email: &str, alias: &str) -> (String, String) {
        let d = self
            .ok(
                None,
                "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }",
                json!({ "i": { "email": email, "alias": alias, "password": "correct horse battery" } }),
            )
            .await;
        (
            d["signUp"]["token"].as_str().expect("token").to_owned(),
            d["signUp"]["user"]["id"].as_str().expect("id").to_owned(),
        )
    }

    /// Creates an organization owned by `token`'s user; returns its id.
    pub async fn create_org(&self, token: &str, name: &str) -> String {
        let d = self
            .ok(
                Some(token),
                "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } position } }",
                json!({ "i": { "name": name, "adminAlias": "Admin", "adminEmail": "admin@example.com" } }),
            )
            .await;
        d["createOrganization"]["organization"]["id"]
            .as_str()
            .expect("org id")
            .to_owned()
    }

    /// Invites `email` and has `token` (that user) accept.
    pub async fn join(&self, owner: &str, org: &str, email: &str, token: &str, kind: &str) {
        let d = self
            .ok(
                Some(owner),
                "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id } } }",
                json!({ "i": { "organizationId": org, "email": email, "kind": kind } }),
            )
            .await;
        let inv = d["inviteMember"]["invitation"]["id"].as_str().expect("inv");
        self.ok(
            Some(token),
            "mutation($i: InvitationIdInput!) { acceptInvitation(input: $i) { position } }",
            json!({ "i": { "invitationId": inv } }),
        )
        .await;
    }

    /// An owner, their organization on the team plan (so runs have credits), and a
    /// bot with its token: (owner token, org id, bot id, bot token).
    pub async fn team_org(&self) -> (String, String, String, String) {
        let (owner, _) = self.sign_up("owner@a.test", "Owner").await;
        let org = self.create_org(&owner, "A").await;
        self.ok(
            Some(&owner),
            "mutation($o: ID!) { changePlan(input: {organizationId: $o, plan: \"team\", seats: 5}) { position } }",
            json!({ "o": org }),
        )
        .await;
        let d = self
            .ok(
                Some(&owner),
                "mutation($o: ID!) { registerBot(input: {organizationId: $o, name: \"b\"}) { bot { id } botToken } }",
                json!({ "o": org }),
            )
            .await;
        let bot = d["registerBot"]["bot"]["id"]
            .as_str()
            .expect("bot")
            .to_owned();
        let token = d["registerBot"]["botToken"]
            .as_str()
            .expect("token")
            .to_owned();
        (owner, org, bot, token)
    }
}
