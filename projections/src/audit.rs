//! The audit log: every event of an organization, newest first, filtered by action,
//! actor, target and time — and the GitHub-style query strings auditors type.
//!
//! The projection keeps posting lists (see [`crate::postings`]) per organization and per
//! (organization, action), (organization, actor), (organization, target); a page walks
//! the most selective list newest first and intersects, so it costs O(page) reads for
//! a single filter, never a scan of the log. Entries are read from the log itself, so
//! the hash an auditor sees is the one the log stores.

use crate::postings::{self, Descending, Postings};
use crate::{Projection, ProjectionError, Tx};
use store::{EventStore, RecordedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest page (`first`).
pub const PAGE_MAX: usize = 100;
/// Most candidate positions a page examines for filters the lists cannot answer
/// (negations, time, several lists): bounds the cost of a page with a rare match.
pub const SCAN_MAX: usize = 20_000;

/// How far apart the clocks of concurrent writers may stamp neighbouring positions.
pub const CLOCK_SKEW_MAX: time::Duration = time::Duration::minutes(5);

/// The audit projection.
#[derive(Default)]
pub struct Audit {
    postings: Postings,
}

// List names: `o/{org}`, `a/{org}/{action}`, `u/{org}/{actor}`, `t/{org}/{target}`.
fn org_list(org: &Uuid) -> Vec<u8> {
    postings::name(b'o', org, None)
}
fn action_list(org: &Uuid, action: &str) -> Vec<u8> {
    postings::name(b'a', org, Some(action.as_bytes()))
}
fn actor_list(org: &Uuid, actor: &str) -> Vec<u8> {
    postings::name(b'u', org, Some(actor.as_bytes()))
}
fn target_list(org: &Uuid, target: &str) -> Vec<u8> {
    postings::name(b't', org, Some(target.as_bytes()))
}

/// The id fields an event of an organization, billing or credits stream may name, in
/// the order they decide its target. Read without building the whole payload.
#[derive(serde::Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    invitation_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    role_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    payment_method_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    invoice_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    alert_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    run_id: Option<std::borrow::Cow<'a, str>>,
}

/// What an event acts on, and whether that is a run (named by a credits event).
fn target_and_run(e: &RecordedEvent) -> (String, bool) {
    let names_its_target = ["organization-", "billing-", "credits-"]
        .iter()
        .any(|c| e.stream.starts_with(c));
    if names_its_target && let Ok(n) = serde_json::from_str::<Named<'_>>(e.data.get()) {
        let named = [
            n.user_id,
            n.invitation_id,
            n.role_id,
            n.payment_method_id,
            n.invoice_id,
            n.alert_id,
        ]
        .into_iter()
        .flatten()
        .next();
        if let Some(id) = named {
            return (id.into_owned(), false);
        }
        if let Some(run) = n.run_id {
            return (run.into_owned(), e.stream.starts_with("credits-"));
        }
    }
    let own = e
        .stream
        .split_once('-')
        .map_or(e.stream.clone(), |(_, id)| id.to_owned());
    (own, e.stream.starts_with("run-"))
}

/// What an event acts on: the member, invitation or role it names, else its stream's id.
pub fn target_of(e: &RecordedEvent) -> String {
    target_and_run(e).0
}

impl Projection for Audit {
    const NAME: &'static str = "audit";
    const VERSION: u32 = 4;

    fn apply(&mut self, e: &RecordedEvent, _tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let Some(org) = e.org() else { return Ok(()) };
        let p = &mut self.postings;
        p.push_named(b'o', &org, None, e.position);
        p.push_named(b'a', &org, Some(e.event_type.as_bytes()), e.position);
        p.push_named(b'u', &org, Some(e.meta.actor.id.as_bytes()), e.position);
        // Runs are high volume and each is its own target: a list per run would cost
        // two new sled keys per run. So a run has no target list — neither its own
        // events nor the credits events naming it (`run_id`) — and a run-target filter
        // walks a wider list, where every event of the run is found (a list holding only
        // some of them would hide the rest).
        let (target, names_a_run) = target_and_run(e);
        if !names_a_run {
            p.push_named(b't', &org, Some(target.as_bytes()), e.position);
        }
        Ok(())
    }

    fn before_commit(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        self.postings.write(tx)
    }
}

