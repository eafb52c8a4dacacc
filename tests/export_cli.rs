//! `orgline export` and `orgline rebuild` as an analyst and an operator run them.

use serde_json::json;
use std::process::Command;
use store::{Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

const ORG_A: Uuid = Uuid::from_u128(0xA);
const ORG_B: Uuid = Uuid::from_u128(0xB);

async fn fill(dir: &std::path::Path) {
    let store = EmbeddedStore::open(dir).expect("open");
    for i in 0..60u64 {
        let org = if i % 3 == 0 { ORG_B } else { ORG_A };
        let kind = ["member.invited", "role.granted", "bot.disabled"][(i % 4 % 3) as usize];
        let meta = Metadata::new(Actor::system(), Some(org), OffsetDateTime::UNIX_EPOCH);
        let e = ProposedEvent::new(kind, json!({ "i": i, "note": "comma, \"quote\"" }), meta);
        store
            .append(&format!("notes-{org}"), ExpectedVersion::Any, vec![e])
            .await
            .expect("append");
    }
}

fn orgline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orgline"))
        .args(args)
        .output()
        .expect("run orgline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn export_streams_the_filtered_log_as_jsonl_and_csv() {
    let dir = tempfile::tempdir().expect("dir");
    fill(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");
    let org = ORG_A.to_string();
    let (code, out, err) = orgline(&[
        "export",
        "--data",
        data,
        "--org",
        &org,
        "--from",
        "3",
        "--to",
        "40",
        "--types",
        "member.invited,bot.disabled",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<(u64, String)> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (
                v["position"].as_u64().expect("position"),
                v["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (0..60u64)
        .filter(|i| i % 3 != 0)
        .map(|i| {
            (
                i + 1,
                ["member.invited", "role.granted", "bot.disabled"][(i % 4 % 3) as usize].to_owned(),
            )
        })
        .filter(|(p, t)| (3..=40).contains(p) && t != "role.granted")
        .collect();
    assert_eq!(got, want);

    let (code, out, err) = orgline(&["export", "--data", data, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let headers = rdr.headers().expect("headers").clone();
    assert_eq!(&headers[0], "position");
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 60);
    let data_json: serde_json::Value =
        serde_json::from_str(&rows[5][11]).expect("data column is JSON");
    assert_eq!(data_json["note"], "comma, \"quote\"");

    let (code, _, err) = orgline(&["export", "--data", "/nonexistent/orgline"]);
    assert_ne!(code, 0);
    assert!(err.contains("holds no Orgline store"), "{err}");
}

#[tokio::test]
async fn rebuild_rebuilds_every_projection_and_refuses_unknown_names() {
    let dir = tempfile::tempdir().expect("dir");
    fill(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");
    let (code, _, err) = orgline(&["rebuild", "--data", data]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = orgline(&["rebuild", "--data", data, "--projection", "audit"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = orgline(&["rebuild", "--data", data, "--projection", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown projection"), "{err}");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let meta = store.db().open_tree("projections").expect("meta");
    assert_eq!(
        meta.len(),
        5,
        "accounts, audit, console, credits and runs are registered"
    );
    assert_eq!(store.head().await.expect("head"), 60);
}
