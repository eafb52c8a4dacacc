//! The WebSocket side of `/graphql`: async-graphql runs the protocols
//! (`graphql-transport-ws`, and the legacy `graphql-ws`); this module puts the
//! `graphql-transport-ws` rules the engine leaves out in front of it, with the close
//! codes the protocol names:
//!
//! - 4400: a message that is not JSON, has no `type`, an unknown `type`, or a
//!   `subscribe` without an `id` or a `payload.query`;
//! - 4401: `subscribe` before `connection_init`;
//! - 4408: no `connection_init` within [`INIT_TIMEOUT`];
//! - 4409: `subscribe` with the id of a subscription still running;
//! - 4429: a second `connection_init` (from the engine).
//!
//! Both protocols: no `connection_init` within [`INIT_TIMEOUT`] closes the socket
//! (4408); a message is at most [`MESSAGE_BYTES_MAX`] (larger closes it, 1009); at most
//! [`SUBSCRIPTIONS_MAX`] operations run at once on one socket — one more is answered
//! with an `error` message for its id (`LIMIT_EXCEEDED`) and the socket stays open.
//!
//! The token comes in the `connection_init` payload (`{"Authorization": "Bearer …"}`,
//! `{"authorization": …}`, `{"token": …}` or Apollo's `{"headers": {…}}`) or in the
//! upgrade request's `Authorization` header, and is checked again at every operation
//! and event (see [`crate::server::LiveToken`]).

use crate::schema::OrglineSchema;
use crate::server::{LiveToken, viewer_of};
use crate::service::Service;
use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a client has to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest WebSocket message (and frame) accepted: the HTTP body limit.
pub const MESSAGE_BYTES_MAX: usize = crate::server::BODY_BYTES_MAX;
/// Operations running at once on one socket.
pub const SUBSCRIPTIONS_MAX: usize = 32;

/// What the guard saw of the client, shared with the loop that writes to it.
#[derive(Default)]
struct Guard {
    init: bool,
    /// Subscriptions started and not yet completed (by either side).
    running: HashSet<String>,
    /// The close the guard decided: (code, reason).
    close: Option<(u16, String)>,
}

/// What the guard makes of one client message.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Hand it to the engine.
    Pass,
    /// Drop it and answer its id with an error (too many operations running).
    Refuse(String),
    /// End the connection with the close recorded.
    Close,
}

impl Guard {
    /// Checks one client message of the legacy `graphql-ws`: only what both protocols
    /// share (the init, and the number of operations running).
    fn admit_legacy(&mut self, text: &[u8]) -> Verdict {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(text) else {
            return Verdict::Pass;
        };
        let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
        match m.get("type").and_then(Value::as_str) {
            Some("connection_init") => self.init = true,
            Some("start") if !self.running.contains(id) => {
                if self.running.len() >= SUBSCRIPTIONS_MAX {
                    return Verdict::Refuse(id.to_owned());
                }
                self.running.insert(id.to_owned());
            }
            Some("stop") => {
                self.running.remove(id);
            }
            _ => {}
        }
        Verdict::Pass
    }

    /// Checks one client message of `graphql-transport-ws`.
    fn check(&mut self, text: &[u8]) -> Verdict {
        let message = serde_json::from_slice::<Value>(text).ok();
        let subscribe_id = message.as_ref().and_then(|v| {
            (v.get("type").and_then(Value::as_str) == Some("subscribe"))
                .then(|| v.get("id").and_then(Value::as_str))
                .flatten()
        });
        if self.running.len() >= SUBSCRIPTIONS_MAX
            && self.init
            && let Some(id) = subscribe_id.filter(|id| !self.running.contains(*id))
        {
            return Verdict::Refuse(id.to_owned());
        }
        if self.admit(message) {
            Verdict::Pass
        } else {
            Verdict::Close
        }
    }

    /// Checks one parsed client message of `graphql-transport-ws` (`None`: not
    /// JSON); `false` ends the connection with the close recorded.
    fn admit(&mut self, message: Option<Value>) -> bool {
        let refuse = |g: &mut Guard, code: u16, reason: String| {
            g.close = Some((code, reason));
            false
        };
        let Some(Value::Object(m)) = message else {
            return refuse(
                self,
                4400,
                "Invalid message received: not a JSON object".into(),
            );
        };
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        match m.get("type").and_then(Value::as_str) {
            Some("connection_init") => {
                self.init = true;
                true
            }
            Some("ping" | "pong") => true,
            Some("subscribe") => {
                let query = m
                    .get("payload")
                    .and_then(|p| p.get("query"))
                    .and_then(Value::as_str);
                let Some((id, Some(_))) = id.map(|id| (id, query)) else {
                    return refuse(
                        self,
                        4400,
                        "Invalid message received: subscribe needs an id and payload.query".into(),
                    );
                };
                if !self.init {
                    return refuse(
                        self,
                        4401,
                        "Unauthorized: send connection_init first".into(),
                    );
                }
                if !self.running.insert(id.to_owned()) {
                    return refuse(self, 4409, format!("Subscriber for {id} already exists"));
                }
                true
            }
            Some("complete") => {
                if let Some(id) = id {
                    self.running.remove(id);
                }
                true
            }
            Some(other) => refuse(
                self,
                4400,
                format!("Invalid message received: unknown type {other:?}"),
            ),
            None => refuse(self, 4400, "Invalid message received: no type".into()),
        }
    }

