//! An RPA bot — stream `bot-<bot_id>`.
//!
//! Registration, name, enable/disable, status and token rotation. A new bot is enabled
//! and `offline`. Heartbeats are not events: only a *change* of status is recorded, so
//! reporting the current status decides nothing. A bot reports its own status with its
//! bot token; the system marks a silent bot offline. A deleted bot takes no further
//! command, and only an enabled, undeleted bot starts runs
//! ([`Bot::check_can_start_runs`]).

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{
    BotDeleted, BotDisabled, BotEnabled, BotRegistered, BotRenamed, BotStatus, BotStatusChanged,
    BotTokenRotated, Event,
};
use crate::permissions::Permission;
use crate::validate;
use uuid::Uuid;

/// Longest machine name a bot reports (a host name, or a short description of one).
pub const MACHINE_CHARS_MAX: usize = 200;
/// Longest reason for disabling a bot: free text, like every reason.
pub const REASON_CHARS_MAX: usize = validate::TEXT_CHARS_MAX;

#[derive(Clone, Debug, PartialEq)]
pub enum BotCommand {
    /// `bots:manage`. A blank `machine` is recorded as none.
    Register {
        bot_id: Uuid,
        name: String,
        machine: Option<String>,
    },
    /// `bots:manage`. Renaming to the current name decides nothing.
    Rename { name: String },
    /// `bots:manage`; the bot must be disabled.
    Enable,
    /// `bots:manage`; the bot must be enabled.
    Disable { reason: Option<String> },
    /// The bot itself, the system (heartbeat timeout) or a user with `bots:manage`.
    ReportStatus { status: BotStatus },
    /// `bots:manage`. The token itself lives in the credentials store.
    RotateToken,
    /// `bots:manage`. Final: a deleted bot takes no further command.
    Delete,
}

impl BotCommand {
    /// What the command does, for `wrong_state` errors.
    fn action(&self) -> &'static str {
        match self {
            BotCommand::Register { .. } => "register",
            BotCommand::Rename { .. } => "rename",
            BotCommand::Enable => "enable",
            BotCommand::Disable { .. } => "disable",
            BotCommand::ReportStatus { .. } => "report status",
            BotCommand::RotateToken => "rotate token",
            BotCommand::Delete => "delete",
        }
    }
}

/// The state of one bot. Fields are public (and serializable) because the read models
/// store the state as the domain folds it; the accessors are the API's reading surface.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bot {
    /// `None` until `bot.registered`.
    pub id: Option<Uuid>,
    pub name: String,
    pub machine: Option<String>,
    pub enabled: bool,
    pub status: BotStatus,
    pub deleted: bool,
}

/// Written by hand, not derived: `BotStatus` has no `Default`, and a new bot is enabled
/// and offline.
impl Default for Bot {
    fn default() -> Bot {
        Bot {
            id: None,
            name: String::new(),
            machine: None,
            enabled: true,
            status: BotStatus::Offline,
            deleted: false,
        }
    }
}

impl Bot {
    /// The bot's id, `None` before registration.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn machine(&self) -> Option<&str> {
        self.machine.as_deref()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn status(&self) -> BotStatus {
        self.status
    }

    pub fn deleted(&self) -> bool {
        self.deleted
    }

    /// Whether this bot may start runs: registered, not deleted, enabled. Callers of the
    /// run aggregate check this (or pass `enabled`/`deleted` on `RunCommand::Start`).
    pub fn check_can_start_runs(&self) -> Result<(), DomainError> {
        self.check_live("start runs")?;
        if !self.enabled {
            return Err(DomainError::wrong_state("bot", "disabled", "start runs"));
        }
        Ok(())
    }

    /// The id of a registered, undeleted bot.
    fn check_live(&self, action: &'static str) -> Result<Uuid, DomainError> {
        let id = self
            .id
            .ok_or_else(|| DomainError::not_found("bot", "(unregistered)"))?;
        if self.deleted {
            return Err(DomainError::wrong_state("bot", "deleted", action));
        }
        Ok(id)
    }

