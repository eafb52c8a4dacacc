//! One run of a task by a bot — stream `run-<run_id>`.
//!
//! RUNNING → COMPLETED | FAILED | CANCELLED, exactly once. A run is started by its own
//! bot (bot token) or by the system when a trigger fires; a disabled or deleted bot
//! starts nothing (the caller loads the bot and passes `bot_enabled`/`bot_deleted`).
//! Its bot or the system reports the outcome; its bot, the system or a user holding
//! `bots:manage` may cancel it. The credits a run reports are consumed from the ledger
//! by a process keyed by the run id, so they are consumed once.

use crate::aggregate::Aggregate;
use crate::amounts::Credits;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{Event, RunCancelled, RunCompleted, RunFailed, RunStarted};
use crate::permissions::Permission;
use crate::validate;
use uuid::Uuid;

/// Longest task name: a task names a process of the bot's project, which may be a path.
pub const TASK_CHARS_MAX: usize = 200;
/// Longest error a failed run records: free text.
pub const ERROR_CHARS_MAX: usize = validate::TEXT_CHARS_MAX;
/// Longest reason for cancelling a run: free text.
pub const REASON_CHARS_MAX: usize = validate::TEXT_CHARS_MAX;
/// Longest duration a run may report: 30 days. Anything longer is a bot's clock bug.
pub const DURATION_MS_MAX: u64 = 30 * 24 * 60 * 60 * 1_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunStatus {
    #[default]
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// The lower-case name, as in `wrong_state` errors.
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
    /// The bot itself or the system (a trigger fired). `bot_enabled`/`bot_deleted`:
    /// the bot's state, loaded by the caller ([`crate::bot::Bot`]).
    Start {
        run_id: Uuid,
        bot_id: Uuid,
        task: String,
        trigger_id: Option<Uuid>,
        bot_enabled: bool,
        bot_deleted: bool,
    },
    /// The run's bot or the system.
    Complete { duration_ms: u64, credits: Credits },
    /// The run's bot or the system. `credits`: what the run used before failing, if any.
    Fail {
        duration_ms: u64,
        error: String,
        credits: Option<Credits>,
    },
    /// The run's bot, the system, or a user holding `bots:manage`.
    Cancel { reason: Option<String> },
}

/// The state of one run. Fields are public (and serializable) because the read models
/// store the state as the domain folds it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    /// `None` until `run.started`.
    pub id: Option<Uuid>,
    pub bot_id: Option<Uuid>,
    pub task: String,
    pub trigger_id: Option<Uuid>,
    /// `Running` also before the start: check `id` first.
    pub status: RunStatus,
    pub duration_ms: Option<u64>,
    /// Reported on completion, and on failure when the bot reported any.
    pub credits: Option<Credits>,
    pub error: Option<String>,
}

/// A trimmed, non-empty task of at most [`TASK_CHARS_MAX`] characters. Triggers use
/// the same rule: their task becomes a run's task.
pub fn validate_task(task: &str) -> Result<String, DomainError> {
    let t = task.trim();
    if t.is_empty() {
        return Err(DomainError::invalid("task", "must not be empty"));
    }
    validate::text("task", t, TASK_CHARS_MAX)
}

/// Only the run's own bot or the system reports a run's outcome.
fn check_reporter(ctx: &Context, bot: Uuid) -> Result<(), DomainError> {
    match ctx.actor {
        Actor::Bot(b) if b == bot => Ok(()),
        Actor::System => Ok(()),
        _ => Err(DomainError::NotPermitted(
            "only the run's bot reports its outcome",
        )),
    }
}

/// The run's own bot, the system, or a user holding `bots:manage` may cancel a run.
fn check_canceller(ctx: &Context, bot: Uuid) -> Result<(), DomainError> {
    match ctx.actor {
        Actor::Bot(b) if b == bot => Ok(()),
        Actor::Bot(_) => Err(DomainError::NotPermitted("a bot cancels only its own runs")),
        Actor::System | Actor::User(_) => ctx.require(Permission::BotsManage),
    }
}

