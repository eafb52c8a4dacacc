//! Credentials — kept out of the event log, in their own sled tree: Argon2id password
//! hashes, session tokens and bot tokens (random 256-bit, stored as SHA-256 hashes), the
//! email reservations that make sign-up unique, and sign-in throttling.
//!
//! # Layout (tree `credentials`)
//! - `pw/{user}` → Argon2id PHC string
//! - `em/{email}` → user id (reserved before `user.registered` is appended)
//! - `ss/{sha256(token)}` → [`Session`] · `su/{user}/{session}` → token hash
//! - `bt/{sha256(token)}` → [`BotKey`] · `bk/{bot}` → token hash

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest password accepted (Argon2 hashes anything, but a megabyte password is abuse).
pub const PASSWORD_BYTES_MAX: usize = 256;

/// A signed-in session, found by the hash of its token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    pub session_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A bot token's owner.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BotKey {
    pub bot_id: Uuid,
    pub org: Uuid,
}

/// A new random token with a readable prefix (`olu_` user sessions, `olb_` bots).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored of a token: its SHA-256 (the token has 256 random bits, so a fast hash
/// is enough; a leaked tree does not give working tokens).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes). Slow on
/// purpose: call it from a blocking task.
pub fn hash_password(password: &str) -> ApiResult<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A password's form: long enough for the strictest policy that applies, not absurdly long.
pub fn check_password(password: &str, min_chars: u32) -> ApiResult<()> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(ApiError::bad_input(format!(
            "password: longer than {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    if (password.chars().count() as u32) < min_chars {
        return Err(ApiError::bad_input(format!(
            "password: shorter than {min_chars} characters"
        )));
    }
    Ok(())
}

/// The credentials tree, the sign-in throttle and the bound on password hashing.
pub struct Credentials {
    tree: sled::Tree,
    pub throttle: crate::throttle::SignInThrottle,
    hashing: tokio::sync::Semaphore,
}

/// Longest a password check waits for a hashing slot before it is refused as busy.
pub const HASHING_WAIT_MAX: Duration = Duration::from_secs(5);

impl Credentials {
    pub fn open(db: &sled::Db) -> ApiResult<Credentials> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Credentials {
            tree: db.open_tree("credentials")?,
            throttle: crate::throttle::SignInThrottle::default(),
            hashing: tokio::sync::Semaphore::new(cores),
        })
    }

    /// Runs `f` (an Argon2 hash or check) on a blocking thread, at most one per core
    /// at once: each costs 19 MiB and a core for ~50 ms, so 500 concurrent sign-ins
    /// wait their turn instead of taking 10 GB. Past [`HASHING_WAIT_MAX`] in the queue,
    /// the attempt is refused (`LIMIT_EXCEEDED`, retry after a second).
    pub async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let permit = tokio::time::timeout(HASHING_WAIT_MAX, self.hashing.acquire())
            .await
            .map_err(|_| ApiError::retry_after("the server is busy checking passwords", 1))?
            .map_err(ApiError::internal)?;
        let out = tokio::task::spawn_blocking(f)
            .await
            .map_err(ApiError::internal);
        drop(permit);
        out
    }

    /// Reserves `email` for `user`; false if another user holds it.
    pub fn reserve_email(&self, email: &str, user: Uuid) -> ApiResult<bool> {
        let key = format!("em/{email}");
        let done = self.tree.compare_and_swap(
            key,
            None as Option<&[u8]>,
            Some(user.to_string().as_bytes()),
        )?;
        Ok(done.is_ok())
    }

    pub fn release_email(&self, email: &str) -> ApiResult<()> {
        self.tree.remove(format!("em/{email}"))?;
        Ok(())
    }

    pub fn user_of_email(&self, email: &str) -> ApiResult<Option<Uuid>> {
        Ok(self
            .tree
            .get(format!("em/{email}"))?
            .and_then(|v| String::from_utf8_lossy(&v).parse().ok()))
    }

    pub fn set_password_hash(&self, user: Uuid, phc: &str) -> ApiResult<()> {
        self.tree.insert(format!("pw/{user}"), phc.as_bytes())?;
        self.tree.flush()?;
        Ok(())
    }

    pub fn password_hash(&self, user: Uuid) -> ApiResult<Option<String>> {
        Ok(self
            .tree
            .get(format!("pw/{user}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Opens a session; returns its token (shown once).
    pub fn open_session(&self, session: &Session) -> ApiResult<String> {
        let token = new_token("olu_");
        let hash = token_hash(&token);
        let mut batch = sled::Batch::default();
        batch.insert(
            format!("ss/{hash}").as_bytes(),
            serde_json::to_vec(session).map_err(ApiError::internal)?,
        );
        batch.insert(
            format!("su/{}/{}", session.user_id, session.session_id).as_bytes(),
            hash.as_bytes(),
        );
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(token)
    }

    /// The live session of `token`, if any (expired ones are removed on sight).
    pub fn session(&self, token: &str, now: OffsetDateTime) -> ApiResult<Option<Session>> {
        let hash = token_hash(token);
        let Some(v) = self.tree.get(format!("ss/{hash}"))? else {
            return Ok(None);
        };
        let s: Session = serde_json::from_slice(&v).map_err(ApiError::internal)?;
        if s.expires_at <= now {
            self.close_session(s.user_id, s.session_id)?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    pub fn close_session(&self, user: Uuid, session: Uuid) -> ApiResult<()> {
        let key = format!("su/{user}/{session}");
        if let Some(hash) = self.tree.remove(key.as_bytes())? {
            self.tree
                .remove(format!("ss/{}", String::from_utf8_lossy(&hash)))?;
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Every open session of `user` except `keep` (a password change signs out the rest).
    pub fn sessions_of(&self, user: Uuid) -> ApiResult<Vec<Uuid>> {
        let prefix = format!("su/{user}/");
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(prefix.as_bytes()) {
            let (k, _) = kv?;
            if let Ok(id) = String::from_utf8_lossy(&k[prefix.len()..]).parse() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Issues (or replaces) the token of a bot; returns it (shown once).
    pub fn issue_bot_token(&self, key: BotKey) -> ApiResult<String> {
        let token = new_token("olb_");
        let hash = token_hash(&token);
        let mut batch = sled::Batch::default();
        if let Some(old) = self.tree.get(format!("bk/{}", key.bot_id))? {
            batch.remove(format!("bt/{}", String::from_utf8_lossy(&old)).as_bytes());
        }
        batch.insert(
            format!("bt/{hash}").as_bytes(),
            serde_json::to_vec(&key).map_err(ApiError::internal)?,
        );
        batch.insert(format!("bk/{}", key.bot_id).as_bytes(), hash.as_bytes());
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(token)
    }

    pub fn bot_of_token(&self, token: &str) -> ApiResult<Option<BotKey>> {
        let Some(v) = self.tree.get(format!("bt/{}", token_hash(token)))? else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_slice(&v).map_err(ApiError::internal)?,
        ))
    }
}

/// Compares a presented operator token with the configured one in constant time (over
/// their hashes).
pub fn operator_token_matches(presented: &str, configured: Option<&str>) -> bool {
    let Some(configured) = configured.filter(|c| !c.is_empty()) else {
        return false;
    };
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(configured.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
