//! `orgline verify --data DIR` as an operator runs it.

use serde_json::json;
use std::process::Command;
use store::{Actor, EmbeddedStore, EventStore, ExpectedVersion, Metadata, ProposedEvent};
use time::OffsetDateTime;

fn verify(dir: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orgline"))
        .args(["verify", "--data"])
        .arg(dir)
        .output()
        .expect("run orgline");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn verify_prints_ok_and_then_names_the_damaged_position() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        for i in 0..25u64 {
            let meta = Metadata::new(Actor::system(), None, OffsetDateTime::UNIX_EPOCH);
            let e = ProposedEvent::new(
                "run.started",
                json!({ "task": format!("task-{i:04}") }),
                meta,
            );
            store
                .append(&format!("run-{}", i % 4), ExpectedVersion::Any, vec![e])
                .await
                .expect("append");
        }
    }
    let (code, out) = verify(dir.path());
    assert_eq!(
        (code, out.lines().next()),
        (Some(0), Some("OK 25 events (4 streams, 1 segments)"))
    );

    let seg = dir.path().join("log").join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = bytes
        .windows(9)
        .position(|w| w == b"task-0016")
        .expect("event 17 is in the segment");
    bytes[at + 5] = b'9';
    std::fs::write(&seg, bytes).expect("write");
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1));
    assert!(out.starts_with("CORRUPT at position 17:"), "{out}");

    let (code, _) = verify(&dir.path().join("nowhere"));
    assert_eq!(code, Some(2));
}
