//! Sign-up, sign-in, sign-out, password changes. Credentials never enter the log: the
//! log records that they happened (`user.registered`, `user.signed_in`,
//! `user.password_changed`…), the credentials tree holds the hashes.

use super::payloads::*;
use crate::auth::{self, Session};
use crate::error::{ApiError, ApiResult};
use crate::schema::scalars::Position;
use crate::schema::types::UserNode;
use crate::schema::{svc, viewer};
use crate::service::{Principal, Service};
use async_graphql::{Context, InputObject, Object};
use domain::organization::SecurityPolicy;
use domain::permissions::PermissionSet;
use domain::user::{User, UserCommand};
use domain::{Actor, streams};
use time::Duration;
use uuid::Uuid;

#[derive(InputObject)]
pub struct SignUpInput {
    pub email: String,
    pub alias: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct SignInInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Default)]
pub struct AccountMutation;

/// The strictest policy of the user's organizations (shortest session, longest password).
fn policy_of(svc: &Service, user: Uuid) -> ApiResult<SecurityPolicy> {
    let mut p = SecurityPolicy::default();
    let mut first = true;
    for (org, _, _) in
        projections::accounts::query::memberships(&svc.projections.accounts.tree(), user)?
    {
        if let Some(doc) = svc.org_doc(org)? {
            let q = doc.policy;
            if first {
                p.session_ttl_minutes = q.session_ttl_minutes;
                first = false;
            }
            p.session_ttl_minutes = p.session_ttl_minutes.min(q.session_ttl_minutes);
            p.min_password_length = p.min_password_length.max(q.min_password_length);
            p.require_mfa |= q.require_mfa;
        }
    }
    Ok(p)
}

async fn hash(svc: &Service, password: String) -> ApiResult<String> {
    svc.creds
        .hashing(move || auth::hash_password(&password))
        .await?
}

async fn verify(svc: &Service, password: String, phc: String) -> ApiResult<bool> {
    svc.creds
        .hashing(move || auth::verify_password(&password, &phc))
        .await
}

/// A hash no password matches, checked for emails without an account so that they
/// cost the same time as those with one (timing does not tell which emails exist).
static NO_ACCOUNT_PHC: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password(&auth::new_token("")).unwrap_or_default());

/// Decides a command of `user`'s account as `actor`.
async fn account(
    svc: &Service,
    user: Uuid,
    actor: Actor,
    command: UserCommand,
) -> ApiResult<crate::writer::Outcome> {
    svc.decide::<User>(
        &streams::user(user),
        None,
        actor,
        PermissionSet::new(),
        command,
    )
    .await
}

/// Opens a session for `user` and records it.
async fn open_session(svc: &Service, user: Uuid) -> ApiResult<(String, u64)> {
    let policy = policy_of(svc, user)?;
    let session_id = Uuid::new_v4();
    let out = account(
        svc,
        user,
        Actor::User(user),
        UserCommand::RecordSignIn { session_id },
    )
    .await?;
    let token = svc.creds.open_session(&Session {
        user_id: user,
        session_id,
        expires_at: Service::now() + Duration::minutes(i64::from(policy.session_ttl_minutes)),
    })?;
    let out = svc.finish(out).await?;
    Ok((token, out.position))
}

