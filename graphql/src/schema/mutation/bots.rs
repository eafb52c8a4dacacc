//! Bots, runs, triggers and the Developer Center.

use super::payloads::*;
use crate::error::{ApiError, ApiResult};
use crate::schema::scalars::*;
use crate::schema::types::{AppNode, BotNode, RunNode, TriggerNode};
use crate::schema::{access, svc, viewer};
use crate::service::{Access, Service};
use async_graphql::{Context, ID, InputObject, Object};
use domain::app::{App, AppCommand};
use domain::bot::{Bot, BotCommand};
use domain::ledger::{CreditsCommand, Ledger};
use domain::permissions::{Permission, PermissionSet};
use domain::run::{Run, RunCommand};
use domain::trigger::{Trigger, TriggerCommand};
use domain::{Actor, Credits, streams};
use uuid::Uuid;

#[derive(InputObject)]
pub struct RegisterBotInput {
    pub organization_id: ID,
    pub name: String,
    pub machine: Option<String>,
}

#[derive(InputObject)]
pub struct BotIdInput {
    pub bot_id: ID,
}

#[derive(InputObject)]
pub struct DisableBotInput {
    pub bot_id: ID,
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct ReportBotStatusInput {
    pub bot_id: ID,
    pub status: BotStatus,
}

#[derive(InputObject)]
pub struct StartRunInput {
    pub bot_id: ID,
    pub task: String,
    pub trigger_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CompleteRunInput {
    pub run_id: ID,
    pub credits: String,
}

#[derive(InputObject)]
pub struct FailRunInput {
    pub run_id: ID,
    pub error: String,
    pub credits: Option<String>,
}

#[derive(InputObject)]
pub struct RunIdInput {
    pub run_id: ID,
}

#[derive(InputObject)]
pub struct CreateTriggerInput {
    pub organization_id: ID,
    pub name: String,
    pub kind: TriggerKind,
    pub schedule: Option<String>,
    pub bot_id: ID,
    pub task: String,
}

#[derive(InputObject)]
pub struct UpdateTriggerInput {
    pub trigger_id: ID,
    pub name: Option<String>,
    pub schedule: Option<String>,
    pub bot_id: Option<ID>,
    pub task: Option<String>,
}

#[derive(InputObject)]
pub struct TriggerIdInput {
    pub trigger_id: ID,
}

#[derive(InputObject)]
pub struct CreateAppInput {
    pub organization_id: ID,
    pub name: String,
    pub kind: AppKind,
}

#[derive(InputObject)]
pub struct PublishAppVersionInput {
    pub app_id: ID,
    pub version: String,
    pub notes: Option<String>,
    pub visibility: Visibility,
}

#[derive(InputObject)]
pub struct AppIdInput {
    pub app_id: ID,
}

#[derive(Default)]
pub struct BotMutation;

/// The viewer's access to the organization that owns `id`.
fn access_to(ctx: &Context<'_>, what: &str, id: Uuid) -> ApiResult<Access> {
    let org = svc(ctx).owner_of(what, id)?;
    access(ctx, org)
}

async fn bot_command(
    ctx: &Context<'_>,
    id: &ID,
    command: BotCommand,
) -> async_graphql::Result<BotPayload> {
    let svc = svc(ctx);
    let bot = uuid("botId", id)?;
    let a = access_to(ctx, "bot", bot)?;
    let out = svc.mutate::<Bot>(&streams::bot(bot), &a, command).await?;
    Ok(BotPayload {
        bot: BotNode::load(svc, &a, bot)?,
        position: Position(out.position),
    })
}

/// The run and the viewer's access to its organization.
async fn run_of(
    ctx: &Context<'_>,
    id: &ID,
) -> ApiResult<(Uuid, projections::runs::RunView, Access)> {
    let svc = svc(ctx);
    let run = uuid("runId", id)?;
    let view = projections::runs::run(&svc.projections.runs.tree(), svc.store.as_ref(), run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run} not found")))?;
    let a = access(ctx, view.org)?;
    Ok((run, view, a))
}

async fn run_node(svc: &Service, a: &Access, run: Uuid) -> ApiResult<RunNode> {
    let view = projections::runs::run(&svc.projections.runs.tree(), svc.store.as_ref(), run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run} not found")))?;
    Ok(RunNode {
        view,
        access: a.clone(),
    })
}

fn elapsed_ms(view: &projections::runs::RunView) -> u64 {
    u64::try_from((Service::now() - view.started_at).whole_milliseconds()).unwrap_or(0)
}

async fn run_command(
    ctx: &Context<'_>,
    id: &ID,
    command: impl FnOnce(&projections::runs::RunView) -> ApiResult<RunCommand>,
) -> async_graphql::Result<RunPayload> {
    let svc = svc(ctx);
    let (run, view, a) = run_of(ctx, id).await?;
    let command = command(&view)?;
    let out = svc.mutate::<Run>(&streams::run(run), &a, command).await?;
    Ok(RunPayload {
        run: run_node(svc, &a, run).await?,
        position: Position(out.position),
    })
}

/// Starts a run of `bot` as `actor`, after the credits check (refused with
/// `LIMIT_EXCEEDED`, and the refusal recorded, when the balance or the limit stops it).
pub(crate) async fn start_run(
    svc: &Service,
    a: &Access,
    actor: Actor,
    bot: Uuid,
    task: String,
    trigger_id: Option<Uuid>,
) -> ApiResult<(Uuid, u64)> {
    let console = svc.projections.console.tree();
    let state = projections::console::query::bot_any(&console, a.org, bot)?
        .ok_or_else(|| ApiError::not_found(format!("bot {bot} not found")))?;
    let run = Uuid::new_v4();
    let check = svc
        .decide::<Ledger>(
            &streams::credits(a.org),
            Some(a.org),
            actor,
            a.perms.clone(),
            CreditsCommand::CheckRunStart {
                bot_id: bot,
                run_id: run,
            },
        )
        .await?;
    if let Some(err) = domain::ledger::denial_error(&check.events) {
        svc.finish(check).await?;
        return Err(err.into());
    }
    let out = svc
        .decide::<Run>(
            &streams::run(run),
            Some(a.org),
            actor,
            a.perms.clone(),
            RunCommand::Start {
                run_id: run,
                bot_id: bot,
                task,
                trigger_id,
                bot_enabled: state.enabled,
                bot_deleted: state.deleted,
            },
        )
        .await?;
    let out = svc.finish(out).await?;
    Ok((run, out.position))
}

async fn trigger_command(
    ctx: &Context<'_>,
    id: &ID,
    command: impl FnOnce(&Access) -> ApiResult<TriggerCommand>,
) -> async_graphql::Result<(TriggerNode, Position)> {
    let svc = svc(ctx);
    let trigger = uuid("triggerId", id)?;
    let a = access_to(ctx, "trigger", trigger)?;
    let command = command(&a)?;
    let out = svc
        .mutate::<Trigger>(&streams::trigger(trigger), &a, command)
        .await?;
    let node = TriggerNode::load(svc, &a, trigger)?
        .ok_or_else(|| ApiError::not_found(format!("trigger {trigger} not found")))?;
    Ok((node, Position(out.position)))
}

fn bot_in_org(svc: &Service, a: &Access, bot: Uuid) -> ApiResult<bool> {
    Ok(projections::console::query::bot(&svc.projections.console.tree(), a.org, bot)?.is_some())
}

async fn app_command(
    ctx: &Context<'_>,
    id: &ID,
    command: AppCommand,
) -> async_graphql::Result<AppPayload> {
    let svc = svc(ctx);
    let app = uuid("appId", id)?;
    let a = access_to(ctx, "app", app)?;
    let out = svc.mutate::<App>(&streams::app(app), &a, command).await?;
    Ok(AppPayload {
        app: app_node(svc, &a, app)?,
        position: Position(out.position),
    })
}

fn app_node(svc: &Service, a: &Access, app: Uuid) -> ApiResult<AppNode> {
    let tree = svc.projections.console.tree();
    Ok(AppNode {
        id: app,
        app: projections::console::query::app(&tree, a.org, app)?
            .ok_or_else(|| ApiError::not_found(format!("app {app} not found")))?,
        meta: projections::console::query::meta(&tree, app)?,
    })
}

#[Object]
impl BotMutation {
    /// `bots:manage`. The bot token is returned once; only its hash is kept.
    async fn register_bot(
        &self,
        ctx: &Context<'_>,
        input: RegisterBotInput,
    ) -> async_graphql::Result<RegisterBotPayload> {
        let svc = svc(ctx);
        let org = uuid("organizationId", &input.organization_id)?;
        let a = access(ctx, org)?;
        let bot = Uuid::new_v4();
        let out = svc
            .decide::<Bot>(
                &streams::bot(bot),
                Some(org),
                a.actor,
                a.perms.clone(),
                BotCommand::Register {
                    bot_id: bot,
                    name: input.name,
                    machine: input.machine,
                },
            )
            .await?;
        let token = svc
            .creds
            .issue_bot_token(crate::auth::BotKey { bot_id: bot, org })?;
        let out = svc.finish(out).await?;
        Ok(RegisterBotPayload {
            bot: BotNode::load(svc, &a, bot)?,
            bot_token: token,
            position: Position(out.position),
        })
    }

