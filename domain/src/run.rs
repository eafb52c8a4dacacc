//! One run of a task by a bot — stream `run-<run_id>`.
//!
//! RUNNING → COMPLETED | FAILED | CANCELLED, exactly once. A run is started by its
//! bot (bot token) or by the system when a trigger fires; a disabled or deleted bot
//! starts nothing. The credits a run reports are consumed from the ledger by a process
//! keyed by the run id, so they are consumed once.

use crate::aggregate::Aggregate;
use crate::amounts::Credits;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{Event, RunCancelled, RunCompleted, RunFailed, RunStarted};
use crate::permissions::Permission;
use crate::validate;
use uuid::Uuid;

/// Longest task name.
pub const TASK_CHARS_MAX: usize = 200;
/// Longest duration a run may report: 30 days.
pub const DURATION_MS_MAX: u64 = 30 * 24 * 3_600_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunStatus {
    #[default]
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunCommand {
    /// `bot_enabled`/`bot_deleted`: the bot's state, loaded by the caller.
    Start {
        run_id: Uuid,
        bot_id: Uuid,
        task: String,
        trigger_id: Option<Uuid>,
        bot_enabled: bool,
        bot_deleted: bool,
    },
    Complete {
        duration_ms: u64,
        credits: Credits,
    },
    Fail {
        duration_ms: u64,
        error: String,
        credits: Option<Credits>,
    },
    Cancel {
        reason: Option<String>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub id: Option<Uuid>,
    pub bot_id: Option<Uuid>,
    pub task: String,
    pub trigger_id: Option<Uuid>,
    pub status: RunStatus,
    pub duration_ms: Option<u64>,
    pub credits: Option<Credits>,
    pub error: Option<String>,
}

impl Run {
    fn check_running(&self, action: &'static str) -> Result<Uuid, DomainError> {
        let bot = self
            .bot_id
            .ok_or_else(|| DomainError::not_found("run", "(unstarted)"))?;
        if self.status != RunStatus::Running {
            return Err(DomainError::wrong_state("run", self.status.name(), action));
        }
        Ok(bot)
    }
}

fn check_bot_or_system(ctx: &Context, bot: Uuid) -> Result<(), DomainError> {
    match ctx.actor {
        Actor::Bot(b) if b == bot => Ok(()),
        Actor::System => Ok(()),
        _ => Err(DomainError::NotPermitted(
            "only the run's own bot reports it",
        )),
    }
}

fn check_duration(ms: u64) -> Result<(), DomainError> {
    if ms > DURATION_MS_MAX {
        return Err(DomainError::invalid(
            "durationMs",
            format!("at most {DURATION_MS_MAX}"),
        ));
    }
    Ok(())
}

impl Aggregate for Run {
    type Command = RunCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted(e) => {
                self.id = Some(e.run_id);
                self.bot_id = Some(e.bot_id);
                self.task = e.task.clone();
                self.trigger_id = e.trigger_id;
                self.status = RunStatus::Running;
            }
            Event::RunCompleted(e) => {
                self.status = RunStatus::Completed;
                self.duration_ms = Some(e.duration_ms);
                self.credits = Some(e.credits);
            }
            Event::RunFailed(e) => {
                self.status = RunStatus::Failed;
                self.duration_ms = Some(e.duration_ms);
                self.credits = e.credits;
                self.error = Some(e.error.clone());
            }
            Event::RunCancelled(_) => self.status = RunStatus::Cancelled,
            _ => {}
        }
    }

    fn decide(&self, command: &RunCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            RunCommand::Start {
                run_id,
                bot_id,
                task,
                trigger_id,
                bot_enabled,
                bot_deleted,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::exists("run", run_id));
                }
                check_bot_or_system(ctx, *bot_id)?;
                if *bot_deleted {
                    return Err(DomainError::wrong_state("bot", "deleted", "start runs"));
                }
                if !*bot_enabled {
                    return Err(DomainError::wrong_state("bot", "disabled", "start runs"));
                }
                let task = validate::name("task", task)?;
                if task.chars().count() > TASK_CHARS_MAX {
                    return Err(DomainError::invalid(
                        "task",
                        format!("longer than {TASK_CHARS_MAX} characters"),
                    ));
                }
                Ok(vec![
                    RunStarted {
                        run_id: *run_id,
                        bot_id: *bot_id,
                        task,
                        trigger_id: *trigger_id,
                    }
                    .into(),
                ])
            }
            RunCommand::Complete {
                duration_ms,
                credits,
            } => {
                let bot = self.check_running("complete")?;
                check_bot_or_system(ctx, bot)?;
                check_duration(*duration_ms)?;
                Ok(vec![
                    RunCompleted {
                        duration_ms: *duration_ms,
                        credits: *credits,
                    }
                    .into(),
                ])
            }
            RunCommand::Fail {
                duration_ms,
                error,
                credits,
            } => {
                let bot = self.check_running("fail")?;
                check_bot_or_system(ctx, bot)?;
                check_duration(*duration_ms)?;
                let error = validate::text("error", error, validate::TEXT_CHARS_MAX)?;
                Ok(vec![
                    RunFailed {
                        duration_ms: *duration_ms,
                        error,
                        credits: *credits,
                    }
                    .into(),
                ])
            }
            RunCommand::Cancel { reason } => {
                let bot = self.check_running("cancel")?;
                if check_bot_or_system(ctx, bot).is_err() {
                    ctx.require(Permission::BotsManage)?;
                }
                let reason = reason
                    .as_deref()
                    .map(|r| validate::text("reason", r, validate::TEXT_CHARS_MAX))
                    .transpose()?;
                Ok(vec![RunCancelled { reason }.into()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};

    const RUN: Uuid = Uuid::from_u128(50);
    const BOT: Uuid = Uuid::from_u128(40);

    fn start(enabled: bool, deleted: bool) -> RunCommand {
        RunCommand::Start {
            run_id: RUN,
            bot_id: BOT,
            task: "reconcile".into(),
            trigger_id: None,
            bot_enabled: enabled,
            bot_deleted: deleted,
        }
    }
    fn started() -> Event {
        RunStarted {
            run_id: RUN,
            bot_id: BOT,
            task: "reconcile".into(),
            trigger_id: None,
        }
        .into()
    }
    fn bot() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }

    #[test]
    fn a_bot_starts_its_own_run() {
        given::<Run>([])
            .with(bot())
            .when(start(true, false))
            .then([started()]);
        given::<Run>([])
            .with(ctx(Actor::Bot(Uuid::from_u128(41)), &[]))
            .when(start(true, false))
            .then_err(DomainError::NotPermitted(
                "only the run's own bot reports it",
            ));
        given::<Run>([started()])
            .with(bot())
            .when(start(true, false))
            .then_err(DomainError::exists("run", RUN));
    }

    #[test]
    fn disabled_or_deleted_bots_are_refused() {
        given::<Run>([])
            .with(bot())
            .when(start(false, false))
            .then_err(DomainError::wrong_state("bot", "disabled", "start runs"));
        given::<Run>([])
            .with(bot())
            .when(start(true, true))
            .then_err(DomainError::wrong_state("bot", "deleted", "start runs"));
    }

    #[test]
    fn a_run_ends_exactly_once() {
        given::<Run>([started()])
            .with(bot())
            .when(RunCommand::Complete {
                duration_ms: 900,
                credits: Credits(12),
            })
            .then([RunCompleted {
                duration_ms: 900,
                credits: Credits(12),
            }
            .into()]);
        let done = vec![
            started(),
            RunCompleted {
                duration_ms: 900,
                credits: Credits(12),
            }
            .into(),
        ];
        given::<Run>(done.clone())
            .with(bot())
            .when(RunCommand::Complete {
                duration_ms: 1,
                credits: Credits(1),
            })
            .then_err(DomainError::wrong_state("run", "completed", "complete"));
        given::<Run>(done.clone())
            .with(bot())
            .when(RunCommand::Fail {
                duration_ms: 1,
                error: "x".into(),
                credits: None,
            })
            .then_err(DomainError::wrong_state("run", "completed", "fail"));
        given::<Run>(done)
            .with(bot())
            .when(RunCommand::Cancel { reason: None })
            .then_err(DomainError::wrong_state("run", "completed", "cancel"));
        let failed = vec![
            started(),
            RunFailed {
                duration_ms: 5,
                error: "boom".into(),
                credits: None,
            }
            .into(),
        ];
        given::<Run>(failed)
            .with(bot())
            .when(RunCommand::Complete {
                duration_ms: 1,
                credits: Credits(1),
            })
            .then_err(DomainError::wrong_state("run", "failed", "complete"));
    }

    #[test]
    fn a_manager_may_cancel_but_not_complete_a_run() {
        let manager = ctx(Actor::User(Uuid::from_u128(1)), &[Permission::BotsManage]);
        given::<Run>([started()])
            .with(manager.clone())
            .when(RunCommand::Cancel {
                reason: Some("stuck".into()),
            })
            .then([RunCancelled {
                reason: Some("stuck".into()),
            }
            .into()]);
        given::<Run>([started()])
            .with(manager)
            .when(RunCommand::Complete {
                duration_ms: 1,
                credits: Credits(0),
            })
            .then_err(DomainError::NotPermitted(
                "only the run's own bot reports it",
            ));
        given::<Run>([started()])
            .with(ctx(Actor::User(Uuid::from_u128(1)), &[]))
            .when(RunCommand::Cancel { reason: None })
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn failures_record_the_error_and_bad_input_is_refused() {
        given::<Run>([started()])
            .with(bot())
            .when(RunCommand::Fail {
                duration_ms: 10,
                error: "selector missing".into(),
                credits: Some(Credits(2)),
            })
            .then([RunFailed {
                duration_ms: 10,
                error: "selector missing".into(),
                credits: Some(Credits(2)),
            }
            .into()]);
        given::<Run>([started()])
            .with(bot())
            .when(RunCommand::Complete {
                duration_ms: DURATION_MS_MAX + 1,
                credits: Credits(0),
            })
            .then_err(DomainError::invalid(
                "durationMs",
                format!("at most {DURATION_MS_MAX}"),
            ));
        given::<Run>([])
            .with(bot())
            .when(RunCommand::Complete {
                duration_ms: 1,
                credits: Credits(0),
            })
            .then_err(DomainError::not_found("run", "(unstarted)"));
    }
}