    fn register(
        &self,
        bot_id: Uuid,
        name: &str,
        machine: Option<&str>,
    ) -> Result<Vec<Event>, DomainError> {
        if self.deleted {
            return Err(DomainError::wrong_state("bot", "deleted", "register"));
        }
        if self.id.is_some() {
            return Err(DomainError::exists("bot", bot_id));
        }
        let name = validate::name("name", name)?;
        let machine = machine
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| validate::text("machine", m, MACHINE_CHARS_MAX))
            .transpose()?;
        let e = BotRegistered {
            bot_id,
            name,
            machine,
        };
        Ok(vec![e.into()])
    }

    fn report_status(&self, status: BotStatus, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        let id = self.check_live("report status")?;
        match ctx.actor {
            Actor::Bot(b) if b == id => {}
            Actor::Bot(_) => {
                return Err(DomainError::NotPermitted(
                    "a bot reports only its own status",
                ));
            }
            Actor::System | Actor::User(_) => ctx.require(Permission::BotsManage)?,
        }
        if status == self.status {
            return Ok(vec![]);
        }
        let e = BotStatusChanged {
            from: self.status,
            to: status,
        };
        Ok(vec![e.into()])
    }

    /// The `bots:manage` commands on an existing bot.
    fn manage(&self, command: &BotCommand) -> Result<Vec<Event>, DomainError> {
        self.check_live(command.action())?;
        let event: Event = match command {
            BotCommand::Rename { name } => {
                let name = validate::name("name", name)?;
                if name == self.name {
                    return Ok(vec![]);
                }
                BotRenamed { name }.into()
            }
            BotCommand::Enable if self.enabled => {
                return Err(DomainError::wrong_state("bot", "enabled", "enable"));
            }
            BotCommand::Enable => BotEnabled {}.into(),
            BotCommand::Disable { .. } if !self.enabled => {
                return Err(DomainError::wrong_state("bot", "disabled", "disable"));
            }
            BotCommand::Disable { reason } => {
                let reason = reason
                    .as_deref()
                    .map(|r| validate::text("reason", r, REASON_CHARS_MAX))
                    .transpose()?;
                BotDisabled { reason }.into()
            }
            BotCommand::RotateToken => BotTokenRotated {}.into(),
            BotCommand::Delete => BotDeleted {}.into(),
            // Decided by `register` and `report_status`; never routed here.
            BotCommand::Register { .. } | BotCommand::ReportStatus { .. } => return Ok(vec![]),
        };
        Ok(vec![event])
    }
}

