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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};
    use crate::events::{BotDeleted, RunFailed};

    const TRIGGER: Uuid = Uuid::from_u128(60);
    const BOT: Uuid = Uuid::from_u128(40);
    const OTHER_BOT: Uuid = Uuid::from_u128(41);
    const RUN: Uuid = Uuid::from_u128(50);
    const USER: Uuid = Uuid::from_u128(1);

    fn manager() -> Context {
        ctx(Actor::User(USER), &[Permission::TriggersManage])
    }
    fn reader() -> Context {
        ctx(Actor::User(USER), &[Permission::TriggersRead])
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
        created_as(TriggerKind::Schedule, Some("0 2 * * *"))
    }
    fn created_as(kind: TriggerKind, schedule: Option<&str>) -> Event {
        TriggerCreated {
            trigger_id: TRIGGER,
            name: "nightly".into(),
            kind,
            schedule: schedule.map(Into::into),
            bot_id: BOT,
            task: "reconcile".into(),
        }
        .into()
    }
    fn update() -> TriggerCommand {
        TriggerCommand::Update {
            name: None,
            schedule: None,
            bot_id: None,
            task: None,
            bot_exists: true,
        }
    }
    fn with_schedule(s: &str) -> TriggerCommand {
        TriggerCommand::Update {
            name: None,
            schedule: Some(s.into()),
            bot_id: None,
            task: None,
            bot_exists: true,
        }
    }
    fn updated() -> TriggerUpdated {
        TriggerUpdated {
            name: None,
            schedule: None,
            bot_id: None,
            task: None,
        }
    }
    fn fire(run: u128) -> TriggerCommand {
        TriggerCommand::Fire {
            run_id: Uuid::from_u128(run),
        }
    }
    fn fired(run: u128) -> Event {
        TriggerFired {
            run_id: Uuid::from_u128(run),
        }
        .into()
    }
    fn failure(n: u32, threshold: u32) -> TriggerCommand {
        TriggerCommand::RecordRunFailure {
            run_id: RUN,
            consecutive_failures: n,
            threshold,
        }
    }
    fn auto_disabled(n: u32) -> Event {
        TriggerAutoDisabled {
            consecutive_failures: n,
        }
        .into()
    }
    fn is_invalid_cron(r: Result<Vec<Event>, DomainError>, expression: &str) -> bool {
        matches!(r, Err(DomainError::InvalidCron { expression: e, .. }) if e == expression)
    }

    // ------------------------------------------------------------ create

    #[test]
    fn a_manager_creates_an_enabled_schedule_trigger() {
        given::<Trigger>([])
            .with(manager())
            .when(TriggerCommand::Create {
                trigger_id: TRIGGER,
                name: " nightly ".into(),
                kind: TriggerKind::Schedule,
                schedule: Some(" 0 2 * * * ".into()),
                bot_id: BOT,
                task: " reconcile ".into(),
                bot_exists: true,
            })
            .then([created()]);
        let t = Trigger::replay(&[created()]);
        assert_eq!(t.id(), Some(TRIGGER));
        assert_eq!(t.name(), "nightly");
        assert_eq!(t.kind(), Some(TriggerKind::Schedule));
        assert_eq!(t.schedule(), Some("0 2 * * *"));
        assert_eq!(t.bot_id(), Some(BOT));
        assert_eq!(t.task(), "reconcile");
        assert!(t.enabled() && !t.deleted());
        assert_eq!((t.fire_count(), t.last_fired_run_id()), (0, None));
    }

    #[test]
    fn cron_nicknames_and_seconds_fields_are_accepted() {
        for cron in ["@daily", "*/15 * * * *", "0 30 2 * * MON-FRI"] {
            let r = given::<Trigger>([])
                .with(manager())
                .when(create(TriggerKind::Schedule, Some(cron)))
                .result();
            assert!(r.is_ok(), "{cron}: {r:?}");
        }
    }

    #[test]
    fn the_other_kinds_are_created_without_a_schedule() {
        for kind in [
            TriggerKind::Webhook,
            TriggerKind::Email,
            TriggerKind::File,
            TriggerKind::Manual,
        ] {
            given::<Trigger>([])
                .with(manager())
                .when(create(kind, None))
                .then([created_as(kind, None)]);
        }
    }

    #[test]
    fn a_schedule_trigger_without_a_cron_expression_is_refused() {
        given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Schedule, None))
            .then_err(DomainError::invalid(
                "schedule",
                "a schedule trigger needs a cron expression",
            ));
    }

    #[test]
    fn an_invalid_cron_expression_is_refused() {
        for cron in ["61 25 * * *", "nope", "* * *", "0 2 * * * * * *"] {
            let r = given::<Trigger>([])
                .with(manager())
                .when(create(TriggerKind::Schedule, Some(cron)))
                .result();
            assert!(is_invalid_cron(r.clone(), cron), "{cron}: {r:?}");
        }
    }

    #[test]
    fn a_blank_or_overlong_cron_expression_is_refused() {
        let long = format!("0 2 * * *{}", " ".repeat(SCHEDULE_CHARS_MAX));
        assert!(
            validate_cron(&long).is_ok(),
            "surrounding blanks are trimmed"
        );
        let long = "1,".repeat(SCHEDULE_CHARS_MAX / 2) + "1 * * * *";
        let reason = format!("must be 1 to {SCHEDULE_CHARS_MAX} characters");
        for cron in ["  ", long.as_str()] {
            given::<Trigger>([])
                .with(manager())
                .when(create(TriggerKind::Schedule, Some(cron)))
                .then_err(DomainError::InvalidCron {
                    expression: cron.into(),
                    reason: reason.clone(),
                });
        }
    }

    #[test]
    fn a_non_schedule_trigger_with_a_schedule_is_refused() {
        given::<Trigger>([])
            .with(manager())
            .when(create(TriggerKind::Webhook, Some("* * * * *")))
            .then_err(DomainError::invalid(
                "schedule",
                "only schedule triggers take a cron expression",
            ));
    }

    #[test]
    fn a_trigger_for_an_unknown_bot_is_refused() {
        given::<Trigger>([])
            .with(manager())
            .when(TriggerCommand::Create {
                trigger_id: TRIGGER,
                name: "nightly".into(),
                kind: TriggerKind::Manual,
                schedule: None,
                bot_id: BOT,
                task: "reconcile".into(),
                bot_exists: false,
            })
            .then_err(DomainError::not_found("bot", BOT));
    }

    #[test]
    fn a_blank_name_or_task_is_refused() {
        let cmd = |name: &str, task: &str| TriggerCommand::Create {
            trigger_id: TRIGGER,
            name: name.into(),
            kind: TriggerKind::Manual,
            schedule: None,
            bot_id: BOT,
            task: task.into(),
            bot_exists: true,
        };
        given::<Trigger>([])
            .with(manager())
            .when(cmd(" ", "reconcile"))
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<Trigger>([])
            .with(manager())
            .when(cmd("nightly", ""))
            .then_err(DomainError::invalid("task", "must not be empty"));
        given::<Trigger>([])
            .with(manager())
            .when(cmd("nightly", &"t".repeat(TASK_CHARS_MAX + 1)))
            .then_err(DomainError::invalid(
                "task",
                format!("longer than {TASK_CHARS_MAX} characters"),
            ));
    }

    #[test]
    fn creating_a_trigger_twice_is_refused() {
        given::<Trigger>([created()])
            .with(manager())
            .when(create(TriggerKind::Manual, None))
            .then_err(DomainError::exists("trigger", TRIGGER));
    }

    #[test]
    fn creating_needs_triggers_manage() {
        given::<Trigger>([])
            .with(reader())
            .when(create(TriggerKind::Manual, None))
            .then_err(DomainError::Forbidden(Permission::TriggersManage));
    }

    // ------------------------------------------------------------ update

    #[test]
    fn an_update_records_only_what_changed() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: Some("nightly".into()),
                schedule: Some("30 2 * * *".into()),
                bot_id: Some(BOT),
                task: Some("reconcile".into()),
                bot_exists: true,
            })
            .then([TriggerUpdated {
                schedule: Some("30 2 * * *".into()),
                ..updated()
            }
            .into()]);
    }

    #[test]
    fn an_update_changes_name_bot_and_task() {
        let e = TriggerUpdated {
            name: Some("hourly".into()),
            schedule: None,
            bot_id: Some(OTHER_BOT),
            task: Some("sync".into()),
        };
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: Some(" hourly ".into()),
                schedule: None,
                bot_id: Some(OTHER_BOT),
                task: Some("sync".into()),
                bot_exists: true,
            })
            .then([e.clone().into()]);
        let t = Trigger::replay(&[created(), e.into()]);
        assert_eq!(
            (t.name(), t.bot_id(), t.task(), t.schedule()),
            ("hourly", Some(OTHER_BOT), "sync", Some("0 2 * * *"))
        );
    }

    #[test]
    fn an_update_changing_nothing_decides_no_events() {
        given::<Trigger>([created()])
            .with(manager())
            .when(update())
            .then([]);
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: Some("nightly".into()),
                schedule: Some(" 0 2 * * * ".into()),
                bot_id: Some(BOT),
                task: Some("reconcile".into()),
                bot_exists: true,
            })
            .then([]);
    }

    #[test]
    fn moving_a_trigger_to_an_unknown_bot_is_refused() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: None,
                schedule: None,
                bot_id: Some(OTHER_BOT),
                task: None,
                bot_exists: false,
            })
            .then_err(DomainError::not_found("bot", OTHER_BOT));
    }

    #[test]
    fn an_update_that_keeps_the_bot_does_not_need_it_to_exist() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: Some("renamed".into()),
                bot_id: Some(BOT),
                bot_exists: false,
                schedule: None,
                task: None,
            })
            .then([TriggerUpdated {
                name: Some("renamed".into()),
                ..updated()
            }
            .into()]);
    }

    #[test]
    fn an_update_with_an_invalid_cron_expression_is_refused() {
        let r = given::<Trigger>([created()])
            .with(manager())
            .when(with_schedule("nope"))
            .result();
        assert!(is_invalid_cron(r.clone(), "nope"), "{r:?}");
    }

    #[test]
    fn an_update_giving_a_webhook_trigger_a_schedule_is_refused() {
        given::<Trigger>([created_as(TriggerKind::Webhook, None)])
            .with(manager())
            .when(with_schedule("0 2 * * *"))
            .then_err(DomainError::invalid(
                "schedule",
                "only schedule triggers take a cron expression",
            ));
    }

    #[test]
    fn an_update_with_a_blank_name_or_task_is_refused() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                name: Some("".into()),
                schedule: None,
                bot_id: None,
                task: None,
                bot_exists: true,
            })
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Update {
                task: Some(" ".into()),
                name: None,
                schedule: None,
                bot_id: None,
                bot_exists: true,
            })
            .then_err(DomainError::invalid("task", "must not be empty"));
    }

    #[test]
    fn updating_needs_triggers_manage() {
        given::<Trigger>([created()])
            .with(reader())
            .when(with_schedule("30 2 * * *"))
            .then_err(DomainError::Forbidden(Permission::TriggersManage));
    }

    // ------------------------------------------------------------ enable, disable, delete

    #[test]
    fn a_manager_disables_and_enables_a_trigger() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Disable)
            .then([TriggerDisabled {}.into()]);
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .with(manager())
            .when(TriggerCommand::Enable)
            .then([TriggerEnabled {}.into()]);
        assert!(!Trigger::replay(&[created(), TriggerDisabled {}.into()]).enabled());
    }

    #[test]
    fn disabling_a_disabled_trigger_is_refused() {
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .with(manager())
            .when(TriggerCommand::Disable)
            .then_err(DomainError::wrong_state("trigger", "disabled", "disable"));
    }

    #[test]
    fn enabling_an_enabled_trigger_is_refused() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Enable)
            .then_err(DomainError::wrong_state("trigger", "enabled", "enable"));
    }

    #[test]
    fn a_manager_deletes_a_trigger() {
        given::<Trigger>([created()])
            .with(manager())
            .when(TriggerCommand::Delete)
            .then([TriggerDeleted {}.into()]);
        assert!(Trigger::replay(&[created(), TriggerDeleted {}.into()]).deleted());
    }

    #[test]
    fn enable_disable_and_delete_need_triggers_manage() {
        for cmd in [
            TriggerCommand::Enable,
            TriggerCommand::Disable,
            TriggerCommand::Delete,
        ] {
            given::<Trigger>([created()])
                .with(reader())
                .when(cmd)
                .then_err(DomainError::Forbidden(Permission::TriggersManage));
        }
    }

    #[test]
    fn a_deleted_trigger_takes_no_command() {
        let deleted = [created(), TriggerDeleted {}.into()];
        for (cmd, action) in [
            (TriggerCommand::Enable, "enable"),
            (TriggerCommand::Disable, "disable"),
            (TriggerCommand::Delete, "delete"),
            (with_schedule("30 2 * * *"), "update"),
            (fire(51), "fire"),
        ] {
            given::<Trigger>(deleted.clone())
                .with(manager())
                .when(cmd)
                .then_err(DomainError::wrong_state("trigger", "deleted", action));
        }
    }

    #[test]
    fn commands_on_an_uncreated_trigger_are_not_found() {
        for cmd in [
            update(),
            TriggerCommand::Enable,
            TriggerCommand::Disable,
            TriggerCommand::Delete,
            fire(51),
        ] {
            given::<Trigger>([])
                .with(manager())
                .when(cmd)
                .then_err(DomainError::not_found("trigger", "(uncreated)"));
        }
        given::<Trigger>([])
            .when(failure(5, AUTO_DISABLE_FAILURES_DEFAULT))
            .then_err(DomainError::not_found("trigger", "(uncreated)"));
    }

    // ------------------------------------------------------------ fire

    #[test]
    fn a_manager_fires_a_trigger_by_hand() {
        given::<Trigger>([created_as(TriggerKind::Manual, None)])
            .with(manager())
            .when(fire(51))
            .then([fired(51)]);
    }

    #[test]
    fn the_system_fires_a_schedule() {
        given::<Trigger>([created()])
            .when(fire(51))
            .then([fired(51)]);
    }

    #[test]
    fn firing_counts_and_remembers_the_last_run() {
        let t = Trigger::replay(&[created(), fired(51), fired(52)]);
        assert_eq!(t.fire_count(), 2);
        assert_eq!(t.last_fired_run_id(), Some(Uuid::from_u128(52)));
    }

    #[test]
    fn firing_again_for_the_last_run_is_refused() {
        given::<Trigger>([created(), fired(51)])
            .when(fire(51))
            .then_err(DomainError::exists("run", Uuid::from_u128(51)));
    }

    #[test]
    fn firing_needs_triggers_manage_unless_the_system_fires() {
        given::<Trigger>([created()])
            .with(reader())
            .when(fire(51))
            .then_err(DomainError::Forbidden(Permission::TriggersManage));
        given::<Trigger>([created()])
            .with(ctx(Actor::Bot(BOT), &[]))
            .when(fire(51))
            .then_err(DomainError::Forbidden(Permission::TriggersManage));
    }

    #[test]
    fn a_disabled_trigger_does_not_fire() {
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .when(fire(51))
            .then_err(DomainError::wrong_state("trigger", "disabled", "fire"));
        given::<Trigger>([created(), auto_disabled(5)])
            .with(manager())
            .when(fire(51))
            .then_err(DomainError::wrong_state("trigger", "disabled", "fire"));
    }

    // ------------------------------------------------------------ run failures

    #[test]
    fn failures_below_the_threshold_decide_nothing() {
        given::<Trigger>([created()])
            .when(failure(4, AUTO_DISABLE_FAILURES_DEFAULT))
            .then([]);
    }

    #[test]
    fn five_failed_runs_in_a_row_auto_disable_the_trigger() {
        given::<Trigger>([created()])
            .when(failure(5, AUTO_DISABLE_FAILURES_DEFAULT))
            .then([auto_disabled(5)]);
        let t = Trigger::replay(&[created(), auto_disabled(5)]);
        assert!(!t.enabled());
    }

    #[test]
    fn the_organizations_own_threshold_applies() {
        given::<Trigger>([created()])
            .when(failure(3, 3))
            .then([auto_disabled(3)]);
        given::<Trigger>([created()]).when(failure(5, 8)).then([]);
    }

    #[test]
    fn a_threshold_of_zero_never_auto_disables() {
        given::<Trigger>([created()]).when(failure(100, 0)).then([]);
    }

    #[test]
    fn a_disabled_or_deleted_trigger_is_not_auto_disabled() {
        given::<Trigger>([created(), auto_disabled(5)])
            .when(failure(6, AUTO_DISABLE_FAILURES_DEFAULT))
            .then([]);
        given::<Trigger>([created(), TriggerDisabled {}.into()])
            .when(failure(6, AUTO_DISABLE_FAILURES_DEFAULT))
            .then([]);
        given::<Trigger>([created(), TriggerDeleted {}.into()])
            .when(failure(6, AUTO_DISABLE_FAILURES_DEFAULT))
            .then([]);
    }

    #[test]
    fn an_auto_disabled_trigger_is_enabled_again_by_hand() {
        given::<Trigger>([created(), auto_disabled(5)])
            .with(manager())
            .when(TriggerCommand::Enable)
            .then([TriggerEnabled {}.into()]);
    }

    #[test]
    fn only_the_system_records_run_failures() {
        for c in [
            ctx(Actor::User(USER), Permission::ALL),
            ctx(Actor::Bot(BOT), &[]),
        ] {
            given::<Trigger>([created()])
                .with(c)
                .when(failure(9, AUTO_DISABLE_FAILURES_DEFAULT))
                .then_err(DomainError::NotPermitted(
                    "run outcomes are recorded by the system",
                ));
        }
    }

    #[test]
    fn events_of_other_aggregates_change_nothing() {
        let before = Trigger::replay(&[created(), fired(51)]);
        let mut after = before.clone();
        after.apply(&BotDeleted {}.into());
        after.apply(
            &RunFailed {
                duration_ms: 1,
                error: "x".into(),
                credits: None,
            }
            .into(),
        );
        assert_eq!(after, before);
    }
}
