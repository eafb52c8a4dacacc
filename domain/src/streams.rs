//! Stream names: `<category>-<id>` (DESIGN.md §2.3).

use uuid::Uuid;

pub fn user(id: Uuid) -> String {
    format!("user-{id}")
}
pub fn organization(id: Uuid) -> String {
    format!("organization-{id}")
}
pub fn bot(id: Uuid) -> String {
    format!("bot-{id}")
}
pub fn run(id: Uuid) -> String {
    format!("run-{id}")
}
pub fn trigger(id: Uuid) -> String {
    format!("trigger-{id}")
}
pub fn app(id: Uuid) -> String {
    format!("app-{id}")
}
pub fn billing(org: Uuid) -> String {
    format!("billing-{org}")
}
pub fn credits(org: Uuid) -> String {
    format!("credits-{org}")
}
pub fn audit(org: Uuid) -> String {
    format!("audit-{org}")
}