    /// `bots:manage`: a new bot token (returned once); the old one stops working.
    /// (An addition to the contract.)
    async fn rotate_bot_token(
        &self,
        ctx: &Context<'_>,
        input: BotIdInput,
    ) -> async_graphql::Result<RegisterBotPayload> {
        let svc = svc(ctx);
        let bot = uuid("botId", &input.bot_id)?;
        let a = access_to(ctx, "bot", bot)?;
        let out = svc
            .decide::<Bot>(
                &streams::bot(bot),
                Some(a.org),
                a.actor,
                a.perms.clone(),
                BotCommand::RotateToken,
            )
            .await?;
        let token = svc.creds.issue_bot_token(crate::auth::BotKey {
            bot_id: bot,
            org: a.org,
        })?;
        let out = svc.finish(out).await?;
        Ok(RegisterBotPayload {
            bot: BotNode::load(svc, &a, bot)?,
            bot_token: token,
            position: Position(out.position),
        })
    }

    /// `bots:manage`.
    async fn enable_bot(
        &self,
        ctx: &Context<'_>,
        input: BotIdInput,
    ) -> async_graphql::Result<BotPayload> {
        bot_command(ctx, &input.bot_id, BotCommand::Enable).await
    }

    /// `bots:manage`.
    async fn disable_bot(
        &self,
        ctx: &Context<'_>,
        input: DisableBotInput,
    ) -> async_graphql::Result<BotPayload> {
        bot_command(
            ctx,
            &input.bot_id,
            BotCommand::Disable {
                reason: input.reason,
            },
        )
        .await
    }