#[Object]
impl AccountMutation {
    /// Creates an account and signs it in.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        input: SignUpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let svc = svc(ctx);
        let email = domain::validate::email("email", &input.email)?;
        auth::check_password(
            &input.password,
            SecurityPolicy::default().min_password_length,
        )?;
        let user = Uuid::new_v4();
        // An account of the log (one written by an import or the generator) may have no
        // credentials yet: its email is taken all the same.
        let in_log =
            projections::accounts::query::user_by_email(&svc.projections.accounts.tree(), &email)?
                .is_some();
        if in_log || !svc.creds.reserve_email(&email, user)? {
            return Err(ApiError::conflict(format!("an account with email {email} exists")).into());
        }
        let registered = async {
            let phc = hash(svc, input.password).await?;
            svc.creds.set_password_hash(user, &phc)?;
            let out = account(
                svc,
                user,
                Actor::User(user),
                UserCommand::Register {
                    user_id: user,
                    email: email.clone(),
                    alias: input.alias,
                    email_in_use: false,
                },
            )
            .await?;
            svc.finish(out).await
        }
        .await;
        if let Err(e) = registered {
            // Nothing was registered: free the email again.
            let _ = svc.creds.release_email(&email);
            return Err(e.into());
        }
        let (token, position) = open_session(svc, user).await?;
        Ok(AuthPayload {
            token,
            user: UserNode {
                own: true,
                ..UserNode::load(svc, user)?
            },
            position: Some(Position(position)),
        })
    }

    /// Signs in with email and password; failures are throttled per email and client
    /// address, and per address (`LIMIT_EXCEEDED` with `retryAfterSeconds`).
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        input: SignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        let svc = svc(ctx);
        let email = input.email.trim().to_lowercase();
        if email.len() > domain::validate::EMAIL_BYTES_MAX
            || input.password.len() > auth::PASSWORD_BYTES_MAX
        {
            return Err(ApiError::unauthenticated("wrong email or password").into());
        }
        // Counted before the hash, per (email, address) and per address.
        let address = ctx
            .data_opt::<crate::server::ClientAddress>()
            .and_then(|a| a.0);
        let attempt = svc.creds.throttle.begin(&email, address)?;
        let user = svc.creds.user_of_email(&email)?;
        let phc = match user {
            Some(u) => svc.creds.password_hash(u)?,
            None => None,
        };
        let ok = match phc {
            Some(phc) => verify(svc, input.password, phc).await?,
            None => {
                // Spend the same time as a real check.
                let dummy = NO_ACCOUNT_PHC.clone();
                let _ = verify(svc, input.password, dummy).await?;
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            if let Some(u) = user {
                let out = account(
                    svc,
                    u,
                    Actor::System,
                    UserCommand::RecordSignInFailure {
                        reason: "wrong_password".into(),
                    },
                )
                .await;
                if let Err(e) = out {
                    tracing::warn!(?e, "could not record a failed sign-in");
                }
            }
            return Err(ApiError::unauthenticated("wrong email or password").into());
        };
        svc.creds.throttle.succeeded(attempt);
        let (token, position) = open_session(svc, user).await?;
        Ok(AuthPayload {
            token,
            user: UserNode {
                own: true,
                ..UserNode::load(svc, user)?
            },
            position: Some(Position(position)),
        })
    }

    /// Ends the session of the token sent.
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<MutationResult> {
        let v = viewer(ctx)?;
        let Principal::User {
            user_id,
            session_id,
        } = v.principal
        else {
            v.user()?;
            return Err(ApiError::forbidden("only a user session can sign out").into());
        };
        let svc = svc(ctx);
        svc.creds.close_session(user_id, session_id)?;
        let out = account(
            svc,
            user_id,
            Actor::User(user_id),
            UserCommand::RevokeSession { session_id },
        )
        .await?;
        let out = svc.finish(out).await?;
        Ok(MutationResult {
            ok: true,
            position: Some(Position(out.position)),
        })
    }

    /// Changes the password; every other session of the user ends.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<MutationResult> {
        let v = viewer(ctx)?;
        let user = v.user()?;
        let svc = svc(ctx);
        let policy = policy_of(svc, user)?;
        let phc = svc
            .creds
            .password_hash(user)?
            .ok_or_else(|| ApiError::internal("a user without a password"))?;
        if input.current_password.len() > auth::PASSWORD_BYTES_MAX
            || !verify(svc, input.current_password, phc).await?
        {
            return Err(ApiError::forbidden("the current password is wrong").into());
        }
        auth::check_password(&input.new_password, policy.min_password_length)?;
        let phc = hash(svc, input.new_password).await?;
        svc.creds.set_password_hash(user, &phc)?;
        if let Principal::User { session_id, .. } = v.principal {
            for s in svc.creds.sessions_of(user)? {
                if s != session_id {
                    svc.creds.close_session(user, s)?;
                }
            }
        }
        let out = account(svc, user, Actor::User(user), UserCommand::ChangePassword).await?;
        let out = svc.finish(out).await?;
        Ok(MutationResult {
            ok: true,
            position: Some(Position(out.position)),
        })
    }
}