/// A filter: from the `AuditFilter` input, a query string, or both merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// A query string that cannot be read; names the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad audit query token {token:?}: {reason}")]
pub struct QueryError {
    pub token: String,
    pub reason: String,
}

fn parse_day(token: &str, s: &str) -> Result<OffsetDateTime, QueryError> {
    let bad = |reason: &str| QueryError {
        token: token.to_owned(),
        reason: reason.to_owned(),
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| bad("dates are YYYY-MM-DD or RFC 3339"))
}

impl AuditQuery {
    /// Parses `action:member.invited actor:<id> target:<id> created:>=2026-01-01
    /// -action:run.started`. Qualifiers: `action`, `-action`, `actor`, `target`,
    /// `created` with `>=`, `>`, `<=`, `<`, a day, or `A..B`.
    pub fn parse(query: &str) -> Result<AuditQuery, QueryError> {
        let mut q = AuditQuery::default();
        for token in query.split_whitespace() {
            let bad = |reason: &str| QueryError {
                token: token.to_owned(),
                reason: reason.to_owned(),
            };
            let (key, value) = token
                .split_once(':')
                .ok_or_else(|| bad("expected qualifier:value"))?;
            if value.is_empty() {
                return Err(bad("empty value"));
            }
            match key {
                "action" => q.actions.push(value.to_owned()),
                "-action" => q.not_actions.push(value.to_owned()),
                "actor" if q.actor.is_none() => q.actor = Some(value.to_owned()),
                "target" if q.target.is_none() => q.target = Some(value.to_owned()),
                "actor" | "target" => return Err(bad("given twice")),
                "created" => q.parse_created(token, value)?,
                _ => {
                    return Err(bad(
                        "unknown qualifier (action, -action, actor, target, created)",
                    ));
                }
            }
        }
        Ok(q)
    }

    fn parse_created(&mut self, token: &str, v: &str) -> Result<(), QueryError> {
        let day = time::Duration::days(1);
        let ns = time::Duration::nanoseconds(1);
        if let Some(d) = v.strip_prefix(">=") {
            self.from = Some(parse_day(token, d)?);
        } else if let Some(d) = v.strip_prefix("<=") {
            let t = parse_day(token, d)?;
            self.to = Some(if d.len() == 10 { t + day - ns } else { t });
        } else if let Some(d) = v.strip_prefix('>') {
            let t = parse_day(token, d)?;
            self.from = Some(if d.len() == 10 { t + day } else { t + ns });
        } else if let Some(d) = v.strip_prefix('<') {
            self.to = Some(parse_day(token, d)? - ns);
        } else if let Some((a, b)) = v.split_once("..") {
            self.from = Some(parse_day(token, a)?);
            let t = parse_day(token, b)?;
            self.to = Some(if b.len() == 10 { t + day - ns } else { t });
        } else {
            let t = parse_day(token, v)?;
            self.from = Some(t);
            self.to = Some(t + day - ns);
        }
        Ok(())
    }

    /// Both filters at once (the `filter` input and the `query` string).
    pub fn merge(mut self, other: AuditQuery) -> AuditQuery {
        self.actions.extend(other.actions);
        self.not_actions.extend(other.not_actions);
        self.actor = self.actor.or(other.actor);
        self.target = self.target.or(other.target);
        self.from = match (self.from, other.from) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.to = match (self.to, other.to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }

    fn admits(&self, e: &RecordedEvent) -> bool {
        (self.actions.is_empty() || self.actions.contains(&e.event_type))
            && !self.not_actions.contains(&e.event_type)
            && self.actor.as_ref().is_none_or(|a| *a == e.meta.actor.id)
            && self.target.as_ref().is_none_or(|t| *t == target_of(e))
            && self.from.is_none_or(|f| e.meta.occurred_at >= f)
            && self.to.is_none_or(|t| e.meta.occurred_at <= t)
    }
}

/// One page of the audit log, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub entries: Vec<RecordedEvent>,
    pub has_next: bool,
    /// Every entry of the connection (whatever the cursor) the filter admits; when no
    /// one list answers the filter, among the newest [`SCAN_MAX`] entries walked.
    pub total_count: u64,
}