    /// The bot's own token, or `bots:manage`.
    async fn report_bot_status(
        &self,
        ctx: &Context<'_>,
        input: ReportBotStatusInput,
    ) -> async_graphql::Result<BotPayload> {
        let status: domain::events::BotStatus = input.status.into();
        let payload = bot_command(ctx, &input.bot_id, BotCommand::ReportStatus { status }).await?;
        // A report is also the bot's heartbeat (silent for 2 minutes: offline).
        let svc = svc(ctx);
        svc.heartbeat(payload.bot.id, payload.bot.access.org, status);
        Ok(payload)
    }

    /// The bot's own token; disabled bots are refused, and so is a run the credits
    /// cannot pay for (`LIMIT_EXCEEDED`).
    pub(crate) async fn start_run(
        &self,
        ctx: &Context<'_>,
        input: StartRunInput,
    ) -> async_graphql::Result<RunPayload> {
        let svc = svc(ctx);
        let bot = uuid("botId", &input.bot_id)?;
        let a = access_to(ctx, "bot", bot)?;
        let trigger_id = input
            .trigger_id
            .as_ref()
            .map(|t| uuid("triggerId", t))
            .transpose()?;
        if let Some(t) = trigger_id
            && svc.owner_of("trigger", t).ok() != Some(a.org)
        {
            return Err(ApiError::not_found(format!("trigger {t} not found")).into());
        }
        if !matches!(a.actor, Actor::Bot(b) if b == bot) {
            return Err(ApiError::forbidden("only the bot itself starts its runs").into());
        }
        let (run, position) = start_run(svc, &a, a.actor, bot, input.task, trigger_id).await?;
        Ok(RunPayload {
            run: run_node(svc, &a, run).await?,
            position: Position(position),
        })
    }

