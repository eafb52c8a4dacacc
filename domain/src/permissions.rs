//! Permissions and the built-in roles.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

macro_rules! permissions {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// One permission of the catalog (EVENTS.md). Serialized as its name, e.g.
        /// `"console:access"`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Permission {
            $( #[serde(rename = $name)] $variant, )*
        }

        impl Permission {
            /// Every permission, in catalog order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }
        }

        impl FromStr for Permission {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Permission, DomainError> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    other => Err(DomainError::UnknownPermission(other.to_owned())),
                }
            }
        }
    };
}

permissions! {
    ConsoleAccess = "console:access",
    MembersRead = "members:read",
    MembersManage = "members:manage",
    RolesManage = "roles:manage",
    BotsRead = "bots:read",
    BotsManage = "bots:manage",
    RunsRead = "runs:read",
    TriggersRead = "triggers:read",
    TriggersManage = "triggers:manage",
    ProfileManage = "profile:manage",
    DeveloperManage = "developer:manage",
    BillingRead = "billing:read",
    BillingManage = "billing:manage",
    CreditsRead = "credits:read",
    CreditsManage = "credits:manage",
    AuditRead = "audit:read",
    SecurityManage = "security:manage",
    OrganizationOwn = "organization:own",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of permissions (what a user holds in one organization).
pub type PermissionSet = BTreeSet<Permission>;

/// Parses permission names strictly: an unknown name is an error, duplicates collapse.
pub fn parse_permissions<S: AsRef<str>>(names: &[S]) -> Result<PermissionSet, DomainError> {
    names.iter().map(|n| n.as_ref().parse()).collect()
}

/// Ids of the built-in roles; custom roles have UUID ids.
pub const OWNER_ROLE: &str = "owner";
pub const ADMIN_ROLE: &str = "admin";
pub const MEMBER_ROLE: &str = "member";

pub fn is_built_in(role_id: &str) -> bool {
    matches!(role_id, OWNER_ROLE | ADMIN_ROLE | MEMBER_ROLE)
}

/// The permissions of a built-in role: `owner` holds every permission, `admin` every
/// one but `organization:own`, `member` none of the console.
pub fn built_in_permissions(role_id: &str) -> Option<PermissionSet> {
    match role_id {
        OWNER_ROLE => Some(Permission::ALL.iter().copied().collect()),
        ADMIN_ROLE => Some(
            Permission::ALL
                .iter()
                .copied()
                .filter(|p| *p != Permission::OrganizationOwn)
                .collect(),
        ),
        MEMBER_ROLE => Some(PermissionSet::new()),
        _ => None,
    }
}

pub fn built_in_name(role_id: &str) -> Option<&'static str> {
    match role_id {
        OWNER_ROLE => Some("Owner"),
        ADMIN_ROLE => Some("Admin"),
        MEMBER_ROLE => Some("Member"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>(), Ok(*p));
            assert_eq!(
                serde_json::to_string(p).ok(),
                Some(format!("\"{}\"", p.name()))
            );
        }
        assert_eq!(Permission::ALL.len(), 18);
        assert_eq!(
            parse_permissions(&["bots:read", "bots:fly"]),
            Err(DomainError::UnknownPermission("bots:fly".into()))
        );
    }

    #[test]
    fn owner_holds_everything_admin_all_but_ownership_member_nothing() {
        let owner = built_in_permissions(OWNER_ROLE).unwrap_or_default();
        let admin = built_in_permissions(ADMIN_ROLE).unwrap_or_default();
        assert_eq!(owner.len(), 18);
        assert_eq!(admin.len(), 17);
        assert!(!admin.contains(&Permission::OrganizationOwn));
        assert_eq!(
            built_in_permissions(MEMBER_ROLE),
            Some(PermissionSet::new())
        );
    }
}
