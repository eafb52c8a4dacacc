//! An app trigger — stream `trigger-<trigger_id>`.
//!
//! A trigger starts runs of one bot's task: on a schedule (a cron expression, validated
//! with `croner`), on a webhook, an email, a file, or by hand. It is created enabled. A
//! disabled or deleted trigger does not fire; after the organization's threshold of
//! failed runs in a row ([`AUTO_DISABLE_FAILURES_DEFAULT`] unless the organization sets
//! its own) the trigger disables itself (`trigger.auto_disabled`). Whether its bot
//! exists, and how many of its runs failed in a row, come in on the commands.

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{
    Event, TriggerAutoDisabled, TriggerCreated, TriggerDeleted, TriggerDisabled, TriggerEnabled,
    TriggerFired, TriggerKind, TriggerUpdated,
};
use crate::permissions::Permission;
use crate::{run, validate};
use std::str::FromStr;
use uuid::Uuid;

/// Failed runs in a row after which a trigger disables itself, unless the organization
/// sets its own threshold.
pub const AUTO_DISABLE_FAILURES_DEFAULT: u32 = 5;
/// Longest cron expression: the longest sensible seven-field expression with lists
/// fits comfortably.
pub const SCHEDULE_CHARS_MAX: usize = 100;
/// Longest task: the task becomes a run's task, so the run's limit.
pub const TASK_CHARS_MAX: usize = run::TASK_CHARS_MAX;

#[derive(Clone, Debug, PartialEq)]
pub enum TriggerCommand {
    /// `triggers:manage`. `schedule`: required for, and only for, `Schedule`.
    /// `bot_exists`: whether `bot_id` is a bot of the organization (loaded by the caller).
    Create {
        trigger_id: Uuid,
        name: String,
        kind: TriggerKind,
        schedule: Option<String>,
        bot_id: Uuid,
        task: String,
        bot_exists: bool,
    },
    /// `triggers:manage`. Each `Some` field is a new value; only those that differ from
    /// the current ones are recorded. `bot_exists`: whether `bot_id` (when given) is a
    /// bot of the organization.
    Update {
        name: Option<String>,
        schedule: Option<String>,
        bot_id: Option<Uuid>,
        task: Option<String>,
        bot_exists: bool,
    },
    /// `triggers:manage`; the trigger must be disabled.
    Enable,
    /// `triggers:manage`; the trigger must be enabled.
    Disable,
    /// `triggers:manage`. Final: a deleted trigger takes no further command.
    Delete,
    /// `triggers:manage` (a manual fire) or the system (a schedule, webhook, email or
    /// file). `run_id`: the run the caller starts next.
    Fire { run_id: Uuid },
    /// The system only, from the process that follows runs: `consecutive_failures`
    /// counted from the run history, `threshold` the organization's (0: never).
    RecordRunFailure {
        run_id: Uuid,
        consecutive_failures: u32,
        threshold: u32,
    },
}

impl TriggerCommand {
    /// What the command does, for `wrong_state` errors.
    fn action(&self) -> &'static str {
        match self {
            TriggerCommand::Create { .. } => "create",
            TriggerCommand::Update { .. } => "update",
            TriggerCommand::Enable => "enable",
            TriggerCommand::Disable => "disable",
            TriggerCommand::Delete => "delete",
            TriggerCommand::Fire { .. } => "fire",
            TriggerCommand::RecordRunFailure { .. } => "record a run failure",
        }
    }
}

/// The state of one trigger. Fields are public (and serializable) because the read
/// models store the state as the domain folds it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trigger {
    /// `None` until `trigger.created`.
    pub id: Option<Uuid>,
    pub name: String,
    pub kind: Option<TriggerKind>,
    /// The cron expression of a `Schedule` trigger.
    pub schedule: Option<String>,
    pub bot_id: Option<Uuid>,
    pub task: String,
    pub enabled: bool,
    pub deleted: bool,
    /// How many times it fired.
    pub fire_count: u64,
    /// The run of the last fire.
    pub last_run: Option<Uuid>,
}

