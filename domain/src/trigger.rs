//! An app trigger — stream `trigger-<trigger_id>`.
//!
//! Triggers start runs on a schedule (a cron expression, validated with `croner`), on
//! a webhook, an email, a file or by hand. A disabled or deleted trigger does not fire;
//! after the organization's threshold of failed runs in a row (default 5) the trigger
//! disables itself (`trigger.auto_disabled`).

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{
    Event, TriggerAutoDisabled, TriggerCreated, TriggerDeleted, TriggerDisabled, TriggerEnabled,
    TriggerFired, TriggerKind, TriggerUpdated,
};
use crate::permissions::Permission;
use crate::validate;
use std::str::FromStr;
use uuid::Uuid;

/// Failed runs in a row after which a trigger disables itself, unless the organization
/// sets its own threshold.
pub const AUTO_DISABLE_FAILURES_DEFAULT: u32 = 5;
/// Longest cron expression.
pub const SCHEDULE_CHARS_MAX: usize = 100;
/// Longest task name.
pub const TASK_CHARS_MAX: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub enum TriggerCommand {
    /// `bot_exists`: whether the bot is registered in the organization (loaded by the caller).
    Create {
        trigger_id: Uuid,
        name: String,
        kind: TriggerKind,
        schedule: Option<String>,
        bot_id: Uuid,
        task: String,
        bot_exists: bool,
    },
    Update {
        name: Option<String>,
        schedule: Option<String>,
        bot_id: Option<Uuid>,
        task: Option<String>,
        bot_exists: bool,
    },
    Enable,
    Disable,
    Delete,
    Fire {
        run_id: Uuid,
    },
    /// From the process that follows runs: `consecutive_failures` counted from the run
    /// history, `threshold` the organization's.
    RecordRunFailure {
        run_id: Uuid,
        consecutive_failures: u32,
        threshold: u32,
    },
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trigger {
    pub id: Option<Uuid>,
    pub name: String,
    pub kind: Option<TriggerKind>,
    pub schedule: Option<String>,
    pub bot_id: Option<Uuid>,
    pub task: String,
    pub enabled: bool,
    pub deleted: bool,
    pub fire_count: u64,
    pub last_run: Option<Uuid>,
}

/// Validates a cron expression with `croner`.
pub fn validate_cron(expression: &str) -> Result<String, DomainError> {
    let e = expression.trim();
    let bad = |reason: String| DomainError::InvalidCron {
        expression: expression.to_owned(),
        reason,
    };
    if e.is_empty() || e.len() > SCHEDULE_CHARS_MAX {
        return Err(bad(format!("must be 1 to {SCHEDULE_CHARS_MAX} characters")));
    }
    croner::Cron::from_str(e).map_err(|err| bad(err.to_string()))?;
    Ok(e.to_owned())
}

fn check_task(task: &str) -> Result<String, DomainError> {
    let t = validate::name("task", task)?;
    if t.chars().count() > TASK_CHARS_MAX {
        return Err(DomainError::invalid(
            "task",
            format!("longer than {TASK_CHARS_MAX} characters"),
        ));
    }
    Ok(t)
}

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

impl Trigger {
    fn check_live(&self, action: &'static str) -> Result<TriggerKind, DomainError> {
        let kind = self
            .kind
            .ok_or_else(|| DomainError::not_found("trigger", "(uncreated)"))?;
        if self.deleted {
            return Err(DomainError::wrong_state("trigger", "deleted", action));
        }
        Ok(kind)
    }

    fn update(&self, c: &TriggerCommand, kind: TriggerKind) -> Result<Vec<Event>, DomainError> {
        let TriggerCommand::Update {
            name,
            schedule,
            bot_id,
            task,
            bot_exists,
        } = c
        else {
            return Ok(vec![]);
        };
        let name = name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?;
        let schedule = match schedule {
            Some(s) => check_schedule(kind, Some(s))?,
            None => None,
        };
        if let Some(b) = bot_id
            && !bot_exists
        {
            return Err(DomainError::not_found("bot", b));
        }
        let task = task.as_deref().map(check_task).transpose()?;
        let e = TriggerUpdated {
            name: name.filter(|n| *n != self.name),
            schedule: schedule.filter(|s| Some(s) != self.schedule.as_ref()),
            bot_id: bot_id.filter(|b| Some(*b) != self.bot_id),
            task: task.filter(|t| *t != self.task),
        };
        if e.name.is_none() && e.schedule.is_none() && e.bot_id.is_none() && e.task.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![e.into()])
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
        if let TriggerCommand::Create {
            trigger_id,
            name,
            kind,
            schedule,
            bot_id,
            task,
            bot_exists,
        } = command
        {
            ctx.require(Permission::TriggersManage)?;
            if self.id.is_some() {
                return Err(DomainError::exists("trigger", trigger_id));
            }
            if !bot_exists {
                return Err(DomainError::not_found("bot", bot_id));
            }
            let schedule = check_schedule(*kind, schedule.as_deref())?;
            let e = TriggerCreated {
                trigger_id: *trigger_id,
                name: validate::name("name", name)?,
                kind: *kind,
                schedule,
                bot_id: *bot_id,
                task: check_task(task)?,
            };
            return Ok(vec![e.into()]);
        }
        let kind = self.check_live("change")?;
        match command {
            TriggerCommand::RecordRunFailure {
                consecutive_failures,
                threshold,
                ..
            } => {
                if ctx.actor != Actor::System {
                    return Err(DomainError::NotPermitted(
                        "run outcomes are recorded by the system",
                    ));
                }
                if self.enabled && *consecutive_failures >= (*threshold).max(1) {
                    return Ok(vec![
                        TriggerAutoDisabled {
                            consecutive_failures: *consecutive_failures,
                        }
                        .into(),
                    ]);
                }
                Ok(vec![])
            }
            TriggerCommand::Fire { run_id } => {
                if ctx.actor != Actor::System {
                    ctx.require(Permission::TriggersManage)?;
                }
                if !self.enabled {
                    return Err(DomainError::wrong_state("trigger", "disabled", "fire"));
                }
                Ok(vec![TriggerFired { run_id: *run_id }.into()])
            }
            other => {
                ctx.require(Permission::TriggersManage)?;
                match other {
                    TriggerCommand::Update { .. } => self.update(other, kind),
                    TriggerCommand::Enable if self.enabled => {
                        Err(DomainError::wrong_state("trigger", "enabled", "enable"))
                    }
                    TriggerCommand::Enable => Ok(vec![TriggerEnabled {}.into()]),
                    TriggerCommand::Disable if !self.enabled => {
                        Err(DomainError::wrong_state("trigger", "disabled", "disable"))
                    }
                    TriggerCommand::Disable => Ok(vec![TriggerDisabled {}.into()]),
                    TriggerCommand::Delete => Ok(vec![TriggerDeleted {}.into()]),
                    _ => Ok(vec![]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};

    const TRIGGER: Uuid = Uuid::from_u128(60);
    const BOT: Uuid = Uuid::from_u128(40);
    const RUN: Uuid = Uuid::from_u128(50);

    fn manager() -> Context {
        ctx(
            Actor::User(Uuid::from_u128(1)),
            &[Permission::TriggersManage],
        )
    }
    fn create(kind: TriggerKind, schedule: Option<&str>) -> TriggerCommand {
        TriggerCommand::Create {
            trigger_id: TRIGGER,
            name: "nightly".into(),
            kind,
            schedule: schedule.map(Into::into),
            bot_id: BOT,
            task: "reconcile".into(),
            bot_exists: true,
        }
    }
    fn created() -> Event {
        TriggerCreated {
            trigger_id: TRIGGER,
            name: "nightly".into(),
            kind: TriggerKind::Schedule,
            schedule: Some("0 2 * * *".into()),
            bot_id: BOT,
            task: "reconcile".into(),
        }
        .into()
    }
    fn failure(n: u32) -> TriggerCommand {
        TriggerCommand::RecordRunFailure {
            run_id: RUN,
            consecutive_failures: n,
            threshold: AUTO_DISABLE_FAILURES_DEFAULT,
        }
    }

    #[test]
    fn a_schedule_trigger_needs_a_valid_cron_expression() {
        given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Schedule, Some("0 2 * * *")))
            .then([created()]);
        let r = given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Schedule, Some("61 25 * * *")))
            .result();
        assert!(matches!(r, Err(DomainError::InvalidCron { .. })), "{r:?}");
        given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Schedule, None))
            .then_err(DomainError::invalid(
                "schedule",
                "a schedule trigger needs a cron expression",
            ));
        given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Webhook, Some("* * * * *")))
            .then_err(DomainError::invalid(
                "schedule",
                "only schedule triggers take a cron expression",
            ));
    }

    #[test]
    fn a_trigger_needs_a_known_bot_and_the_permission() {
        let mut c = create(TriggerKind::Manual, None);
        if let TriggerCommand::Create { bot_exists, .. } = &mut c {
            *bot_exists = false;
        }
        given::<Trigger>([])
            .with(manager())
            .when(c)
            .then_err(DomainError::not_found("bot", BOT));
        given::<Trigger>([])
            .with(ctx(
                Actor::User(Uuid::from_u128(1)),
                &[Permission::TriggersRead],
            ))
            .when(create(TriggerKind::Manual, None))
            .then_err(DomainError::Forbidden(Permission::TriggersManage));
    }

    #[test]
    fn a_disabled_or_deleted_trigger_does_not_fire() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Fire { run_id: RUN })
            .then([TriggerFired { run_id: RUN }.into()]);
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .when(TriggerCommand::Fire { run_id: RUN })
            .then_err(DomainError::wrong_state("trigger", "disabled", "fire"));
        given::<Trigger>([created(), TriggerDeleted {}.into()])
            .when(TriggerCommand::Fire { run_id: RUN })
            .then_err(DomainError::wrong_state("trigger", "deleted", "change"));
    }

    #[test]
    fn five_failed_runs_in_a_row_auto_disable_it() {
        given::<Trigger>([created()]).when(failure(4)).then([]);
        given::<Trigger>([created()])
            .when(failure(5))
            .then([TriggerAutoDisabled {
                consecutive_failures: 5,
            }
            .into()]);
        let off = Trigger::replay(&[
            created(),
            TriggerAutoDisabled {
                consecutive_failures: 5,
            }
            .into(),
        ]);
        assert!(!off.enabled);
        given::<Trigger>([
            created(),
            TriggerAutoDisabled {
                consecutive_failures: 5,
            }
            .into(),
        ])
        .when(failure(6))
        .then([]);
        given::<Trigger>([created()])
            .with(manager())
            .when(failure(9))
            .then_err(DomainError::NotPermitted(
                "run outcomes are recorded by the system",
            ));
    }

    #[test]
    fn updates_record_only_what_changed() {
        let update = |name: Option<&str>, schedule: Option<&str>| TriggerCommand::Update {
            name: name.map(Into::into),
            schedule: schedule.map(Into::into),
            bot_id: None,
            task: None,
            bot_exists: true,
        };
        given::<Trigger>([created()])
            .with(manager())
            .when(update(Some("nightly"), Some("30 2 * * *")))
            .then([TriggerUpdated {
                name: None,
                schedule: Some("30 2 * * *".into()),
                bot_id: None,
                task: None,
            }
            .into()]);
        given::<Trigger>([created()])
            .with(manager())
            .when(update(Some("nightly"), None))
            .then([]);
        let r = given::<Trigger>([created()])
            .with(manager())
            .when(update(None, Some("nope")))
            .result();
        assert!(matches!(r, Err(DomainError::InvalidCron { .. })));
    }

    #[test]
    fn enable_disable_and_fire_counts() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Enable)
            .then_err(DomainError::wrong_state("trigger", "enabled", "enable"));
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Disable)
            .then([TriggerDisabled {}.into()]);
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .with(manager())
            .when(TriggerCommand::Enable)
            .then([TriggerEnabled {}.into()]);
        let t = Trigger::replay(&[
            created(),
            TriggerFired { run_id: RUN }.into(),
            TriggerFired {
                run_id: Uuid::from_u128(51),
            }
            .into(),
        ]);
        assert_eq!((t.fire_count, t.last_run), (2, Some(Uuid::from_u128(51))));
    }
}
