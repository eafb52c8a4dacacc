//! A Developer Center app or custom command — stream `app-<app_id>`.
//!
//! Created by a certified developer holding `developer:manage`, who becomes its
//! developer. Versions are semver, each strictly above every version published before
//! (by semver precedence: build metadata does not count). An app is published from a
//! version on until it is unpublished; publishing a new version publishes it again.
//! Its developer, or anyone holding `developer:manage`, publishes and unpublishes it.

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::events::{AppCreated, AppKind, AppUnpublished, AppVersionPublished, Event, Visibility};
use crate::permissions::Permission;
use crate::validate;
use std::cmp::Ordering;
use uuid::Uuid;

/// Longest release notes: free text.
pub const NOTES_CHARS_MAX: usize = validate::TEXT_CHARS_MAX;
/// Longest version string: room for a long pre-release and build metadata.
pub const VERSION_CHARS_MAX: usize = 100;

#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// `developer:manage`, by a signed-in user. `developer_certified`: whether the acting
    /// user is a certified developer of the organization (from its state).
    Create {
        app_id: Uuid,
        name: String,
        kind: AppKind,
        developer_certified: bool,
    },
    /// The app's developer or a user holding `developer:manage`.
    PublishVersion {
        version: String,
        notes: Option<String>,
        visibility: Visibility,
    },
    /// The app's developer or a user holding `developer:manage`; only while published.
    Unpublish,
}

/// The state of one app. Fields are public (and serializable) because the read models
/// store the state as the domain folds it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// `None` until `app.created`.
    pub id: Option<Uuid>,
    pub name: String,
    pub kind: Option<AppKind>,
    /// The user who created it.
    pub developer_id: Option<Uuid>,
    /// Every version published, in order (so ascending).
    pub versions: Vec<semver::Version>,
    /// Whether a version was published since the last unpublish.
    pub published: bool,
}

/// A semantic version of at most [`VERSION_CHARS_MAX`] characters, trimmed.
fn parse_version(version: &str) -> Result<semver::Version, DomainError> {
    let v = version.trim();
    if v.chars().count() > VERSION_CHARS_MAX {
        return Err(DomainError::invalid(
            "version",
            format!("longer than {VERSION_CHARS_MAX} characters"),
        ));
    }
    semver::Version::parse(v).map_err(|e| {
        DomainError::invalid(
            "version",
            format!("{version:?} is not a semantic version: {e}"),
        )
    })
}

