//! `serve --demo`: the demo organization from `fixtures`, with sign-in details.

use crate::service::Service;
use std::sync::Arc;
use store::EmbeddedStore;

pub struct Demo {
    pub users: Vec<(uuid::Uuid, String, String)>,
}

pub async fn ensure(_store: &Arc<EmbeddedStore>) -> anyhow::Result<Demo> {
    anyhow::bail!("the demo generator is not wired yet")
}

pub fn set_passwords(_svc: &Service, _demo: &Demo) -> anyhow::Result<()> {
    Ok(())
}

pub fn print(_demo: &Demo, _addr: std::net::SocketAddr) {}