/// A cron expression `croner` accepts (5 to 7 fields, or a nickname like `@daily`),
/// trimmed.
pub fn validate_cron(expression: &str) -> Result<String, DomainError> {
    let e = expression.trim();
    let bad = |reason: String| DomainError::InvalidCron {
        expression: expression.to_owned(),
        reason,
    };
    if e.is_empty() || e.chars().count() > SCHEDULE_CHARS_MAX {
        return Err(bad(format!("must be 1 to {SCHEDULE_CHARS_MAX} characters")));
    }
    croner::Cron::from_str(e).map_err(|err| bad(err.to_string()))?;
    Ok(e.to_owned())
}

/// A schedule trigger needs a cron expression; the other kinds take none.
fn check_schedule(
    kind: TriggerKind,
    schedule: Option<&str>,
) -> Result<Option<String>, DomainError> {
    match (kind, schedule) {
        (TriggerKind::Schedule, Some(s)) => validate_cron(s).map(Some),
        (TriggerKind::Schedule, None) => Err(DomainError::invalid(
            "schedule",
            "a schedule trigger needs a cron expression",
        )),
        (_, Some(_)) => Err(DomainError::invalid(
            "schedule",
            "only schedule triggers take a cron expression",
        )),
        (_, None) => Ok(None),
    }
}

/// `Some(new)` when it differs from `current`.
fn changed<T: PartialEq>(new: Option<T>, current: Option<&T>) -> Option<T> {
    new.filter(|n| Some(n) != current)
}

impl Trigger {
    /// The trigger's id, `None` before creation.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Option<TriggerKind> {
        self.kind
    }

    pub fn schedule(&self) -> Option<&str> {
        self.schedule.as_deref()
    }

    pub fn bot_id(&self) -> Option<Uuid> {
        self.bot_id
    }

    pub fn task(&self) -> &str {
        &self.task
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn deleted(&self) -> bool {
        self.deleted
    }

    pub fn fire_count(&self) -> u64 {
        self.fire_count
    }

    /// The run the trigger started last.
    pub fn last_fired_run_id(&self) -> Option<Uuid> {
        self.last_run
    }

    /// The kind of a created, undeleted trigger.
    fn check_live(&self, action: &'static str) -> Result<TriggerKind, DomainError> {
        let kind = self
            .kind
            .ok_or_else(|| DomainError::not_found("trigger", "(uncreated)"))?;
        if self.deleted {
            return Err(DomainError::wrong_state("trigger", "deleted", action));
        }
        Ok(kind)
    }

    fn create(&self, command: &TriggerCommand) -> Result<Vec<Event>, DomainError> {
        let TriggerCommand::Create {
            trigger_id,
            name,
            kind,
            schedule,
            bot_id,
            task,
            bot_exists,
        } = command
        else {
            return Ok(vec![]);
        };
        if self.id.is_some() {
            return Err(DomainError::exists("trigger", trigger_id));
        }
        let e = TriggerCreated {
            trigger_id: *trigger_id,
            name: validate::name("name", name)?,
            kind: *kind,
            schedule: check_schedule(*kind, schedule.as_deref())?,
            bot_id: *bot_id,
            task: run::validate_task(task)?,
        };
        if !bot_exists {
            return Err(DomainError::not_found("bot", bot_id));
        }
        Ok(vec![e.into()])
    }

    fn update(&self, command: &TriggerCommand) -> Result<Vec<Event>, DomainError> {
        let TriggerCommand::Update {
            name,
            schedule,
            bot_id,
            task,
            bot_exists,
        } = command
        else {
            return Ok(vec![]);
        };
        let kind = self.check_live("update")?;
        let name = name.as_deref().map(|n| validate::name("name", n));
        let schedule = match schedule {
            Some(s) => check_schedule(kind, Some(s))?,
            None => None,
        };
        let task = task.as_deref().map(run::validate_task);
        let e = TriggerUpdated {
            name: changed(name.transpose()?, Some(&self.name)),
            schedule: changed(schedule, self.schedule.as_ref()),
            bot_id: changed(*bot_id, self.bot_id.as_ref()),
            task: changed(task.transpose()?, Some(&self.task)),
        };
        if let Some(b) = e.bot_id
            && !bot_exists
        {
            return Err(DomainError::not_found("bot", b));
        }
        let nothing = TriggerUpdated {
            name: None,
            schedule: None,
            bot_id: None,
            task: None,
        };
        if e == nothing {
            return Ok(vec![]);
        }
        Ok(vec![e.into()])
    }

    fn fire(&self, run_id: Uuid, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::System {
            ctx.require(Permission::TriggersManage)?;
        }
        self.check_live("fire")?;
        if !self.enabled {
            return Err(DomainError::wrong_state("trigger", "disabled", "fire"));
        }
        if self.last_run == Some(run_id) {
            return Err(DomainError::exists("run", run_id));
        }
        Ok(vec![TriggerFired { run_id }.into()])
    }

    fn record_run_failure(
        &self,
        consecutive_failures: u32,
        threshold: u32,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        if ctx.actor != Actor::System {
            return Err(DomainError::NotPermitted(
                "run outcomes are recorded by the system",
            ));
        }
        self.id
            .ok_or_else(|| DomainError::not_found("trigger", "(uncreated)"))?;
        // A deleted or disabled trigger has nothing left to disable: the follow-up of a
        // late failure is done, not refused.
        let live = self.enabled && !self.deleted;
        if !live || threshold == 0 || consecutive_failures < threshold {
            return Ok(vec![]);
        }
        Ok(vec![
            TriggerAutoDisabled {
                consecutive_failures,
            }
            .into(),
        ])
    }

    /// Enable, disable, delete.
    fn switch(&self, command: &TriggerCommand) -> Result<Vec<Event>, DomainError> {
        self.check_live(command.action())?;
        let event: Event = match command {
            TriggerCommand::Enable if self.enabled => {
                return Err(DomainError::wrong_state("trigger", "enabled", "enable"));
            }
            TriggerCommand::Enable => TriggerEnabled {}.into(),
            TriggerCommand::Disable if !self.enabled => {
                return Err(DomainError::wrong_state("trigger", "disabled", "disable"));
            }
            TriggerCommand::Disable => TriggerDisabled {}.into(),
            TriggerCommand::Delete => TriggerDeleted {}.into(),
            // The other commands have their own functions; never routed here.
            _ => return Ok(vec![]),
        };
        Ok(vec![event])
    }
}