impl Aggregate for Bot {
    type Command = BotCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::BotRegistered(e) => {
                *self = Bot {
                    id: Some(e.bot_id),
                    name: e.name.clone(),
                    machine: e.machine.clone(),
                    ..Bot::default()
                }
            }
            Event::BotRenamed(e) => self.name = e.name.clone(),
            Event::BotEnabled(_) => self.enabled = true,
            Event::BotDisabled(_) => self.enabled = false,
            Event::BotStatusChanged(e) => self.status = e.to,
            Event::BotDeleted(_) => self.deleted = true,
            _ => {}
        }
    }

    fn decide(&self, command: &BotCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            BotCommand::ReportStatus { status } => self.report_status(*status, ctx),
            BotCommand::Register {
                bot_id,
                name,
                machine,
            } => {
                ctx.require(Permission::BotsManage)?;
                self.register(*bot_id, name, machine.as_deref())
            }
            other => {
                ctx.require(Permission::BotsManage)?;
                self.manage(other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};
    use crate::events::{RunStarted, TriggerFired};

    const BOT: Uuid = Uuid::from_u128(40);
    const OTHER_BOT: Uuid = Uuid::from_u128(41);
    const USER: Uuid = Uuid::from_u128(1);

    fn register(name: &str, machine: Option<&str>) -> BotCommand {
        BotCommand::Register {
            bot_id: BOT,
            name: name.into(),
            machine: machine.map(Into::into),
        }
    }
    fn registered() -> Event {
        BotRegistered {
            bot_id: BOT,
            name: "invoice-bot".into(),
            machine: Some("WIN-7".into()),
        }
        .into()
    }
    fn disabled() -> Event {
        BotDisabled { reason: None }.into()
    }
    fn changed(from: BotStatus, to: BotStatus) -> Event {
        BotStatusChanged { from, to }.into()
    }
    fn manager() -> Context {
        ctx(Actor::User(USER), &[Permission::BotsManage])
    }
    fn reader() -> Context {
        ctx(Actor::User(USER), &[Permission::BotsRead])
    }
    fn itself() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }
    fn report(status: BotStatus) -> BotCommand {
        BotCommand::ReportStatus { status }
    }
    /// Every command but `Register`, with its action name.
    fn commands_on_a_bot() -> Vec<(BotCommand, &'static str)> {
        vec![
            (BotCommand::Rename { name: "n".into() }, "rename"),
            (BotCommand::Enable, "enable"),
            (BotCommand::Disable { reason: None }, "disable"),
            (report(BotStatus::Online), "report status"),
            (BotCommand::RotateToken, "rotate token"),
            (BotCommand::Delete, "delete"),
        ]
    }

    // ------------------------------------------------------------ register

    #[test]
    fn a_manager_registers_a_bot_with_a_trimmed_name() {
        given::<Bot>([])
            .with(manager())
            .when(register(" invoice-bot ", Some(" WIN-7 ")))
            .then([registered()]);
    }

    #[test]
    fn a_blank_machine_is_recorded_as_none() {
        given::<Bot>([])
            .with(manager())
            .when(register("invoice-bot", Some("   ")))
            .then([BotRegistered {
                bot_id: BOT,
                name: "invoice-bot".into(),
                machine: None,
            }
            .into()]);
    }

    #[test]
    fn a_new_bot_is_enabled_offline_and_can_start_runs() {
        let b = Bot::replay(&[registered()]);
        assert_eq!(b.id(), Some(BOT));
        assert_eq!(b.name(), "invoice-bot");
        assert_eq!(b.machine(), Some("WIN-7"));
        assert!(b.enabled());
        assert!(!b.deleted());
        assert_eq!(b.status(), BotStatus::Offline);
        assert_eq!(b.check_can_start_runs(), Ok(()));
    }

    #[test]
    fn registering_a_bot_twice_is_refused() {
        given::<Bot>([registered()])
            .with(manager())
            .when(register("x", None))
            .then_err(DomainError::exists("bot", BOT));
    }

    #[test]
    fn registering_a_deleted_bot_again_is_refused() {
        given::<Bot>([registered(), BotDeleted {}.into()])
            .with(manager())
            .when(register("x", None))
            .then_err(DomainError::wrong_state("bot", "deleted", "register"));
    }

    #[test]
    fn registering_needs_bots_manage() {
        given::<Bot>([])
            .with(reader())
            .when(register("x", None))
            .then_err(DomainError::Forbidden(Permission::BotsManage));
        given::<Bot>([])
            .with(itself())
            .when(register("x", None))
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn registering_refuses_a_blank_or_long_name() {
        given::<Bot>([])
            .with(manager())
            .when(register("  ", None))
            .then_err(DomainError::invalid("name", "must not be empty"));
        let long = "n".repeat(validate::NAME_CHARS_MAX + 1);
        given::<Bot>([])
            .with(manager())
            .when(register(&long, None))
            .then_err(DomainError::invalid(
                "name",
                format!("longer than {} characters", validate::NAME_CHARS_MAX),
            ));
    }

    #[test]
    fn registering_refuses_a_long_or_garbled_machine() {
        let long = "m".repeat(MACHINE_CHARS_MAX + 1);
        given::<Bot>([])
            .with(manager())
            .when(register("x", Some(&long)))
            .then_err(DomainError::invalid(
                "machine",
                format!("longer than {MACHINE_CHARS_MAX} characters"),
            ));
        given::<Bot>([])
            .with(manager())
            .when(register("x", Some("WIN\u{7}7")))
            .then_err(DomainError::invalid(
                "machine",
                "contains control characters",
            ));
    }

    // ------------------------------------------------------------ rename

    #[test]
    fn a_manager_renames_a_bot() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename {
                name: " ledger-bot ".into(),
            })
            .then([BotRenamed {
                name: "ledger-bot".into(),
            }
            .into()]);
        let b = Bot::replay(&[
            registered(),
            BotRenamed {
                name: "ledger-bot".into(),
            }
            .into(),
        ]);
        assert_eq!(b.name(), "ledger-bot");
    }

    #[test]
    fn renaming_to_the_current_name_decides_nothing() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename {
                name: "invoice-bot".into(),
            })
            .then([]);
    }

    #[test]
    fn renaming_to_a_blank_name_is_refused() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename { name: "".into() })
            .then_err(DomainError::invalid("name", "must not be empty"));
    }

    #[test]
    fn renaming_needs_bots_manage() {
        given::<Bot>([registered()])
            .with(reader())
            .when(BotCommand::Rename { name: "x".into() })
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    // ------------------------------------------------------------ enable, disable

    #[test]
    fn a_manager_disables_a_bot_with_a_reason() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Disable {
                reason: Some("patching".into()),
            })
            .then([BotDisabled {
                reason: Some("patching".into()),
            }
            .into()]);
    }

    #[test]
    fn disabling_a_disabled_bot_is_refused() {
        given::<Bot>([registered(), disabled()])
            .with(manager())
            .when(BotCommand::Disable { reason: None })
            .then_err(DomainError::wrong_state("bot", "disabled", "disable"));
    }

    #[test]
    fn a_disable_reason_longer_than_free_text_is_refused() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Disable {
                reason: Some("r".repeat(REASON_CHARS_MAX + 1)),
            })
            .then_err(DomainError::invalid(
                "reason",
                format!("longer than {REASON_CHARS_MAX} characters"),
            ));
    }

    #[test]
    fn a_disabled_bot_cannot_start_runs() {
        let b = Bot::replay(&[registered(), disabled()]);
        assert!(!b.enabled());
        assert_eq!(
            b.check_can_start_runs(),
            Err(DomainError::wrong_state("bot", "disabled", "start runs"))
        );
    }

    #[test]
    fn a_manager_enables_a_disabled_bot_again() {
        given::<Bot>([registered(), disabled()])
            .with(manager())
            .when(BotCommand::Enable)
            .then([BotEnabled {}.into()]);
        let b = Bot::replay(&[registered(), disabled(), BotEnabled {}.into()]);
        assert_eq!(b.check_can_start_runs(), Ok(()));
    }

    #[test]
    fn enabling_an_enabled_bot_is_refused() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Enable)
            .then_err(DomainError::wrong_state("bot", "enabled", "enable"));
    }

    #[test]
    fn enabling_and_disabling_need_bots_manage() {
        given::<Bot>([registered(), disabled()])
            .with(reader())
            .when(BotCommand::Enable)
            .then_err(DomainError::Forbidden(Permission::BotsManage));
        given::<Bot>([registered()])
            .with(itself())
            .when(BotCommand::Disable { reason: None })
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    // ------------------------------------------------------------ status

    #[test]
    fn a_bot_reports_its_own_status_change() {
        given::<Bot>([registered()])
            .with(itself())
            .when(report(BotStatus::Online))
            .then([changed(BotStatus::Offline, BotStatus::Online)]);
        let b = Bot::replay(&[registered(), changed(BotStatus::Offline, BotStatus::Busy)]);
        assert_eq!(b.status(), BotStatus::Busy);
    }

    #[test]
    fn reporting_the_current_status_decides_nothing() {
        given::<Bot>([registered()])
            .with(itself())
            .when(report(BotStatus::Offline))
            .then([]);
        given::<Bot>([registered(), changed(BotStatus::Offline, BotStatus::Error)])
            .with(itself())
            .when(report(BotStatus::Error))
            .then([]);
    }

    #[test]
    fn the_system_marks_a_silent_bot_offline() {
        given::<Bot>([registered(), changed(BotStatus::Offline, BotStatus::Online)])
            .when(report(BotStatus::Offline))
            .then([changed(BotStatus::Online, BotStatus::Offline)]);
    }

    #[test]
    fn a_manager_may_report_a_bots_status() {
        given::<Bot>([registered()])
            .with(manager())
            .when(report(BotStatus::Error))
            .then([changed(BotStatus::Offline, BotStatus::Error)]);
    }

    #[test]
    fn a_disabled_bot_still_reports_its_status() {
        given::<Bot>([registered(), disabled()])
            .with(itself())
            .when(report(BotStatus::Online))
            .then([changed(BotStatus::Offline, BotStatus::Online)]);
    }

    #[test]
    fn another_bot_cannot_report_this_bots_status() {
        given::<Bot>([registered()])
            .with(ctx(Actor::Bot(OTHER_BOT), &[Permission::BotsManage]))
            .when(report(BotStatus::Online))
            .then_err(DomainError::NotPermitted(
                "a bot reports only its own status",
            ));
    }

    #[test]
    fn a_user_without_bots_manage_cannot_report_status() {
        given::<Bot>([registered()])
            .with(reader())
            .when(report(BotStatus::Online))
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    // ------------------------------------------------------------ token, delete

    #[test]
    fn a_manager_rotates_the_token() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::RotateToken)
            .then([BotTokenRotated {}.into()]);
        given::<Bot>([registered(), BotTokenRotated {}.into()])
            .with(manager())
            .when(BotCommand::RotateToken)
            .then([BotTokenRotated {}.into()]);
    }

    #[test]
    fn a_bot_cannot_rotate_its_own_token() {
        given::<Bot>([registered()])
            .with(itself())
            .when(BotCommand::RotateToken)
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn a_manager_deletes_a_bot_enabled_or_disabled() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Delete)
            .then([BotDeleted {}.into()]);
        given::<Bot>([registered(), disabled()])
            .with(manager())
            .when(BotCommand::Delete)
            .then([BotDeleted {}.into()]);
    }

    #[test]
    fn deleting_needs_bots_manage() {
        given::<Bot>([registered()])
            .with(reader())
            .when(BotCommand::Delete)
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn a_deleted_bot_takes_no_command_and_cannot_start_runs() {
        let deleted = [registered(), BotDeleted {}.into()];
        for (cmd, action) in commands_on_a_bot() {
            given::<Bot>(deleted.clone())
                .with(manager())
                .when(cmd)
                .then_err(DomainError::wrong_state("bot", "deleted", action));
        }
        given::<Bot>(deleted.clone())
            .with(itself())
            .when(report(BotStatus::Online))
            .then_err(DomainError::wrong_state("bot", "deleted", "report status"));
        let b = Bot::replay(&deleted);
        assert!(b.deleted());
        assert_eq!(
            b.check_can_start_runs(),
            Err(DomainError::wrong_state("bot", "deleted", "start runs"))
        );
    }

    // ------------------------------------------------------------ unregistered

    #[test]
    fn every_command_on_an_unregistered_bot_is_not_found() {
        for (cmd, _) in commands_on_a_bot() {
            given::<Bot>([])
                .with(manager())
                .when(cmd)
                .then_err(DomainError::not_found("bot", "(unregistered)"));
        }
        assert_eq!(
            Bot::default().check_can_start_runs(),
            Err(DomainError::not_found("bot", "(unregistered)"))
        );
    }

    #[test]
    fn events_of_other_aggregates_change_nothing() {
        let before = Bot::replay(&[registered()]);
        let mut after = before.clone();
        after.apply(
            &RunStarted {
                run_id: Uuid::from_u128(50),
                bot_id: BOT,
                task: "t".into(),
                trigger_id: None,
            }
            .into(),
        );
        after.apply(
            &TriggerFired {
                run_id: Uuid::from_u128(50),
            }
            .into(),
        );
        assert_eq!(after, before);
    }
}
