//! Damaged logs: a torn tail is cut at open; damage anywhere else is named, by
//! position, by `verify` and by the reads that meet it; tampering that keeps the CRC
//! right is caught by the hash chain.

use serde_json::json;
use std::path::{Path, PathBuf};
use store::{
    Actor, Direction, EmbeddedStore, EventStore, ExpectedVersion, Metadata, Options, ProposedEvent,
    StoreError,
};
use time::OffsetDateTime;
use uuid::Uuid;

fn event(n: u64) -> ProposedEvent {
    let meta = Metadata::new(
        Actor::system(),
        Some(Uuid::from_u128(9)),
        OffsetDateTime::UNIX_EPOCH,
    );
    ProposedEvent::new(
        "credits.consumed",
        json!({ "amount": 100 + n, "n": n }),
        meta,
    )
}

/// Appends `appends` appends of `per` events, one at a time (one batch each), to
/// streams `s-0`..`s-4`; returns every event id in position order.
async fn fill(dir: &Path, options: Options, appends: u64, per: u64) -> Vec<Uuid> {
    let store = EmbeddedStore::open_with(dir, options).expect("open");
    let mut ids = Vec::new();
    for a in 0..appends {
        let events: Vec<ProposedEvent> = (0..per).map(|k| event(a * per + k)).collect();
        ids.extend(events.iter().map(|e| e.id));
        store
            .append(&format!("s-{}", a % 5), ExpectedVersion::Any, events)
            .await
            .expect("append");
    }
    ids
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The segment file and the byte range of the frame (header included) holding `id`.
fn frame_of(dir: &Path, id: Uuid) -> (PathBuf, std::ops::Range<usize>) {
    let needle = id.to_string();
    for seg in segments(dir) {
        let bytes = std::fs::read(&seg).expect("read segment");
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            let frame = at..at + 8 + len;
            if String::from_utf8_lossy(&bytes[frame.clone()]).contains(&needle) {
                return (seg, frame);
            }
            at = frame.end;
        }
    }
    panic!("event {id} is in no segment");
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).expect("read");
    f(&mut bytes);
    std::fs::write(path, bytes).expect("write");
}

fn small_segments() -> Options {
    Options {
        segment_bytes: 4 << 10,
        ..Options::default()
    }
}

fn expect_corrupt_at<T: std::fmt::Debug>(r: Result<T, StoreError>, position: u64) {
    match r {
        Err(StoreError::Corrupt { position: p, .. }) => assert_eq!(p, position),
        other => panic!("expected corruption at {position}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_truncated_last_record_is_cut_off_at_open_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    fill(dir.path(), Options::default(), 10, 3).await;
    let last = segments(dir.path()).pop().expect("a segment");
    edit(&last, |b| b.truncate(b.len() - 5));
    expect_corrupt_at(store::verify::verify(dir.path()), 30);

    let store = EmbeddedStore::open(dir.path()).expect("open cuts the torn tail");
    assert_eq!(
        store.head().await.expect("head"),
        27,
        "the torn batch is gone whole"
    );
    let r = store
        .append("s-9", ExpectedVersion::Any, vec![event(99)])
        .await
        .expect("append after");
    assert_eq!(r.position, 28);
    assert_eq!(store.read_all(1, 100).await.expect("read").len(), 28);
    drop(store);
    assert_eq!(
        store::verify::verify(dir.path()).expect("verify").events,
        28
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_sealed_segment_is_named_by_position() {
    let dir = tempfile::tempdir().expect("dir");
    let ids = fill(dir.path(), small_segments(), 40, 5).await;
    assert!(
        segments(dir.path()).len() > 5,
        "the log spans many segments"
    );
    let (seg, frame) = frame_of(dir.path(), ids[56]);
    assert_ne!(
        seg,
        segments(dir.path()).pop().expect("last"),
        "the damage is in a sealed segment"
    );
    edit(&seg, |b| b[frame.start + 70] ^= 0x20);

    expect_corrupt_at(store::verify::verify(dir.path()), 57);
    let store = EmbeddedStore::open_with(dir.path(), small_segments())
        .expect("open reads no sealed segment");
    expect_corrupt_at(store.read_all(50, 100).await, 57);
    assert_eq!(
        store
            .read_all(1, 56)
            .await
            .expect("before the damage")
            .len(),
        56
    );
    assert_eq!(
        store
            .read_all(58, 1000)
            .await
            .expect("after the damage")
            .len(),
        200 - 57
    );
}

#[tokio::test]
async fn a_flipped_byte_inside_the_active_segment_stops_open_with_its_position() {
    let dir = tempfile::tempdir().expect("dir");
    let ids = fill(dir.path(), Options::default(), 20, 2).await;
    let (seg, frame) = frame_of(dir.path(), ids[9]);
    edit(&seg, |b| b[frame.start + 80] ^= 0x01);
    expect_corrupt_at(store::verify::verify(dir.path()), 10);
    expect_corrupt_at(EmbeddedStore::open(dir.path()).map(|_| ()), 10);
}

#[tokio::test]
async fn tampering_that_keeps_the_crc_right_breaks_the_hash_chain() {
    let dir = tempfile::tempdir().expect("dir");
    let ids = fill(dir.path(), Options::default(), 12, 1).await;
    let (seg, frame) = frame_of(dir.path(), ids[7]);
    edit(&seg, |b| {
        let body = frame.start + 8..frame.end;
        let text = String::from_utf8(b[body.clone()][49..].to_vec()).expect("json");
        let forged = text.replace("\"amount\":107", "\"amount\":907");
        assert_ne!(forged, text, "the amount is in the record");
        b[body.start + 49..body.end].copy_from_slice(forged.as_bytes());
        let crc = crc32c::crc32c(&b[body.clone()]);
        b[frame.start + 4..frame.start + 8].copy_from_slice(&crc.to_le_bytes());
    });
    match store::verify::verify(dir.path()) {
        Err(StoreError::Corrupt { position, reason }) => {
            assert_eq!(position, 8);
            assert!(reason.contains("hash"), "{reason}");
        }
        other => panic!("expected a broken hash chain, got {other:?}"),
    }
    // The forged event still reads (its CRC holds) but its hash gives it away.
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let s = store
        .read_stream("s-2", 0, Direction::Forwards, 10)
        .await
        .expect("read");
    assert!(s.iter().any(|e| e.data_value()["amount"] == 907));
}