/// A page of `org`'s audit log matching `q`: entries older than `before` (the cursor,
/// a position; `None` for the newest), at most `first` ([`PAGE_MAX`]). `count_below`:
/// count the connection's entries below it (`u64::MAX`: all; a time-travel bound
/// otherwise); `None` leaves `total_count` 0 (exports need no count).
pub async fn page(
    tree: &sled::Tree,
    store: &dyn EventStore,
    org: Uuid,
    q: &AuditQuery,
    first: usize,
    before: Option<u64>,
    count_below: Option<u64>,
) -> Result<AuditPage, ProjectionError> {
    let first = first.min(PAGE_MAX);
    // The most selective list the filter names drives the walk.
    let list = match (&q.actor, &q.target, q.actions.as_slice()) {
        (Some(a), _, _) => actor_list(&org, a),
        (None, Some(t), _) if postings::count(tree, &target_list(&org, t))? > 0 => {
            target_list(&org, t)
        }
        (None, Some(_), [one]) => action_list(&org, one),
        (None, Some(_), _) => org_list(&org),
        (None, None, [one]) => action_list(&org, one),
        _ => org_list(&org),
    };
    let exact = {
        let single = [q.actor.is_some(), q.target.is_some(), !q.actions.is_empty()]
            .iter()
            .filter(|b| **b)
            .count()
            <= 1;
        single
            && q.actions.len() <= 1
            && q.not_actions.is_empty()
            && q.from.is_none()
            && q.to.is_none()
            && q.target
                .as_ref()
                .is_none_or(|t| list == target_list(&org, t))
    };
    let mut entries = Vec::with_capacity(first);
    let mut has_next = false;
    let mut examined = 0;
    for position in Descending::new(tree, &list, before.unwrap_or(u64::MAX)) {
        let position = position?;
        examined += 1;
        if examined > SCAN_MAX {
            break;
        }
        let Some(e) = store.read_all(position, 1).await?.pop() else {
            continue;
        };
        if q.to.is_some_and(|t| e.meta.occurred_at > t) || !q.admits(&e) {
            // Times follow positions up to writers' clock skew: stop once well past `from`.
            if q.from
                .is_some_and(|f| e.meta.occurred_at < f - CLOCK_SKEW_MAX)
            {
                break;
            }
            continue;
        }
        if entries.len() == first {
            has_next = true;
            break;
        }
        entries.push(e);
    }
    let total_count = if let Some(limit) = count_below {
        if exact {
            postings::count_below(tree, &list, limit)?
        } else {
            // Every match of the connection, whatever the cursor: a second walk from the
            // newest, over at most SCAN_MAX entries.
            let mut n = 0;
            for position in Descending::new(tree, &list, limit).take(SCAN_MAX) {
                let Some(e) = store.read_all(position?, 1).await?.pop() else {
                    continue;
                };
                if q.from
                    .is_some_and(|f| e.meta.occurred_at < f - CLOCK_SKEW_MAX)
                {
                    break;
                }
                n += u64::from(q.admits(&e));
            }
            n
        }
    } else {
        0
    };
    Ok(AuditPage {
        entries,
        has_next,
        total_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_parse_into_filters() {
        let q = AuditQuery::parse(
            "action:member.invited actor:u1 created:>=2026-01-01 -action:run.started",
        )
        .expect("parses");
        assert_eq!(q.actions, vec!["member.invited"]);
        assert_eq!(q.not_actions, vec!["run.started"]);
        assert_eq!(q.actor.as_deref(), Some("u1"));
        assert_eq!(q.from, Some(time::macros::datetime!(2026-01-01 0:00 UTC)));
        let day = AuditQuery::parse("created:2026-03-04").expect("day");
        assert_eq!(day.from, Some(time::macros::datetime!(2026-03-04 0:00 UTC)));
        assert_eq!(
            day.to,
            Some(time::macros::datetime!(2026-03-04 23:59:59.999999999 UTC))
        );
        let range = AuditQuery::parse("created:2026-03-01..2026-03-31").expect("range");
        assert_eq!(
            range.to,
            Some(time::macros::datetime!(2026-03-31 23:59:59.999999999 UTC))
        );
    }

    #[test]
    fn errors_name_the_bad_token() {
        for (q, token) in [
            ("action:x colour:red", "colour:red"),
            ("created:>=yesterday", "created:>=yesterday"),
            ("loose", "loose"),
            ("actor:a actor:b", "actor:b"),
            ("action:", "action:"),
        ] {
            assert_eq!(
                AuditQuery::parse(q).map_err(|e| e.token),
                Err(token.to_owned()),
                "{q}"
            );
        }
    }
}