    /// Notes what the server told the client: a `complete` or `error` ends a
    /// subscription, freeing its id.
    fn sent(&mut self, text: &str) {
        if !(text.contains("\"complete\"") || text.contains("\"error\"")) {
            return;
        }
        if let Ok(v) = serde_json::from_str::<Value>(text)
            && matches!(
                v.get("type").and_then(Value::as_str),
                Some("complete" | "error")
            )
            && let Some(id) = v.get("id").and_then(Value::as_str)
        {
            self.running.remove(id);
        }
    }
}

/// The token in a `connection_init` payload, if any.
fn token_of(payload: &Value) -> Option<String> {
    let from = |p: &Value| {
        ["Authorization", "authorization", "token"]
            .iter()
            .find_map(|k| p.get(*k).and_then(Value::as_str))
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned())
    };
    from(payload).or_else(|| payload.get("headers").and_then(from))
}

/// Serves one WebSocket connection until either side ends it.
pub async fn serve(
    socket: WebSocket,
    schema: OrglineSchema,
    svc: Arc<Service>,
    protocol: WebSocketProtocols,
    header_token: Option<String>,
    client: crate::server::ClientAddress,
) {
    let strict = protocol == WebSocketProtocols::GraphQLWS;
    let guard = Arc::new(Mutex::new(Guard::default()));
    let (mut sink, stream) = socket.split();
    // Errors for operations refused for their number, sent by the loop below.
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let input = {
        let (guard, read_guard) = (guard.clone(), guard.clone());
        stream
            .take_while(move |m| {
                if let Err(e) = m {
                    tracing::debug!(error = %e, "WebSocket read ended");
                    // tungstenite refuses a message or frame over the limit.
                    if e.to_string().to_ascii_lowercase().contains("too long")
                        && let Ok(mut g) = read_guard.lock()
                    {
                        g.close = Some((
                            1009,
                            format!("a message is at most {MESSAGE_BYTES_MAX} bytes"),
                        ));
                    }
                }
                futures::future::ready(m.is_ok())
            })
            .filter_map(|m| {
                futures::future::ready(match m {
                    Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                    Ok(Message::Binary(b)) => Some(b.to_vec()),
                    _ => None,
                })
            })
            .map(move |bytes| {
                let verdict = match guard.lock() {
                    Ok(mut g) if strict => g.check(&bytes),
                    Ok(mut g) => g.admit_legacy(&bytes),
                    Err(_) => Verdict::Close,
                };
                (verdict, bytes)
            })
            .take_while(|(v, _)| futures::future::ready(*v != Verdict::Close))
            .filter_map(move |(v, bytes)| {
                futures::future::ready(match v {
                    Verdict::Refuse(id) => {
                        let _ = refused_tx.send(id);
                        None
                    }
                    _ => Some(bytes),
                })
            })
    };
    let init_svc = svc.clone();
    let output = async_graphql::http::WebSocket::new(schema, input, protocol).on_connection_init(
        move |payload| async move {
            let token = token_of(&payload).or(header_token);
            let mut data = async_graphql::Data::default();
            data.insert(viewer_of(&init_svc, token.as_deref()));
            data.insert(LiveToken(token));
            data.insert(client);
            Ok(data)
        },
    );
    futures::pin_mut!(output);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    loop {
        let waiting_for_init = guard.lock().is_ok_and(|g| !g.init);
        let msg = tokio::select! {
            m = output.next() => m,
            Some(id) = refused_rx.recv() => {
                let message = format!(
                    "at most {SUBSCRIPTIONS_MAX} operations run at once on one socket"
                );
                let error = serde_json::json!({
                    "message": message,
                    "extensions": { "code": "LIMIT_EXCEEDED" },
                });
                let payload = if strict { serde_json::json!([error]) } else { error };
                let text = serde_json::json!({ "id": id, "type": "error", "payload": payload });
                if sink.send(Message::Text(text.to_string().into())).await.is_err() {
                    return;
                }
                continue;
            }
            () = &mut init_deadline, if waiting_for_init => {
                if let Ok(mut g) = guard.lock() {
                    g.close = Some((4408, "Connection initialisation timeout".into()));
                }
                None
            }
        };
        let Some(msg) = msg else { break };
        let out = match msg {
            WsMessage::Text(text) => {
                if let Ok(mut g) = guard.lock() {
                    g.sent(&text);
                }
                Message::Text(text.into())
            }
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        if sink.send(out).await.is_err() {
            return;
        }
    }
    let close = guard.lock().ok().and_then(|mut g| g.close.take());
    if let Some((code, reason)) = close {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
}