impl Aggregate for Trigger {
    type Command = TriggerCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::TriggerCreated(e) => {
                *self = Trigger {
                    id: Some(e.trigger_id),
                    name: e.name.clone(),
                    kind: Some(e.kind),
                    schedule: e.schedule.clone(),
                    bot_id: Some(e.bot_id),
                    task: e.task.clone(),
                    enabled: true,
                    ..Trigger::default()
                }
            }
            Event::TriggerUpdated(e) => {
                if let Some(n) = &e.name {
                    self.name = n.clone();
                }
                if e.schedule.is_some() {
                    self.schedule = e.schedule.clone();
                }
                if e.bot_id.is_some() {
                    self.bot_id = e.bot_id;
                }
                if let Some(t) = &e.task {
                    self.task = t.clone();
                }
            }
            Event::TriggerEnabled(_) => self.enabled = true,
            Event::TriggerDisabled(_) | Event::TriggerAutoDisabled(_) => self.enabled = false,
            Event::TriggerDeleted(_) => self.deleted = true,
            Event::TriggerFired(e) => {
                self.fire_count += 1;
                self.last_run = Some(e.run_id);
            }
            _ => {}
        }
    }

    fn decide(&self, command: &TriggerCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            TriggerCommand::Fire { run_id } => self.fire(*run_id, ctx),
            TriggerCommand::RecordRunFailure {
                consecutive_failures,
                threshold,
                ..
            } => self.record_run_failure(*consecutive_failures, *threshold, ctx),
            TriggerCommand::Create { .. } => {
                ctx.require(Permission::TriggersManage)?;
                self.create(command)
            }
            TriggerCommand::Update { .. } => {
                ctx.require(Permission::TriggersManage)?;
                self.update(command)
            }
            TriggerCommand::Enable | TriggerCommand::Disable | TriggerCommand::Delete => {
                ctx.require(Permission::TriggersManage)?;
                self.switch(command)
            }
        }
    }
}