impl App {
    /// The app's id, `None` before creation.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Option<AppKind> {
        self.kind
    }

    pub fn developer_id(&self) -> Option<Uuid> {
        self.developer_id
    }

    /// Every version published, ascending.
    pub fn versions(&self) -> &[semver::Version] {
        &self.versions
    }

    /// The highest version published.
    pub fn latest_version(&self) -> Option<&semver::Version> {
        self.versions.last()
    }

    pub fn published(&self) -> bool {
        self.published
    }

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

    /// Refuses a version that is not strictly above every published one: the same
    /// version again exists, a lower one is invalid.
    fn check_version_grows(&self, v: &semver::Version) -> Result<(), DomainError> {
        if self
            .versions
            .iter()
            .any(|old| old.cmp_precedence(v) == Ordering::Equal)
        {
            return Err(DomainError::exists("app version", v));
        }
        match self.latest_version() {
            Some(latest) if latest.cmp_precedence(v) == Ordering::Greater => {
                Err(DomainError::invalid(
                    "version",
                    format!("{v} is not above the latest version {latest}"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn create(
        &self,
        app_id: Uuid,
        name: &str,
        kind: AppKind,
        developer_certified: bool,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
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
        let e = AppCreated {
            app_id,
            name: validate::name("name", name)?,
            kind,
            developer_id,
        };
        Ok(vec![e.into()])
    }

    fn publish(
        &self,
        version: &str,
        notes: Option<&str>,
        visibility: Visibility,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        self.check_developer(ctx)?;
        let v = parse_version(version)?;
        self.check_version_grows(&v)?;
        let notes = notes
            .map(|n| validate::text("notes", n, NOTES_CHARS_MAX))
            .transpose()?;
        let e = AppVersionPublished {
            version: v.to_string(),
            notes,
            visibility,
        };
        Ok(vec![e.into()])
    }

    fn unpublish(&self, ctx: &Context) -> Result<Vec<Event>, DomainError> {
        self.check_developer(ctx)?;
        if !self.published {
            return Err(DomainError::wrong_state("app", "unpublished", "unpublish"));
        }
        Ok(vec![AppUnpublished {}.into()])
    }
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
                // Decided versions always parse; a stored one that does not is skipped
                // rather than breaking the fold.
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
            } => self.create(*app_id, name, *kind, *developer_certified, ctx),
            AppCommand::PublishVersion {
                version,
                notes,
                visibility,
            } => self.publish(version, notes.as_deref(), *visibility, ctx),
            AppCommand::Unpublish => self.unpublish(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{ctx, given};
    use crate::events::{BotDeleted, DeveloperCertified};

    const APP: Uuid = Uuid::from_u128(70);
    const DEV: Uuid = Uuid::from_u128(3);
    const ADMIN: Uuid = Uuid::from_u128(4);
    const STRANGER: Uuid = Uuid::from_u128(9);

    fn create(certified: bool) -> AppCommand {
        create_named("PDF Extractor", certified)
    }
    fn create_named(name: &str, certified: bool) -> AppCommand {
        AppCommand::Create {
            app_id: APP,
            name: name.into(),
            kind: AppKind::Command,
            developer_certified: certified,
        }
    }
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
    fn unpublished() -> Event {
        AppUnpublished {}.into()
    }
    /// The developer, without `developer:manage` (which they needed only to create).
    fn dev() -> Context {
        ctx(Actor::User(DEV), &[])
    }
    fn certified_dev() -> Context {
        ctx(Actor::User(DEV), &[Permission::DeveloperManage])
    }
    fn admin() -> Context {
        ctx(Actor::User(ADMIN), &[Permission::DeveloperManage])
    }
    fn stranger() -> Context {
        ctx(Actor::User(STRANGER), &[Permission::ConsoleAccess])
    }
    fn version(v: &str) -> semver::Version {
        semver::Version::parse(v).unwrap()
    }

    // ------------------------------------------------------------ create

    #[test]
    fn a_certified_developer_creates_an_app_and_becomes_its_developer() {
        given::<App>([])
            .with(certified_dev())
            .when(create_named(" PDF Extractor ", true))
            .then([created()]);
        let a = App::replay(&[created()]);
        assert_eq!(a.id(), Some(APP));
        assert_eq!(a.name(), "PDF Extractor");
        assert_eq!(a.kind(), Some(AppKind::Command));
        assert_eq!(a.developer_id(), Some(DEV));
        assert!(!a.published());
        assert_eq!((a.versions(), a.latest_version()), (&[][..], None));
    }

    #[test]
    fn an_uncertified_user_cannot_create_an_app() {
        given::<App>([])
            .with(certified_dev())
            .when(create(false))
            .then_err(DomainError::NotPermitted(
                "only a certified developer creates apps",
            ));
    }

    #[test]
    fn creating_an_app_needs_developer_manage() {
        given::<App>([])
            .with(dev())
            .when(create(true))
            .then_err(DomainError::Forbidden(Permission::DeveloperManage));
    }

    #[test]
    fn only_a_signed_in_user_creates_an_app() {
        given::<App>([])
            .when(create(true))
            .then_err(DomainError::NotPermitted(
                "only a signed-in user can do this",
            ));
    }

    #[test]
    fn creating_an_app_twice_is_refused() {
        given::<App>([created()])
            .with(certified_dev())
            .when(create(true))
            .then_err(DomainError::exists("app", APP));
    }

    #[test]
    fn an_app_needs_a_name() {
        given::<App>([])
            .with(certified_dev())
            .when(create_named("  ", true))
            .then_err(DomainError::invalid("name", "must not be empty"));
    }

    // ------------------------------------------------------------ publish

    #[test]
    fn the_developer_publishes_the_first_version() {
        given::<App>([created()])
            .with(dev())
            .when(AppCommand::PublishVersion {
                version: " 1.0.0 ".into(),
                notes: Some("First release".into()),
                visibility: Visibility::Marketplace,
            })
            .then([AppVersionPublished {
                version: "1.0.0".into(),
                notes: Some("First release".into()),
                visibility: Visibility::Marketplace,
            }
            .into()]);
        let a = App::replay(&[created(), published("1.0.0")]);
        assert!(a.published());
        assert_eq!(a.latest_version(), Some(&version("1.0.0")));
    }

    #[test]
    fn a_user_with_developer_manage_publishes_someone_elses_app() {
        given::<App>([created(), published("1.0.0")])
            .with(admin())
            .when(publish("1.1.0"))
            .then([published("1.1.0")]);
    }

    #[test]
    fn another_user_cannot_publish() {
        given::<App>([created()])
            .with(stranger())
            .when(publish("1.0.0"))
            .then_err(DomainError::Forbidden(Permission::DeveloperManage));
    }

    #[test]
    fn a_version_below_the_latest_is_refused() {
        given::<App>([created(), published("1.0.0"), published("1.2.0")])
            .with(dev())
            .when(publish("1.1.9"))
            .then_err(DomainError::invalid(
                "version",
                "1.1.9 is not above the latest version 1.2.0",
            ));
    }

    #[test]
    fn a_version_published_before_is_refused_as_existing() {
        given::<App>([created(), published("1.0.0"), published("1.2.0")])
            .with(dev())
            .when(publish("1.0.0"))
            .then_err(DomainError::exists("app version", "1.0.0"));
        given::<App>([created(), published("1.2.0")])
            .with(dev())
            .when(publish("1.2.0+build.7"))
            .then_err(DomainError::exists("app version", "1.2.0+build.7"));
    }

    #[test]
    fn pre_releases_order_by_semver_precedence() {
        given::<App>([created(), published("1.0.0")])
            .with(dev())
            .when(publish("2.0.0-beta.1"))
            .then([published("2.0.0-beta.1")]);
        given::<App>([created(), published("2.0.0-beta.1")])
            .with(dev())
            .when(publish("2.0.0"))
            .then([published("2.0.0")]);
        given::<App>([created(), published("2.0.0")])
            .with(dev())
            .when(publish("2.0.0-rc.1"))
            .then_err(DomainError::invalid(
                "version",
                "2.0.0-rc.1 is not above the latest version 2.0.0",
            ));
    }

    #[test]
    fn a_version_that_is_not_semver_is_refused() {
        for bad in ["v1", "1.0", "", "1.0.0.0", "01.0.0"] {
            let r = given::<App>([created()])
                .with(dev())
                .when(publish(bad))
                .result();
            assert!(
                matches!(
                    r,
                    Err(DomainError::Invalid {
                        field: "version",
                        ..
                    })
                ),
                "{bad:?}: {r:?}"
            );
        }
    }

    #[test]
    fn an_overlong_version_or_notes_is_refused() {
        let long = format!("1.0.0-{}", "a".repeat(VERSION_CHARS_MAX));
        given::<App>([created()])
            .with(dev())
            .when(publish(&long))
            .then_err(DomainError::invalid(
                "version",
                format!("longer than {VERSION_CHARS_MAX} characters"),
            ));
        given::<App>([created()])
            .with(dev())
            .when(AppCommand::PublishVersion {
                version: "1.0.0".into(),
                notes: Some("n".repeat(NOTES_CHARS_MAX + 1)),
                visibility: Visibility::Private,
            })
            .then_err(DomainError::invalid(
                "notes",
                format!("longer than {NOTES_CHARS_MAX} characters"),
            ));
    }

    #[test]
    fn publishing_an_uncreated_app_is_not_found() {
        given::<App>([])
            .with(admin())
            .when(publish("1.0.0"))
            .then_err(DomainError::not_found("app", "(uncreated)"));
    }

    // ------------------------------------------------------------ unpublish

    #[test]
    fn the_developer_unpublishes_a_published_app() {
        given::<App>([created(), published("1.0.0")])
            .with(dev())
            .when(AppCommand::Unpublish)
            .then([unpublished()]);
        let a = App::replay(&[created(), published("1.0.0"), unpublished()]);
        assert!(!a.published());
        assert_eq!(a.versions(), &[version("1.0.0")][..]);
    }

    #[test]
    fn a_user_with_developer_manage_unpublishes_an_app() {
        given::<App>([created(), published("1.0.0")])
            .with(admin())
            .when(AppCommand::Unpublish)
            .then([unpublished()]);
    }

    #[test]
    fn another_user_cannot_unpublish() {
        given::<App>([created(), published("1.0.0")])
            .with(stranger())
            .when(AppCommand::Unpublish)
            .then_err(DomainError::Forbidden(Permission::DeveloperManage));
    }

    #[test]
    fn unpublishing_an_app_that_is_not_published_is_refused() {
        let refused = DomainError::wrong_state("app", "unpublished", "unpublish");
        given::<App>([created()])
            .with(dev())
            .when(AppCommand::Unpublish)
            .then_err(refused.clone());
        given::<App>([created(), published("1.0.0"), unpublished()])
            .with(dev())
            .when(AppCommand::Unpublish)
            .then_err(refused);
    }

    #[test]
    fn unpublishing_an_uncreated_app_is_not_found() {
        given::<App>([])
            .with(admin())
            .when(AppCommand::Unpublish)
            .then_err(DomainError::not_found("app", "(uncreated)"));
    }

    #[test]
    fn a_new_version_publishes_an_unpublished_app_again() {
        given::<App>([created(), published("1.0.0"), unpublished()])
            .with(dev())
            .when(publish("1.0.0"))
            .then_err(DomainError::exists("app version", "1.0.0"));
        let a = App::replay(&[
            created(),
            published("1.0.0"),
            unpublished(),
            published("1.1.0"),
        ]);
        assert!(a.published());
        assert_eq!(a.latest_version(), Some(&version("1.1.0")));
        assert_eq!(a.versions().len(), 2);
    }

    #[test]
    fn events_of_other_aggregates_change_nothing() {
        let before = App::replay(&[created(), published("1.0.0")]);
        let mut after = before.clone();
        after.apply(&BotDeleted {}.into());
        after.apply(&DeveloperCertified { user_id: DEV }.into());
        assert_eq!(after, before);
    }
}