fn check_duration(ms: u64) -> Result<u64, DomainError> {
    if ms > DURATION_MS_MAX {
        return Err(DomainError::invalid(
            "durationMs",
            format!("at most {DURATION_MS_MAX}"),
        ));
    }
    Ok(ms)
}

/// A non-blank error of at most [`ERROR_CHARS_MAX`] characters; Windows line ends
/// (`\r\n`, which bots on Windows report) become `\n`.
fn check_error(error: &str) -> Result<String, DomainError> {
    let e = error.replace("\r\n", "\n");
    if e.trim().is_empty() {
        return Err(DomainError::invalid("error", "must not be empty"));
    }
    validate::text("error", &e, ERROR_CHARS_MAX)
}

impl Run {
    /// The run's id, `None` before the start.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }

    pub fn bot_id(&self) -> Option<Uuid> {
        self.bot_id
    }

    pub fn trigger_id(&self) -> Option<Uuid> {
        self.trigger_id
    }

    pub fn task(&self) -> &str {
        &self.task
    }

    pub fn credits(&self) -> Option<Credits> {
        self.credits
    }

    pub fn duration_ms(&self) -> Option<u64> {
        self.duration_ms
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The bot of a started run.
    fn started_bot(&self) -> Result<Uuid, DomainError> {
        self.bot_id
            .ok_or_else(|| DomainError::not_found("run", "(unstarted)"))
    }

    /// Refuses unless the run is still running.
    fn check_running(&self, action: &'static str) -> Result<(), DomainError> {
        if self.status != RunStatus::Running {
            return Err(DomainError::wrong_state("run", self.status.name(), action));
        }
        Ok(())
    }

    fn start(&self, command: &RunCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        let RunCommand::Start {
            run_id,
            bot_id,
            task,
            trigger_id,
            bot_enabled,
            bot_deleted,
        } = command
        else {
            return Ok(vec![]);
        };
        if !matches!(ctx.actor, Actor::System) && ctx.actor != Actor::Bot(*bot_id) {
            return Err(DomainError::NotPermitted(
                "a run is started by its own bot or the system",
            ));
        }
        if self.id.is_some() {
            return Err(DomainError::exists("run", run_id));
        }
        if *bot_deleted {
            return Err(DomainError::wrong_state("bot", "deleted", "start runs"));
        }
        if !*bot_enabled {
            return Err(DomainError::wrong_state("bot", "disabled", "start runs"));
        }
        let e = RunStarted {
            run_id: *run_id,
            bot_id: *bot_id,
            task: validate_task(task)?,
            trigger_id: *trigger_id,
        };
        Ok(vec![e.into()])
    }

    /// Complete, fail or cancel: the one transition out of RUNNING.
    fn end(&self, command: &RunCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        let bot = self.started_bot()?;
        let event: Event = match command {
            RunCommand::Complete {
                duration_ms,
                credits,
            } => {
                check_reporter(ctx, bot)?;
                self.check_running("complete")?;
                RunCompleted {
                    duration_ms: check_duration(*duration_ms)?,
                    credits: *credits,
                }
                .into()
            }
            RunCommand::Fail {
                duration_ms,
                error,
                credits,
            } => {
                check_reporter(ctx, bot)?;
                self.check_running("fail")?;
                RunFailed {
                    duration_ms: check_duration(*duration_ms)?,
                    error: check_error(error)?,
                    credits: *credits,
                }
                .into()
            }
            RunCommand::Cancel { reason } => {
                check_canceller(ctx, bot)?;
                self.check_running("cancel")?;
                let reason = reason
                    .as_deref()
                    .map(|r| validate::text("reason", r, REASON_CHARS_MAX))
                    .transpose()?;
                RunCancelled { reason }.into()
            }
            // Decided by `start`; never routed here.
            RunCommand::Start { .. } => return Ok(vec![]),
        };
        Ok(vec![event])
    }
}

impl Aggregate for Run {
    type Command = RunCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted(e) => {
                *self = Run {
                    id: Some(e.run_id),
                    bot_id: Some(e.bot_id),
                    task: e.task.clone(),
                    trigger_id: e.trigger_id,
                    ..Run::default()
                }
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
            RunCommand::Start { .. } => self.start(command, ctx),
            _ => self.end(command, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};
    use crate::events::{BotDeleted, TriggerFired};

    const RUN: Uuid = Uuid::from_u128(50);
    const BOT: Uuid = Uuid::from_u128(40);
    const OTHER_BOT: Uuid = Uuid::from_u128(41);
    const TRIGGER: Uuid = Uuid::from_u128(60);
    const USER: Uuid = Uuid::from_u128(1);

    fn start(enabled: bool, deleted: bool) -> RunCommand {
        start_task("reconcile", enabled, deleted)
    }
    fn start_task(task: &str, enabled: bool, deleted: bool) -> RunCommand {
        RunCommand::Start {
            run_id: RUN,
            bot_id: BOT,
            task: task.into(),
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
    fn complete(ms: u64, credits: u64) -> RunCommand {
        RunCommand::Complete {
            duration_ms: ms,
            credits: Credits(credits),
        }
    }
    fn fail(error: &str) -> RunCommand {
        RunCommand::Fail {
            duration_ms: 10,
            error: error.into(),
            credits: None,
        }
    }
    fn cancel() -> RunCommand {
        RunCommand::Cancel { reason: None }
    }
    fn completed() -> Event {
        RunCompleted {
            duration_ms: 900,
            credits: Credits(12),
        }
        .into()
    }
    fn failed() -> Event {
        RunFailed {
            duration_ms: 5,
            error: "boom".into(),
            credits: None,
        }
        .into()
    }
    fn bot() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }
    fn other_bot() -> Context {
        ctx(Actor::Bot(OTHER_BOT), &[Permission::BotsManage])
    }
    fn manager() -> Context {
        ctx(Actor::User(USER), &[Permission::BotsManage])
    }

    // ------------------------------------------------------------ start

    #[test]
    fn a_bot_starts_its_own_run() {
        given::<Run>([])
            .with(bot())
            .when(start_task(" reconcile ", true, false))
            .then([started()]);
        let r = Run::replay(&[started()]);
        assert_eq!(r.id(), Some(RUN));
        assert_eq!(r.bot_id(), Some(BOT));
        assert_eq!(r.task(), "reconcile");
        assert_eq!(r.status(), RunStatus::Running);
        assert_eq!((r.trigger_id(), r.credits()), (None, None));
    }

    #[test]
    fn the_system_starts_a_run_when_a_trigger_fires() {
        let cmd = RunCommand::Start {
            run_id: RUN,
            bot_id: BOT,
            task: "reconcile".into(),
            trigger_id: Some(TRIGGER),
            bot_enabled: true,
            bot_deleted: false,
        };
        let e: Event = RunStarted {
            run_id: RUN,
            bot_id: BOT,
            task: "reconcile".into(),
            trigger_id: Some(TRIGGER),
        }
        .into();
        given::<Run>([]).when(cmd).then([e.clone()]);
        assert_eq!(Run::replay(&[e]).trigger_id(), Some(TRIGGER));
    }

    #[test]
    fn another_bot_or_a_user_cannot_start_a_bots_run() {
        for c in [other_bot(), manager()] {
            given::<Run>([])
                .with(c)
                .when(start(true, false))
                .then_err(DomainError::NotPermitted(
                    "a run is started by its own bot or the system",
                ));
        }
    }

    #[test]
    fn starting_a_run_twice_is_refused() {
        given::<Run>([started()])
            .with(bot())
            .when(start(true, false))
            .then_err(DomainError::exists("run", RUN));
    }

    #[test]
    fn a_disabled_bot_cannot_start_runs() {
        given::<Run>([])
            .with(bot())
            .when(start(false, false))
            .then_err(DomainError::wrong_state("bot", "disabled", "start runs"));
    }

    #[test]
    fn a_deleted_bot_cannot_start_runs() {
        given::<Run>([])
            .with(bot())
            .when(start(true, true))
            .then_err(DomainError::wrong_state("bot", "deleted", "start runs"));
        given::<Run>([])
            .when(start(false, true))
            .then_err(DomainError::wrong_state("bot", "deleted", "start runs"));
    }

    #[test]
    fn a_task_of_up_to_200_characters_is_accepted() {
        let task = "t".repeat(TASK_CHARS_MAX);
        let r = given::<Run>([])
            .with(bot())
            .when(start_task(&task, true, false))
            .result();
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn a_blank_or_long_task_is_refused() {
        given::<Run>([])
            .with(bot())
            .when(start_task("  ", true, false))
            .then_err(DomainError::invalid("task", "must not be empty"));
        given::<Run>([])
            .with(bot())
            .when(start_task(&"t".repeat(TASK_CHARS_MAX + 1), true, false))
            .then_err(DomainError::invalid(
                "task",
                format!("longer than {TASK_CHARS_MAX} characters"),
            ));
    }

    // ------------------------------------------------------------ complete

    #[test]
    fn a_bot_completes_its_run_with_the_credits_used() {
        given::<Run>([started()])
            .with(bot())
            .when(complete(900, 12))
            .then([completed()]);
        let r = Run::replay(&[started(), completed()]);
        assert_eq!(r.status(), RunStatus::Completed);
        assert_eq!(r.credits(), Some(Credits(12)));
        assert_eq!(r.duration_ms(), Some(900));
    }

    #[test]
    fn the_system_may_complete_a_run() {
        given::<Run>([started()])
            .when(complete(900, 12))
            .then([completed()]);
    }

    #[test]
    fn a_run_of_exactly_30_days_completes() {
        given::<Run>([started()])
            .with(bot())
            .when(complete(DURATION_MS_MAX, 0))
            .then([RunCompleted {
                duration_ms: DURATION_MS_MAX,
                credits: Credits(0),
            }
            .into()]);
    }

    #[test]
    fn a_duration_over_30_days_is_refused() {
        let too_long = DomainError::invalid("durationMs", format!("at most {DURATION_MS_MAX}"));
        given::<Run>([started()])
            .with(bot())
            .when(complete(DURATION_MS_MAX + 1, 0))
            .then_err(too_long.clone());
        given::<Run>([started()])
            .with(bot())
            .when(RunCommand::Fail {
                duration_ms: u64::MAX,
                error: "x".into(),
                credits: None,
            })
            .then_err(too_long);
    }

    #[test]
    fn only_the_runs_bot_or_the_system_reports_its_outcome() {
        let refused = DomainError::NotPermitted("only the run's bot reports its outcome");
        for c in [other_bot(), manager()] {
            given::<Run>([started()])
                .with(c.clone())
                .when(complete(1, 0))
                .then_err(refused.clone());
            given::<Run>([started()])
                .with(c)
                .when(fail("x"))
                .then_err(refused.clone());
        }
    }

    // ------------------------------------------------------------ fail

    #[test]
    fn a_bot_fails_its_run_with_an_error_and_the_credits_used() {
        let e: Event = RunFailed {
            duration_ms: 10,
            error: "selector missing".into(),
            credits: Some(Credits(2)),
        }
        .into();
        given::<Run>([started()])
            .with(bot())
            .when(RunCommand::Fail {
                duration_ms: 10,
                error: "selector missing".into(),
                credits: Some(Credits(2)),
            })
            .then([e.clone()]);
        let r = Run::replay(&[started(), e]);
        assert_eq!(r.status(), RunStatus::Failed);
        assert_eq!(r.error(), Some("selector missing"));
        assert_eq!(r.credits(), Some(Credits(2)));
    }

    #[test]
    fn windows_line_ends_in_an_error_become_newlines() {
        given::<Run>([started()])
            .with(bot())
            .when(fail("step 3\r\nelement not found"))
            .then([RunFailed {
                duration_ms: 10,
                error: "step 3\nelement not found".into(),
                credits: None,
            }
            .into()]);
    }

    #[test]
    fn a_blank_long_or_garbled_error_is_refused() {
        given::<Run>([started()])
            .with(bot())
            .when(fail(" \n "))
            .then_err(DomainError::invalid("error", "must not be empty"));
        given::<Run>([started()])
            .with(bot())
            .when(fail(&"e".repeat(ERROR_CHARS_MAX + 1)))
            .then_err(DomainError::invalid(
                "error",
                format!("longer than {ERROR_CHARS_MAX} characters"),
            ));
        given::<Run>([started()])
            .with(bot())
            .when(fail("bad\u{0}byte"))
            .then_err(DomainError::invalid("error", "contains control characters"));
    }

    // ------------------------------------------------------------ cancel

    #[test]
    fn a_manager_cancels_a_run_with_a_reason() {
        given::<Run>([started()])
            .with(manager())
            .when(RunCommand::Cancel {
                reason: Some("stuck".into()),
            })
            .then([RunCancelled {
                reason: Some("stuck".into()),
            }
            .into()]);
        let r = Run::replay(&[started(), RunCancelled { reason: None }.into()]);
        assert_eq!(r.status(), RunStatus::Cancelled);
    }

    #[test]
    fn the_runs_bot_and_the_system_may_cancel_it() {
        let cancelled: Event = RunCancelled { reason: None }.into();
        given::<Run>([started()])
            .with(bot())
            .when(cancel())
            .then([cancelled.clone()]);
        given::<Run>([started()]).when(cancel()).then([cancelled]);
    }

    #[test]
    fn another_bot_cannot_cancel_a_run() {
        given::<Run>([started()])
            .with(other_bot())
            .when(cancel())
            .then_err(DomainError::NotPermitted("a bot cancels only its own runs"));
    }

    #[test]
    fn a_user_without_bots_manage_cannot_cancel_a_run() {
        given::<Run>([started()])
            .with(ctx(Actor::User(USER), &[Permission::RunsRead]))
            .when(cancel())
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn a_cancel_reason_longer_than_free_text_is_refused() {
        given::<Run>([started()])
            .with(manager())
            .when(RunCommand::Cancel {
                reason: Some("r".repeat(REASON_CHARS_MAX + 1)),
            })
            .then_err(DomainError::invalid(
                "reason",
                format!("longer than {REASON_CHARS_MAX} characters"),
            ));
    }

    // ------------------------------------------------------------ exactly once

    #[test]
    fn a_run_ends_exactly_once() {
        let ended = [
            (completed(), "completed"),
            (failed(), "failed"),
            (RunCancelled { reason: None }.into(), "cancelled"),
        ];
        for (end, state) in ended {
            for (cmd, action) in [
                (complete(1, 1), "complete"),
                (fail("x"), "fail"),
                (cancel(), "cancel"),
            ] {
                given::<Run>([started(), end.clone()])
                    .with(bot())
                    .when(cmd)
                    .then_err(DomainError::wrong_state("run", state, action));
            }
        }
    }

    #[test]
    fn ending_an_unstarted_run_is_not_found() {
        for cmd in [complete(1, 0), fail("x"), cancel()] {
            given::<Run>([])
                .with(bot())
                .when(cmd)
                .then_err(DomainError::not_found("run", "(unstarted)"));
        }
    }

    #[test]
    fn events_of_other_aggregates_change_nothing() {
        let before = Run::replay(&[started()]);
        let mut after = before.clone();
        after.apply(&BotDeleted {}.into());
        after.apply(&TriggerFired { run_id: RUN }.into());
        assert_eq!(after, before);
    }
}
