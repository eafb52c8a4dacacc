//! An RPA bot — stream `bot-<bot_id>`.
//!
//! Registration, name, enable/disable, status and token rotation. Heartbeats are not
//! events: only a *change* of status is recorded, so reporting the current status
//! decides nothing. A deleted bot takes no further command.

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

/// Longest machine name a bot reports.
pub const MACHINE_CHARS_MAX: usize = 200;
/// Longest reason for disabling a bot.
pub const REASON_CHARS_MAX: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub enum BotCommand {
    Register {
        bot_id: Uuid,
        name: String,
        machine: Option<String>,
    },
    Rename {
        name: String,
    },
    Enable,
    Disable {
        reason: Option<String>,
    },
    ReportStatus {
        status: BotStatus,
    },
    RotateToken,
    Delete,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bot {
    pub id: Option<Uuid>,
    pub name: String,
    pub machine: Option<String>,
    pub enabled: bool,
    pub status: BotStatus,
    pub deleted: bool,
}

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
    fn check_live(&self, action: &'static str) -> Result<Uuid, DomainError> {
        let id = self
            .id
            .ok_or_else(|| DomainError::not_found("bot", "(unregistered)"))?;
        if self.deleted {
            return Err(DomainError::wrong_state("bot", "deleted", action));
        }
        Ok(id)
    }

    /// Whether this bot may start runs: registered, not deleted, enabled.
    pub fn check_can_start_runs(&self) -> Result<(), DomainError> {
        self.check_live("start runs")?;
        if !self.enabled {
            return Err(DomainError::wrong_state("bot", "disabled", "start runs"));
        }
        Ok(())
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
        if let BotCommand::Register {
            bot_id,
            name,
            machine,
        } = command
        {
            ctx.require(Permission::BotsManage)?;
            if self.id.is_some() {
                return Err(DomainError::exists("bot", bot_id));
            }
            let machine = machine
                .as_deref()
                .map(|m| validate::text("machine", m.trim(), MACHINE_CHARS_MAX))
                .transpose()?;
            let name = validate::name("name", name)?;
            return Ok(vec![
                BotRegistered {
                    bot_id: *bot_id,
                    name,
                    machine,
                }
                .into(),
            ]);
        }
        let id = self.check_live("change")?;
        match command {
            BotCommand::Register { .. } => Ok(vec![]),
            BotCommand::ReportStatus { status } => {
                match ctx.actor {
                    Actor::Bot(b) if b == id => {}
                    Actor::Bot(_) => {
                        return Err(DomainError::NotPermitted(
                            "a bot reports only its own status",
                        ));
                    }
                    _ => ctx.require(Permission::BotsManage)?,
                }
                if *status == self.status {
                    return Ok(vec![]);
                }
                Ok(vec![
                    BotStatusChanged {
                        from: self.status,
                        to: *status,
                    }
                    .into(),
                ])
            }
            other => {
                ctx.require(Permission::BotsManage)?;
                match other {
                    BotCommand::Rename { name } => {
                        let name = validate::name("name", name)?;
                        if name == self.name {
                            return Ok(vec![]);
                        }
                        Ok(vec![BotRenamed { name }.into()])
                    }
                    BotCommand::Enable if self.enabled => {
                        Err(DomainError::wrong_state("bot", "enabled", "enable"))
                    }
                    BotCommand::Enable => Ok(vec![BotEnabled {}.into()]),
                    BotCommand::Disable { .. } if !self.enabled => {
                        Err(DomainError::wrong_state("bot", "disabled", "disable"))
                    }
                    BotCommand::Disable { reason } => {
                        let reason = reason
                            .as_deref()
                            .map(|r| validate::text("reason", r, REASON_CHARS_MAX))
                            .transpose()?;
                        Ok(vec![BotDisabled { reason }.into()])
                    }
                    BotCommand::RotateToken => Ok(vec![BotTokenRotated {}.into()]),
                    BotCommand::Delete => Ok(vec![BotDeleted {}.into()]),
                    BotCommand::Register { .. } | BotCommand::ReportStatus { .. } => Ok(vec![]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};

    const BOT: Uuid = Uuid::from_u128(40);
    const USER: Uuid = Uuid::from_u128(1);

    fn registered() -> Event {
        BotRegistered {
            bot_id: BOT,
            name: "invoice-bot".into(),
            machine: Some("WIN-7".into()),
        }
        .into()
    }
    fn manager() -> Context {
        ctx(Actor::User(USER), &[Permission::BotsManage])
    }
    fn itself() -> Context {
        ctx(Actor::Bot(BOT), &[])
    }

    #[test]
    fn a_manager_registers_a_bot_once() {
        given::<Bot>([])
            .with(manager())
            .when(BotCommand::Register {
                bot_id: BOT,
                name: " invoice-bot ".into(),
                machine: Some("WIN-7".into()),
            })
            .then([registered()]);
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Register {
                bot_id: BOT,
                name: "x".into(),
                machine: None,
            })
            .then_err(DomainError::exists("bot", BOT));
        given::<Bot>([])
            .with(ctx(Actor::User(USER), &[Permission::BotsRead]))
            .when(BotCommand::Register {
                bot_id: BOT,
                name: "x".into(),
                machine: None,
            })
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn a_new_bot_is_enabled_and_offline() {
        let b = Bot::replay(&[registered()]);
        assert!(b.enabled);
        assert_eq!(b.status, BotStatus::Offline);
        assert_eq!(b.check_can_start_runs(), Ok(()));
    }

    #[test]
    fn status_events_are_recorded_only_on_change() {
        given::<Bot>([registered()])
            .with(itself())
            .when(BotCommand::ReportStatus {
                status: BotStatus::Online,
            })
            .then([BotStatusChanged {
                from: BotStatus::Offline,
                to: BotStatus::Online,
            }
            .into()]);
        given::<Bot>([registered()])
            .with(itself())
            .when(BotCommand::ReportStatus {
                status: BotStatus::Offline,
            })
            .then([]);
    }

    #[test]
    fn a_bot_reports_only_its_own_status_and_the_system_marks_silent_bots_offline() {
        given::<Bot>([registered()])
            .with(ctx(Actor::Bot(Uuid::from_u128(41)), &[]))
            .when(BotCommand::ReportStatus {
                status: BotStatus::Online,
            })
            .then_err(DomainError::NotPermitted(
                "a bot reports only its own status",
            ));
        let online: Event = BotStatusChanged {
            from: BotStatus::Offline,
            to: BotStatus::Online,
        }
        .into();
        given::<Bot>([registered(), online])
            .when(BotCommand::ReportStatus {
                status: BotStatus::Offline,
            })
            .then([BotStatusChanged {
                from: BotStatus::Online,
                to: BotStatus::Offline,
            }
            .into()]);
        given::<Bot>([registered()])
            .with(ctx(Actor::User(USER), &[]))
            .when(BotCommand::ReportStatus {
                status: BotStatus::Online,
            })
            .then_err(DomainError::Forbidden(Permission::BotsManage));
    }

    #[test]
    fn a_disabled_bot_cannot_start_runs_and_enable_disable_need_the_other_state() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Disable {
                reason: Some("patching".into()),
            })
            .then([BotDisabled {
                reason: Some("patching".into()),
            }
            .into()]);
        let disabled = vec![registered(), BotDisabled { reason: None }.into()];
        assert_eq!(
            Bot::replay(&disabled).check_can_start_runs(),
            Err(DomainError::wrong_state("bot", "disabled", "start runs"))
        );
        given::<Bot>(disabled.clone())
            .with(manager())
            .when(BotCommand::Disable { reason: None })
            .then_err(DomainError::wrong_state("bot", "disabled", "disable"));
        given::<Bot>(disabled)
            .with(manager())
            .when(BotCommand::Enable)
            .then([BotEnabled {}.into()]);
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Enable)
            .then_err(DomainError::wrong_state("bot", "enabled", "enable"));
    }

    #[test]
    fn a_deleted_bot_takes_no_command_and_cannot_start_runs() {
        let deleted = vec![registered(), BotDeleted {}.into()];
        for cmd in [
            BotCommand::Enable,
            BotCommand::RotateToken,
            BotCommand::Delete,
            BotCommand::Rename { name: "n".into() },
        ] {
            given::<Bot>(deleted.clone())
                .with(manager())
                .when(cmd)
                .then_err(DomainError::wrong_state("bot", "deleted", "change"));
        }
        assert_eq!(
            Bot::replay(&deleted).check_can_start_runs(),
            Err(DomainError::wrong_state("bot", "deleted", "start runs"))
        );
    }

    #[test]
    fn an_unregistered_bot_is_not_found() {
        given::<Bot>([])
            .with(manager())
            .when(BotCommand::RotateToken)
            .then_err(DomainError::not_found("bot", "(unregistered)"));
    }

    #[test]
    fn renaming_and_rotating_are_recorded() {
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename {
                name: "ledger-bot".into(),
            })
            .then([BotRenamed {
                name: "ledger-bot".into(),
            }
            .into()]);
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename {
                name: "invoice-bot".into(),
            })
            .then([]);
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::RotateToken)
            .then([BotTokenRotated {}.into()]);
        given::<Bot>([registered()])
            .with(manager())
            .when(BotCommand::Rename { name: "".into() })
            .then_err(DomainError::invalid("name", "must not be empty"));
    }
}