    /// The run's bot. Consumes `credits` from the organization's balance.
    async fn complete_run(
        &self,
        ctx: &Context<'_>,
        input: CompleteRunInput,
    ) -> async_graphql::Result<RunPayload> {
        let credits = Credits::parse("credits", &input.credits)?;
        run_command(ctx, &input.run_id, |view| {
            Ok(RunCommand::Complete {
                duration_ms: elapsed_ms(view),
                credits,
            })
        })
        .await
    }

    /// The run's bot.
    async fn fail_run(
        &self,
        ctx: &Context<'_>,
        input: FailRunInput,
    ) -> async_graphql::Result<RunPayload> {
        let credits = input
            .credits
            .as_deref()
            .map(|c| Credits::parse("credits", c))
            .transpose()?;
        run_command(ctx, &input.run_id, |view| {
            Ok(RunCommand::Fail {
                duration_ms: elapsed_ms(view),
                error: input.error,
                credits,
            })
        })
        .await
    }

    /// The run's bot or `bots:manage`.
    async fn cancel_run(
        &self,
        ctx: &Context<'_>,
        input: RunIdInput,
    ) -> async_graphql::Result<RunPayload> {
        run_command(ctx, &input.run_id, |_| {
            Ok(RunCommand::Cancel { reason: None })
        })
        .await
    }

    /// `triggers:manage`.
    async fn create_trigger(
        &self,
        ctx: &Context<'_>,
        input: CreateTriggerInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let svc = svc(ctx);
        let org = uuid("organizationId", &input.organization_id)?;
        let bot_id = uuid("botId", &input.bot_id)?;
        let a = access(ctx, org)?;
        let trigger = Uuid::new_v4();
        let command = TriggerCommand::Create {
            trigger_id: trigger,
            name: input.name,
            kind: input.kind.into(),
            schedule: input.schedule,
            bot_id,
            task: input.task,
            bot_exists: bot_in_org(svc, &a, bot_id)?,
        };
        let out = svc
            .mutate::<Trigger>(&streams::trigger(trigger), &a, command)
            .await?;
        Ok(TriggerPayload {
            trigger: TriggerNode::load(svc, &a, trigger)?
                .ok_or_else(|| ApiError::internal("a created trigger is missing"))?,
            position: Position(out.position),
        })
    }

    /// `triggers:manage`.
    async fn update_trigger(
        &self,
        ctx: &Context<'_>,
        input: UpdateTriggerInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let svc = svc(ctx);
        let bot_id = input
            .bot_id
            .as_ref()
            .map(|b| uuid("botId", b))
            .transpose()?;
        let (trigger, position) = trigger_command(ctx, &input.trigger_id, |a| {
            Ok(TriggerCommand::Update {
                name: input.name,
                schedule: input.schedule,
                bot_id,
                task: input.task,
                bot_exists: match bot_id {
                    Some(b) => bot_in_org(svc, a, b)?,
                    None => true,
                },
            })
        })
        .await?;
        Ok(TriggerPayload { trigger, position })
    }

    /// `triggers:manage`.
    async fn enable_trigger(
        &self,
        ctx: &Context<'_>,
        input: TriggerIdInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let (trigger, position) =
            trigger_command(ctx, &input.trigger_id, |_| Ok(TriggerCommand::Enable)).await?;
        Ok(TriggerPayload { trigger, position })
    }

