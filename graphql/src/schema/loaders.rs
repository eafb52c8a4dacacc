//! DataLoaders: where a list resolves related entities (each run's bot, each audit
//! entry's actor), the keys a page asks for at once are loaded in one batch.

use crate::error::ApiError;
use crate::service::Service;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Bots by (organization, bot), deleted ones included (runs still name them).
pub struct BotLoader(pub Arc<Service>);

impl Loader<(Uuid, Uuid)> for BotLoader {
    type Value = domain::bot::Bot;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), domain::bot::Bot>, ApiError> {
        let tree = self.0.projections.console.tree();
        let mut out = HashMap::with_capacity(keys.len());
        for &(org, bot) in keys {
            if let Some(b) = projections::console::query::bot_any(&tree, org, bot)? {
                out.insert((org, bot), b);
            }
        }
        Ok(out)
    }
}

/// Accounts by user id.
pub struct UserLoader(pub Arc<Service>);

impl Loader<Uuid> for UserLoader {
    type Value = projections::accounts::UserView;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<HashMap<Uuid, projections::accounts::UserView>, ApiError> {
        let tree = self.0.projections.accounts.tree();
        let mut out = HashMap::with_capacity(keys.len());
        for &id in keys {
            if let Some(u) = projections::accounts::query::user(&tree, id)? {
                out.insert(id, u);
            }
        }
        Ok(out)
    }
}

pub type Bots = async_graphql::dataloader::DataLoader<BotLoader>;
pub type Users = async_graphql::dataloader::DataLoader<UserLoader>;
