//! An attacker on the network, against the real server started as a child process on
//! 127.0.0.1 (`orgline serve`): each request that once crashed, stalled or bloated the
//! server is refused — clearly, at once — and the process stays up, small, and its log
//! unchanged. Bounds on time and memory are loose on purpose (a debug build, a shared
//! machine); the figures belong to `orgline-bench hostile` (benches/RESULTS.md).
//!
//! Each row of the attack uses its own loopback source address (127.0.0.x), so the
//! per-address limits of one row do not touch the next.

use benches::hostile::{self, Ws, fanout, nested_list, source};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const OPERATOR: &str = "hostile-test-operator";

/// Header read timeout the servers run with here (the default is 10 s).
const HEADER_TIMEOUT_MS: u64 = 1_500;

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_orgline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .env("ORGLINE_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS.to_string())
            .env("ORGLINE_OPERATOR_TOKEN", OPERATOR)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("orgline serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Server {
            child,
            addr: "127.0.0.1:1".parse().expect("addr"),
            _dir: dir,
        };
        let mut server = server;
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("serve prints its address");
            if let Some(rest) = line.strip_prefix("Orgline serving") {
                let url = rest.split_whitespace().last().expect("url");
                server.addr = url
                    .trim_start_matches("http://")
                    .parse()
                    .expect("an address");
                break;
            }
        }
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The child's resident memory, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is alive");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Where every projection stands: unchanged means nothing was appended.
    async fn positions(&self) -> Value {
        let body: Value = reqwest::get(format!("{}/readyz", self.url()))
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        body["projections"].clone()
    }

    async fn healthy(&mut self) {
        assert!(self.alive(), "the server process is alive");
        let started = Instant::now();
        let ok = reqwest::get(format!("{}/healthz", self.url()))
            .await
            .expect("healthz answers")
            .status();
        assert!(ok.is_success());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "healthz answered at once"
        );
    }
}

fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn post(c: &reqwest::Client, s: &Server, body: &Value) -> (u16, Value) {
    let resp = c
        .post(format!("{}/graphql", s.url()))
        .json(body)
        .send()
        .await
        .expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

async fn ws(s: &Server, from: IpAddr, protocol: &str, init: bool) -> Ws {
    ws_as(s, from, protocol, init, "").await
}

async fn ws_as(s: &Server, from: IpAddr, protocol: &str, init: bool, token: &str) -> Ws {
    hostile::ws(s.addr, from, protocol, init, token)
        .await
        .expect("a WebSocket, acknowledged")
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap_or_else(|_| panic!("a message within 20 s"))
            .expect("open")
            .expect("a message");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Close(c) => return json!({"close": c.map(|c| u16::from(c.code))}),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_and_bodies_are_refused_before_they_cost_anything() {
    let mut s = Server::start();
    let before = s.positions().await;

    // Row 1: values nested 2,000 (a list) and 3,000 (an object) deep, over POST, GET
    // and a WebSocket: refused, and the process lives.
    let c = client(source(11));
    let object = format!("{{ a(x: {}1{}) }}", "{a: ".repeat(3000), "}".repeat(3000));
    for q in [nested_list(2000), object] {
        let started = Instant::now();
        let (status, body) = post(&c, &s, &json!({ "query": q })).await;
        assert_eq!(code(&body), "LIMIT_EXCEEDED", "{status} {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "nesting",
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let resp = c
            .get(format!("{}/graphql", s.url()))
            .query(&[("query", &q)])
            .send()
            .await
            .expect("GET answered");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(code(&body), "LIMIT_EXCEEDED", "GET: {body}");
        s.healthy().await;
    }
    let mut sock = ws(&s, source(11), "graphql-transport-ws", true).await;
    sock.send(Message::text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": nested_list(2000)}})
            .to_string(),
    ))
    .await
    .expect("send");
    // The engine answers a document refused before execution as `next` with errors
    // (then `complete`); `error` is as good.
    let m = next_json(&mut sock).await;
    let errors = match m["type"].as_str() {
        Some("error") => m["payload"].clone(),
        Some("next") => m["payload"]["errors"].clone(),
        _ => panic!("{m}"),
    };
    assert_eq!(errors[0]["extensions"]["code"], "LIMIT_EXCEEDED", "{m}");
    s.healthy().await;

    // Row 2: fragments that each spread the next twice, 24 and 40 levels deep: refused
    // by their expanded size, without expanding them.
    for levels in [24, 40] {
        let started = Instant::now();
        let (_, body) = post(&c, &s, &json!({ "query": fanout(levels) })).await;
        assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "selections",
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused in {:?}",
            started.elapsed()
        );
    }
    // A small fan-out is still a valid document.
    let (_, body) = post(&c, &s, &json!({ "query": fanout(4) })).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");

    // Row 3: 300 POSTs of `{ __typename }` padded with a 900 KB comment hold nothing.
    let rss = s.rss_mib();
    let c3 = client(source(13));
    let padded = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(900 * 1024)) });
    for _ in 0..300 {
        let (_, body) = post(&c3, &s, &padded).await;
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "queryBytes",
            "{body}"
        );
    }
    let grown = s.rss_mib() - rss;
    assert!(grown < 100.0, "the server kept {grown:.0} MiB");

    // Row 7: anonymous introspection with 11 `__schema` aliases is answered but not
    // kept (anonymous responses are not cached).
    let intro: String = (0..11)
        .map(|i| format!("s{i}: __schema {{ types {{ name fields {{ name type {{ name kind ofType {{ name }} }} }} }} }} "))
        .collect();
    let rss = s.rss_mib();
    let c7 = client(source(17));
    for i in 0..40 {
        // Each request a different text, as an attacker would send.
        let (_, body) = post(&c7, &s, &json!({ "query": format!("{{ {intro} }} # {i}") })).await;
        assert!(body["data"]["s0"]["types"].is_array(), "{body}");
    }
    let grown = s.rss_mib() - rss;
    assert!(grown < 100.0, "the server kept {grown:.0} MiB");

    // Row 9: a WebSocket message over the limit closes the socket; more operations at
    // once than a socket may run are refused one by one, the socket stays open.
    let mut big = ws(&s, source(19), "graphql-transport-ws", true).await;
    let huge = format!(
        "{{\"type\":\"ping\",\"payload\":{{\"x\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let _ = big.send(Message::text(huge)).await;
    let closed = hostile::closed(&mut big, Duration::from_secs(10))
        .await
        .expect("the socket closes");
    assert!(
        matches!(closed, None | Some(1009)),
        "closed with {closed:?}"
    );
    let mut many = ws_as(&s, source(19), "graphql-transport-ws", true, OPERATOR).await;
    let sub = "subscription { projectionProgress { name position } }";
    for i in 0..33 {
        many.send(Message::text(
            json!({"id": format!("s{i}"), "type": "subscribe", "payload": {"query": sub}})
                .to_string(),
        ))
        .await
        .expect("send");
    }
    let refused = loop {
        let m = next_json(&mut many).await;
        if m["type"] == "error" {
            break m;
        }
        assert!(m.get("close").is_none(), "the socket stays open: {m}");
    };
    assert_eq!(refused["id"], "s32", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "LIMIT_EXCEEDED"
    );
    many.send(Message::text(
        json!({"id": "p", "type": "ping"}).to_string(),
    ))
    .await
    .expect("still open");

    s.healthy().await;
    assert_eq!(s.positions().await, before, "nothing was appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_sockets_idle_sockets_and_password_guessing_are_bounded() {
    let mut s = Server::start();

    // Row 4: a request head sent one header line at a time, forever: closed once the
    // header timeout passes.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source(24), 0)).expect("bind");
    let mut slow = socket.connect(s.addr).await.expect("connect");
    slow.write_all(b"POST /graphql HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let closed_after = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let line = format!("x-slow-{}: y\r\n", started.elapsed().as_millis());
        if slow.write_all(line.as_bytes()).await.is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(10), slow.read(&mut buf)).await
        {
            // 408, or the end of the stream: either way the server let go.
            assert!(
                n == 0 || buf.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                &buf[..n]
            );
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still open after 15 s"
        );
    };
    assert!(
        closed_after >= Duration::from_millis(HEADER_TIMEOUT_MS - 400),
        "closed after {closed_after:?}"
    );

    // An idle kept-alive connection closes after the same timeout.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source(24), 0)).expect("bind");
    let mut idle = socket.connect(s.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let eof = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the idle connection closes");
    assert_eq!(eof.ok(), Some(0));

    // Row 8: legacy graphql-ws sockets that never send connection_init are closed too.
    let mut legacy = ws(&s, source(28), "graphql-ws", false).await;
    let started = Instant::now();
    let m = hostile::closed(&mut legacy, Duration::from_secs(15))
        .await
        .expect("closed within 15 s");
    assert_eq!(m, Some(4408));
    assert!(started.elapsed() >= Duration::from_secs(9));

    // Rows 5 and 6 need an account: the owner signs up from their own address.
    let owner = client(source(50));
    let (_, body) = post(
        &owner,
        &s,
        &json!({ "query": "mutation { signUp(input: {email: \"owner@hostile.example\", alias: \"Owner\", password: \"correct horse battery\"}) { token } }" }),
    )
    .await;
    assert!(body["data"]["signUp"]["token"].is_string(), "{body}");
    let sign_in = |email: &str, password: &str| {
        json!({
            "query": "mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { token } }",
            "variables": { "e": email, "p": password },
        })
    };

    // Row 5: 512 concurrent sign-ins for unknown emails: every one answered, the
    // hashing bounded (one Argon2 per core at once), memory bounded.
    let rss = s.rss_mib();
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss));
    let sampler = {
        let (peak, pid) = (peak.clone(), s.child.id());
        tokio::spawn(async move {
            loop {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse::<f64>().ok())
                    && let Ok(mut p) = peak.lock()
                {
                    *p = p.max(kb / 1024.0);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let flood = client(source(55));
    let answers = futures_util::future::join_all((0..512).map(|i| {
        let (flood, body) = (
            flood.clone(),
            sign_in(&format!("nobody{i}@hostile.example"), "guess-guess"),
        );
        let url = format!("{}/graphql", s.url());
        async move {
            match flood.post(url).json(&body).send().await {
                Ok(r) if r.status().as_u16() == 503 => "503".to_owned(),
                Ok(r) => code(&r.json::<Value>().await.unwrap_or(Value::Null)).to_owned(),
                Err(e) => format!("transport error: {e:?}"),
            }
        }
    }))
    .await;
    sampler.abort();
    let grown = *peak.lock().expect("peak") - rss;
    for a in &answers {
        assert!(
            ["UNAUTHENTICATED", "LIMIT_EXCEEDED", "503"].contains(&a.as_str()),
            "{a}"
        );
    }
    // The address is capped across emails: most were refused before any hash.
    let refused = answers.iter().filter(|a| *a != "UNAUTHENTICATED").count();
    assert!(refused >= 400, "{refused} of 512 refused");
    assert!(grown < 200.0, "the server grew {grown:.0} MiB at peak");

    // Row 6: 40 concurrent wrong passwords for the owner from one address: only the
    // free failures reach the hash, the rest are refused at once with when to retry.
    let attacker = client(source(60));
    let answers = futures_util::future::join_all((0..40).map(|_| {
        let body = sign_in("owner@hostile.example", "wrong password!");
        let (attacker, url) = (attacker.clone(), format!("{}/graphql", s.url()));
        async move {
            let body: Value = attacker
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            body
        }
    }))
    .await;
    let wrong = answers
        .iter()
        .filter(|b| code(b) == "UNAUTHENTICATED")
        .count();
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|b| code(b) == "LIMIT_EXCEEDED")
        .collect();
    assert_eq!(wrong, 5, "{answers:?}");
    assert_eq!(limited.len(), 35);
    assert!(
        limited
            .iter()
            .all(|b| b["errors"][0]["extensions"]["retryAfterSeconds"].as_u64() >= Some(1)),
        "{limited:?}"
    );
    // The owner, from their own address, is not locked out.
    let (_, body) = post(
        &owner,
        &s,
        &sign_in("owner@hostile.example", "correct horse battery"),
    )
    .await;
    assert!(body["data"]["signIn"]["token"].is_string(), "{body}");
    // Nor from any other address that has not failed.
    let (_, body) = post(
        &client(source(61)),
        &s,
        &sign_in("owner@hostile.example", "correct horse battery"),
    )
    .await;
    assert!(body["data"]["signIn"]["token"].is_string(), "{body}");
    s.healthy().await;
}
