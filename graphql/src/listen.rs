//! The accept loop: hyper's HTTP/1 server under limits on slow and many connections.
//!
//! - A request head must arrive within [`ConnLimits::header_timeout`] of the moment the
//!   connection waits for it — on a new connection and between the requests of a
//!   kept-alive one, so an idle keep-alive connection closes after that long too
//!   (hyper's `header_read_timeout`, with a timer: `axum::serve` gives it none).
//! - At most [`ConnLimits::max`] connections at once, and [`ConnLimits::per_address`]
//!   from one address; past either, a connection is answered `503` with `Retry-After`
//!   and closed at once (as mini-redis's `MAX_CONNECTIONS`, but refusing instead of
//!   holding the socket in the backlog).
//! - Each request carries the peer's address (`ConnectInfo<SocketAddr>`), which the
//!   per-client limits use.
//! - On shutdown, the listener closes, each connection finishes the request it is
//!   serving and closes ([`hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown`]),
//!   and the loop waits for them at most [`SHUTDOWN_GRACE`].

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Longest the server waits for connections to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits on connections.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one address.
    pub per_address: usize,
    /// How long a request head may take to arrive (and a kept-alive connection may
    /// sit idle).
    pub header_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max: 1024,
            per_address: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnLimits {
    /// The defaults, with `ORGLINE_CONNECTIONS_MAX`, `ORGLINE_CONNECTIONS_PER_ADDRESS_MAX`
    /// and `ORGLINE_HEADER_TIMEOUT_MS` when set.
    pub fn from_env() -> ConnLimits {
        let d = ConnLimits::default();
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(d)
        };
        ConnLimits {
            max: num("ORGLINE_CONNECTIONS_MAX", d.max as u64) as usize,
            per_address: num("ORGLINE_CONNECTIONS_PER_ADDRESS_MAX", d.per_address as u64) as usize,
            header_timeout: Duration::from_millis(num(
                "ORGLINE_HEADER_TIMEOUT_MS",
                d.header_timeout.as_millis() as u64,
            )),
        }
    }
}

/// Connections open per address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn take(this: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut m = this.0.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot(this.clone(), ip))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.0.lock()
            && let Some(n) = m.get_mut(&self.1)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Answers a connection past the limits and closes it, spending at most a second on
/// it: the request head is read first (an HTTP client takes an answer sent before its
/// request as a protocol error), then `503` with `Retry-After`, then what the client
/// still sends is drained until it closes (closing with its request unread would reset
/// the connection before it reads the answer).
fn refuse(mut stream: TcpStream, why: &'static str) {
    tokio::spawn(async move {
        let body = format!(
            "{{\"errors\":[{{\"message\":\"{why}\",\"extensions\":{{\"code\":\"LIMIT_EXCEEDED\"}}}}]}}"
        );
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 4096];
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then lets open
/// connections finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept:
                    // wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, "the server is at its connection limit; try again");
            continue;
        };
        let Some(slot) = PerAddress::take(&per_address, peer.ip(), limits.per_address) else {
            refuse(stream, "too many connections from this address; try again");
            continue;
        };
        let app = app.clone();
        let http = http.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    tower::Service::call(&mut app, req)
                },
            );
            let conn = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit: all are back when all have closed.
    let all = u32::try_from(limits.max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
    Ok(())
}

/// The client's address: the peer's, or — when the peer is a trusted proxy — the
/// rightmost address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(
    headers: &axum::http::HeaderMap,
    peer: Option<SocketAddr>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 10.0.0.2".parse().expect("header"),
        );
        let proxy: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
        let other: SocketAddr = "198.51.100.7:4000".parse().expect("addr");
        let trusted: Vec<IpAddr> = vec![
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        ];
        assert_eq!(
            client_address(&h, Some(proxy), &trusted),
            Some("203.0.113.9".parse().expect("ip"))
        );
        // Anyone else's X-Forwarded-For is ignored: it is their own to write.
        assert_eq!(client_address(&h, Some(other), &trusted), Some(other.ip()));
        assert_eq!(client_address(&h, Some(proxy), &[]), Some(proxy.ip()));
    }
}