    /// `triggers:manage`.
    async fn disable_trigger(
        &self,
        ctx: &Context<'_>,
        input: TriggerIdInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let (trigger, position) =
            trigger_command(ctx, &input.trigger_id, |_| Ok(TriggerCommand::Disable)).await?;
        Ok(TriggerPayload { trigger, position })
    }

    /// `triggers:manage`.
    async fn delete_trigger(
        &self,
        ctx: &Context<'_>,
        input: TriggerIdInput,
    ) -> async_graphql::Result<MutationResult> {
        let (_, position) =
            trigger_command(ctx, &input.trigger_id, |_| Ok(TriggerCommand::Delete)).await?;
        Ok(MutationResult {
            ok: true,
            position: Some(position),
        })
    }

    /// `triggers:manage`: fires the trigger by hand; its bot runs its task.
    async fn fire_trigger(
        &self,
        ctx: &Context<'_>,
        input: TriggerIdInput,
    ) -> async_graphql::Result<RunPayload> {
        let svc = svc(ctx);
        let trigger = uuid("triggerId", &input.trigger_id)?;
        let a = access_to(ctx, "trigger", trigger)?;
        a.require(Permission::TriggersManage)?;
        let state = projections::console::query::trigger_any(
            &svc.projections.console.tree(),
            a.org,
            trigger,
        )?
        .filter(|t| !t.deleted)
        .ok_or_else(|| ApiError::not_found(format!("trigger {trigger} not found")))?;
        let bot = state
            .bot_id
            .ok_or_else(|| ApiError::conflict("the trigger has no bot"))?;
        let run_id = Uuid::new_v4();
        // The fire is the user's; the run it starts is the system's, as a scheduled one is.
        let fired = svc
            .mutate::<Trigger>(
                &streams::trigger(trigger),
                &a,
                TriggerCommand::Fire { run_id },
            )
            .await?;
        let all: PermissionSet = Permission::ALL.iter().copied().collect();
        let system = Access {
            org: a.org,
            actor: Actor::System,
            perms: all,
            doc: a.doc.clone(),
        };
        let (run, position) =
            start_run(svc, &system, Actor::System, bot, state.task, Some(trigger)).await?;
        Ok(RunPayload {
            run: run_node(svc, &a, run).await?,
            position: Position(position.max(fired.position)),
        })
    }

    /// `developer:manage`, by a certified developer.
    async fn create_app(
        &self,
        ctx: &Context<'_>,
        input: CreateAppInput,
    ) -> async_graphql::Result<AppPayload> {
        let svc = svc(ctx);
        let org = uuid("organizationId", &input.organization_id)?;
        let a = access(ctx, org)?;
        let user = viewer(ctx)?.user()?;
        let app = Uuid::new_v4();
        let certified = a.doc.members.get(&user).is_some_and(|m| m.developer);
        let out = svc
            .mutate::<App>(
                &streams::app(app),
                &a,
                AppCommand::Create {
                    app_id: app,
                    name: input.name,
                    kind: input.kind.into(),
                    developer_certified: certified,
                },
            )
            .await?;
        Ok(AppPayload {
            app: app_node(svc, &a, app)?,
            position: Position(out.position),
        })
    }

    /// The app's developer or `developer:manage`.
    async fn publish_app_version(
        &self,
        ctx: &Context<'_>,
        input: PublishAppVersionInput,
    ) -> async_graphql::Result<AppPayload> {
        let command = AppCommand::PublishVersion {
            version: input.version,
            notes: input.notes,
            visibility: input.visibility.into(),
        };
        app_command(ctx, &input.app_id, command).await
    }

    /// The app's developer or `developer:manage`.
    async fn unpublish_app(
        &self,
        ctx: &Context<'_>,
        input: AppIdInput,
    ) -> async_graphql::Result<AppPayload> {
        app_command(ctx, &input.app_id, AppCommand::Unpublish).await
    }
}
