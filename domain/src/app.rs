//! A Developer Center app or custom command — stream `app-<app_id>`.
//!
//! Created by a certified developer holding `developer:manage`; versions are semver,
//! each strictly greater than every version published before; an app is published
//! from its first version until it is unpublished.

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{AppCreated, AppKind, AppUnpublished, AppVersionPublished, Event, Visibility};
use crate::permissions::Permission;
use crate::validate;
use uuid::Uuid;

/// Longest release notes.
pub const NOTES_CHARS_MAX: usize = 5_000;

#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// `developer_certified`: whether the acting user is a certified developer of the
    /// organization (from its state).
    Create {
        app_id: Uuid,
        name: String,
        kind: AppKind,
        developer_certified: bool,
    },
    PublishVersion {
        version: String,
        notes: Option<String>,
        visibility: Visibility,
    },
    Unpublish,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct App {
    pub id: Option<Uuid>,
    pub name: String,
    pub kind: Option<AppKind>,
    pub developer_id: Option<Uuid>,
    pub versions: Vec<semver::Version>,
    pub published: bool,
}

impl Aggregate for App {
    type Command = AppCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::AppCreated(e) => {
                *self = App {
                    id: Some(e.app_id),
                    name: e.name.clone(),
                    kind: Some(e.kind),
                    developer_id: Some(e.developer_id),
                    ..App::default()
                }
            }
            Event::AppVersionPublished(e) => {
                if let Ok(v) = semver::Version::parse(&e.version) {
                    self.versions.push(v);
                }
                self.published = true;
            }
            Event::AppUnpublished(_) => self.published = false,
            _ => {}
        }
    }

    fn decide(&self, command: &AppCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        match command {
            AppCommand::Create {
                app_id,
                name,
                kind,
                developer_certified,
            } => {
                ctx.require(Permission::DeveloperManage)?;
                let developer_id = ctx.user()?;
                if !developer_certified {
                    return Err(DomainError::NotPermitted(
                        "only a certified developer creates apps",
                    ));
                }
                if self.id.is_some() {
                    return Err(DomainError::exists("app", app_id));
                }
                Ok(vec![
                    AppCreated {
                        app_id: *app_id,
                        name: validate::name("name", name)?,
                        kind: *kind,
                        developer_id,
                    }
                    .into(),
                ])
            }
            AppCommand::PublishVersion {
                version,
                notes,
                visibility,
            } => {
                self.check_developer(ctx)?;
                let v = semver::Version::parse(version.trim()).map_err(|e| {
                    DomainError::invalid(
                        "version",
                        format!("{version:?} is not a semantic version: {e}"),
                    )
                })?;
                if self.versions.iter().any(|old| *old >= v) {
                    return Err(DomainError::invalid(
                        "version",
                        format!("{v} is not above every published version"),
                    ));
                }
                let notes = notes
                    .as_deref()
                    .map(|n| validate::text("notes", n, NOTES_CHARS_MAX))
                    .transpose()?;
                Ok(vec![
                    AppVersionPublished {
                        version: v.to_string(),
                        notes,
                        visibility: *visibility,
                    }
                    .into(),
                ])
            }
            AppCommand::Unpublish => {
                self.check_developer(ctx)?;
                if !self.published {
                    return Err(DomainError::wrong_state("app", "unpublished", "unpublish"));
                }
                Ok(vec![AppUnpublished {}.into()])
            }
        }
    }
}

impl App {
    /// The app's developer, or anyone holding `developer:manage`.
    fn check_developer(&self, ctx: &Context) -> Result<(), DomainError> {
        let developer = self
            .developer_id
            .ok_or_else(|| DomainError::not_found("app", "(uncreated)"))?;
        if ctx.actor == Actor::User(developer) {
            return Ok(());
        }
        ctx.require(Permission::DeveloperManage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};

    const APP: Uuid = Uuid::from_u128(70);
    const DEV: Uuid = Uuid::from_u128(3);

    fn created() -> Event {
        AppCreated {
            app_id: APP,
            name: "PDF Extractor".into(),
            kind: AppKind::Command,
            developer_id: DEV,
        }
        .into()
    }
    fn publish(v: &str) -> AppCommand {
        AppCommand::PublishVersion {
            version: v.into(),
            notes: None,
            visibility: Visibility::Private,
        }
    }
    fn published(v: &str) -> Event {
        AppVersionPublished {
            version: v.into(),
            notes: None,
            visibility: Visibility::Private,
        }
        .into()
    }
    fn dev() -> Context {
        ctx(Actor::User(DEV), &[Permission::DeveloperManage])
    }

    #[test]
    fn only_a_certified_developer_creates_an_app() {
        let create = |certified| AppCommand::Create {
            app_id: APP,
            name: "PDF Extractor".into(),
            kind: AppKind::Command,
            developer_certified: certified,
        };
        given::<App>([])
            .with(dev())
            .when(create(true))
            .then([created()]);
        given::<App>([])
            .with(dev())
            .when(create(false))
            .then_err(DomainError::NotPermitted(
                "only a certified developer creates apps",
            ));
        given::<App>([])
            .with(ctx(Actor::User(DEV), &[]))
            .when(create(true))
            .then_err(DomainError::Forbidden(Permission::DeveloperManage));
    }

    #[test]
    fn versions_are_semver_and_always_grow() {
        given::<App>([created()])
            .with(ctx(Actor::User(DEV), &[]))
            .when(publish("1.0.0"))
            .then([published("1.0.0")]);
        given::<App>([created(), published("1.2.0")])
            .with(dev())
            .when(publish("1.1.9"))
            .then_err(DomainError::invalid(
                "version",
                "1.1.9 is not above every published version",
            ));
        given::<App>([created(), published("1.2.0")])
            .with(dev())
            .when(publish("1.2.0"))
            .then_err(DomainError::invalid(
                "version",
                "1.2.0 is not above every published version",
            ));
        assert!(
            given::<App>([created()])
                .with(dev())
                .when(publish("v1"))
                .result()
                .is_err()
        );
        given::<App>([created()])
            .with(ctx(Actor::User(Uuid::from_u128(9)), &[]))
            .when(publish("1.0.0"))
            .then_err(DomainError::Forbidden(Permission::DeveloperManage));
    }

    #[test]
    fn unpublishing_needs_a_published_app() {
        given::<App>([created(), published("1.0.0")])
            .with(dev())
            .when(AppCommand::Unpublish)
            .then([AppUnpublished {}.into()]);
        given::<App>([created()])
            .with(dev())
            .when(AppCommand::Unpublish)
            .then_err(DomainError::wrong_state("app", "unpublished", "unpublish"));
        let a = App::replay(&[
            created(),
            published("1.0.0"),
            AppUnpublished {}.into(),
            published("1.1.0"),
        ]);
        assert!(a.published);
        assert_eq!(a.versions.len(), 2);
    }
}
