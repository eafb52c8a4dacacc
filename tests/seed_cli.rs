//! `orgline seed` as an operator runs it: a demo store that verifies, and a second
//! seed into the same store refused.

use std::process::Command;

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

#[test]
fn seeding_demo_writes_a_verified_store_and_seeding_again_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("store");
    let data = data.to_str().expect("utf-8 path");
    let (code, out, err) = orgline(&["seed", "--data", data, "--scale", "demo", "--seed", "3"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("seeded "), "{out}");
    assert!(out.contains("Acme Robotics"), "{out}");
    assert!(out.contains("olivia.chen@acme-robotics.example"), "{out}");
    let seeded: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("the number of events");
    assert!(seeded > 5_000, "{out}");

    let (code, out, err) = orgline(&["verify", "--data", data]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with(&format!("OK {seeded} events")), "{out}");

    let (code, out, err) = orgline(&["seed", "--data", data, "--scale", "demo"]);
    assert_ne!(code, 0, "seeding a store twice is refused: {out}");
    assert!(err.contains("not empty"), "{err}");
    let (_, out, _) = orgline(&["verify", "--data", data]);
    assert!(
        out.starts_with(&format!("OK {seeded} events")),
        "nothing was added: {out}"
    );

    let (code, _, err) = orgline(&["seed", "--data", data, "--scale", "huge"]);
    assert_ne!(code, 0);
    assert!(err.contains("huge"), "{err}");
}
