//! The README's first command, as a user runs it: `orgline serve --demo` on an empty
//! data directory loads the demo organization, prints how to sign in, serves GraphQL,
//! and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_prints_sign_in_details_that_work_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgline"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env_remove("ORGLINE_OPERATOR_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("orgline serve starts");
    // A failed assertion must not leave the server running.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let _guard = KillOnDrop(child.id());
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut url, mut owner) = (None, None);
    while url.is_none() || owner.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("serve prints its address and the demo sign-in");
        if let Some(rest) = line.strip_prefix("Orgline serving") {
            url = rest.split_whitespace().last().map(str::to_owned);
        }
        if let Some(rest) = line.trim_start().strip_prefix("owner") {
            owner = rest.split_whitespace().last().map(str::to_owned);
        }
    }
    let (url, owner) = (url.expect("url"), owner.expect("owner email"));
    let http = reqwest::Client::new();
    let body: serde_json::Value = http
        .post(format!("{url}/graphql"))
        .json(&serde_json::json!({
            "query": "mutation($e: String!) { signIn(input: {email: $e, password: \"orgline-demo\"}) { token } }",
            "variables": { "e": owner },
        }))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("json");
    let token = body["data"]["signIn"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("signed in: {body}"))
        .to_owned();
    // The signed-in owner's query, answered as JSON.
    let query = |q: &'static str| {
        let req = http
            .post(format!("{url}/graphql"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": q }));
        async move {
            let body: serde_json::Value =
                req.send().await.expect("query").json().await.expect("json");
            body
        }
    };
    let body = query("{ viewer { memberships { organization { name overview { bots { total } } runs(first: 1) { totalCount } members(first: 1) { totalCount } } } } }").await;
    let org = &body["data"]["viewer"]["memberships"][0]["organization"];
    assert_eq!(org["name"], serde_json::json!("Acme Robotics"), "{body}");
    assert!(
        org["runs"]["totalCount"].as_i64().unwrap_or(0) > 1000,
        "{body}"
    );
    assert!(
        org["members"]["totalCount"].as_i64().unwrap_or(0) >= 20,
        "{body}"
    );
    // The demo's bots keep beating while it runs: the scheduler's first round (one
    // tick after the start) leaves them in the statuses the demo gave them.
    tokio::time::sleep(graphql::scheduler::TICK + Duration::from_secs(3)).await;
    let body = query("{ viewer { memberships { organization { bots(first: 50) { edges { node { status lastSeenAt } } } } } } }").await;
    let bots = &body["data"]["viewer"]["memberships"][0]["organization"]["bots"]["edges"];
    let statuses: std::collections::BTreeSet<&str> = bots
        .as_array()
        .unwrap_or_else(|| panic!("bots: {body}"))
        .iter()
        .filter_map(|e| e["node"]["status"].as_str())
        .collect();
    assert!(
        statuses.contains("ONLINE") && statuses.contains("OFFLINE") && statuses.len() >= 3,
        "the demo's bots in every status: {body}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("exits");
    assert!(exit.success(), "a clean shutdown on SIGTERM: {exit:?}");
    // The store it leaves verifies.
    let out = Command::new(env!("CARGO_BIN_EXE_orgline"))
        .args(["verify", "--data"])
        .arg(dir.path())
        .output()
        .expect("verify");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK"));
}
