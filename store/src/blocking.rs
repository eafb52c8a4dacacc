//! Blocking work inside async code: file reads and sled calls that may take more than a
//! few microseconds run through [`run`], so they never hold up the other tasks of an
//! async worker.

/// Runs `f`, which may block for a while. On tokio's multi-threaded runtime the
/// worker's other tasks move to another thread meanwhile
/// ([`tokio::task::block_in_place`]); elsewhere (a current-thread runtime, no
/// runtime) `f` just runs.
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Reads of more than this many events go through [`run`]; smaller ones are a few
/// point reads and cheaper than handing the worker over.
pub const EVENTS_INLINE_MAX: usize = 8;
