//! Limits on a GraphQL document, checked before any work that grows with it.
//!
//! async-graphql's parser recurses once per nesting level of a value (a list in a list
//! in a list …) and its validation expands every fragment spread where it stands, so a
//! 4 KB document can overflow a worker's stack and a 1 KB one can take a minute. Every
//! document, over every transport (POST, GET, WebSocket), goes through [`DocumentLimits`]
//! first:
//!
//! 1. **Text** ([`check_text`]), before parsing: its size, and how deep brackets nest
//!    (`{`, `[`, `(` outside strings and comments) — which bounds the parser's
//!    recursion. Variables are checked for nesting too ([`check_variables`]).
//! 2. **Parse**, on a blocking thread with a time budget, so a document never holds up
//!    an async worker.
//! 3. **Shape** ([`check_document`]), over the parsed document with each fragment's
//!    expanded cost computed once (memoised): selections, depth, aliases and directives
//!    *as if every spread were expanded*, and how deep spreads and selections nest.
//!    A fragment spread twice per level for 30 levels costs 2^30 selections here in a
//!    few microseconds, and is refused.
//!
//! Validation (which expands spreads) then runs only on a document known to be small
//! once expanded. A refusal is `LIMIT_EXCEEDED` with `extensions.limit` naming the
//! limit and `extensions.max` its value.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Value, Variables};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest query text accepted, in bytes.
pub const QUERY_BYTES_MAX: usize = 64 * 1024;
/// Deepest nesting of brackets in the text, of selections and spreads in the
/// document, and of values in the variables.
pub const NESTING_MAX: usize = 64;
/// Most selections (fields, spreads, inline fragments) once every fragment is expanded.
pub const SELECTIONS_MAX: u64 = 2_000;
/// Deepest field nesting once fragments are expanded.
pub const DEPTH_MAX: u64 = crate::schema::DEPTH_MAX as u64;
/// Most aliased fields once fragments are expanded.
pub const ALIASES_MAX: u64 = 100;
/// Most directives once fragments are expanded.
pub const DIRECTIVES_MAX: u64 = 50;
/// Longest that parsing and checking one document may take.
pub const PARSE_TIME_MAX: Duration = Duration::from_secs(2);

/// Why a document was refused: the limit it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit's name: `queryBytes`, `nesting`, `selections`, `depth`, `aliases`,
    /// `directives`, `parseTime`.
    pub limit: &'static str,
    pub max: u64,
    pub message: String,
}

impl Refusal {
    fn new(limit: &'static str, max: u64, message: String) -> Refusal {
        Refusal {
            limit,
            max,
            message,
        }
    }

    pub fn into_server_error(self) -> ServerError {
        let mut e = ServerError::new(self.message, None);
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", crate::error::ErrorCode::LimitExceeded.as_str());
        ext.set("limit", self.limit);
        ext.set("max", self.max);
        e.extensions = Some(ext);
        e
    }
}

/// Checks the text of a document before it is parsed: its size and how deep its
/// brackets nest (strings, block strings and comments skipped). Linear, no allocation.
pub fn check_text(text: &str) -> Result<(), Refusal> {
    if text.len() > QUERY_BYTES_MAX {
        return Err(Refusal::new(
            "queryBytes",
            QUERY_BYTES_MAX as u64,
            format!(
                "the query is {} bytes; the limit is {QUERY_BYTES_MAX} bytes",
                text.len()
            ),
        ));
    }
    let b = text.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if b[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > NESTING_MAX {
                    return Err(nesting_refusal("brackets in the query"));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn nesting_refusal(what: &str) -> Refusal {
    Refusal::new(
        "nesting",
        NESTING_MAX as u64,
        format!("{what} nest deeper than {NESTING_MAX} levels"),
    )
}

/// Checks how deep the variables' values nest (lists and objects), without recursion.
pub fn check_variables(variables: &Variables) -> Result<(), Refusal> {
    let mut stack: Vec<(&Value, usize)> = variables.values().map(|v| (v, 1)).collect();
    while let Some((v, depth)) = stack.pop() {
        if depth > NESTING_MAX {
            return Err(nesting_refusal("values in the variables"));
        }
        match v {
            Value::List(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// What a selection set costs once every fragment in it is expanded.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Cost {
    pub selections: u64,
    /// Field depth (a field with a selection set adds one level).
    pub depth: u64,
    /// Structural nesting: fields with selections, inline fragments and spreads.
    pub nest: u64,
    pub aliases: u64,
    pub directives: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.selections = self.selections.saturating_add(other.selections);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
    }
}

struct Walk<'d> {
    doc: &'d ExecutableDocument,
    /// Each fragment's cost, computed once; `None` while it is being computed (a
    /// spread that meets it again is a cycle).
    memo: HashMap<&'d str, Option<Cost>>,
}

impl<'d> Walk<'d> {
    /// The cost of `set`, reached `nest` levels down. Recursion is bounded by
    /// [`NESTING_MAX`]: a deeper path is refused before it is walked.
    fn set(&mut self, set: &'d SelectionSet, nest: u64) -> Result<Cost, Refusal> {
        if nest > NESTING_MAX as u64 {
            return Err(nesting_refusal("selections and fragment spreads"));
        }
        let mut cost = Cost::default();
        for item in &set.items {
            cost.selections = cost.selections.saturating_add(1);
            let (child, field_level) = match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    cost.aliases +=
                        u64::from(f.alias.as_ref().is_some_and(|a| a.node != f.name.node));
                    cost.directives += f.directives.len() as u64;
                    if f.selection_set.node.items.is_empty() {
                        (Cost::default(), false)
                    } else {
                        (self.set(&f.selection_set.node, nest + 1)?, true)
                    }
                }
                Selection::InlineFragment(i) => {
                    cost.directives += i.node.directives.len() as u64;
                    (self.set(&i.node.selection_set.node, nest + 1)?, false)
                }
                Selection::FragmentSpread(s) => {
                    cost.directives += s.node.directives.len() as u64;
                    (
                        self.fragment(s.node.fragment_name.node.as_str(), nest + 1)?,
                        false,
                    )
                }
            };
            cost.add(child);
            cost.depth = cost.depth.max(child.depth + u64::from(field_level));
            cost.nest = cost.nest.max(child.nest + 1);
            if nest + cost.nest > NESTING_MAX as u64 {
                return Err(nesting_refusal("selections and fragment spreads"));
            }
            check_cost(&cost)?;
        }
        Ok(cost)
    }

    fn fragment(&mut self, name: &'d str, nest: u64) -> Result<Cost, Refusal> {
        match self.memo.get(name) {
            Some(Some(cost)) => return Ok(*cost),
            Some(None) => {
                return Err(Refusal::new(
                    "nesting",
                    NESTING_MAX as u64,
                    format!("fragment {name} spreads itself"),
                ));
            }
            None => {}
        }
        // An unknown fragment is validation's to report; it costs nothing here.
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.memo.insert(name, None);
        let mut cost = self.set(&def.node.selection_set.node, nest)?;
        cost.directives += def.node.directives.len() as u64;
        self.memo.insert(name, Some(cost));
        Ok(cost)
    }
}

fn check_cost(cost: &Cost) -> Result<(), Refusal> {
    let over = |limit: &'static str, what: &str, n: u64, max: u64| {
        Err(Refusal::new(
            limit,
            max,
            format!(
                "the document has {n} {what} once its fragments are expanded; the limit is {max}"
            ),
        ))
    };
    if cost.selections > SELECTIONS_MAX {
        return over("selections", "selections", cost.selections, SELECTIONS_MAX);
    }
    if cost.depth > DEPTH_MAX {
        return over("depth", "levels of fields", cost.depth, DEPTH_MAX);
    }
    if cost.aliases > ALIASES_MAX {
        return over("aliases", "aliased fields", cost.aliases, ALIASES_MAX);
    }
    if cost.directives > DIRECTIVES_MAX {
        return over("directives", "directives", cost.directives, DIRECTIVES_MAX);
    }
    Ok(())
}

/// The expanded cost of every operation of `doc` together, refused past the limits.
pub fn check_document(doc: &ExecutableDocument) -> Result<Cost, Refusal> {
    let mut walk = Walk {
        doc,
        memo: HashMap::new(),
    };
    let mut total = Cost::default();
    for (_, op) in doc.operations.iter() {
        let mut cost = walk.set(&op.node.selection_set.node, 1)?;
        cost.directives += op.node.directives.len() as u64;
        total.add(cost);
        total.depth = total.depth.max(cost.depth);
        total.nest = total.nest.max(cost.nest);
        check_cost(&total)?;
    }
    // Fragments no operation uses are validation's to refuse, but they are walked all
    // the same so that none can be costly to validate.
    let names: Vec<&str> = doc.fragments.keys().map(|n| n.as_str()).collect();
    for name in names {
        walk.fragment(name, 1)?;
    }
    Ok(total)
}

/// A document that passed the limits, with its expanded cost.
#[derive(Clone)]
pub struct Checked {
    pub doc: Arc<ExecutableDocument>,
    pub cost: Cost,
}

/// Parses a text that passed [`check_text`] and checks the document: the rest of what
/// one query text costs before validation. Synchronous; run it on a blocking thread.
pub fn parse_checked(text: &str) -> Result<Checked, ServerError> {
    let doc = async_graphql::parser::parse_query(text).map_err(ServerError::from)?;
    let cost = check_document(&doc).map_err(Refusal::into_server_error)?;
    Ok(Checked {
        doc: Arc::new(doc),
        cost,
    })
}

/// Expanded selections past which validation runs where it may block a thread.
const VALIDATION_BLOCKING_SELECTIONS: u64 = 256;

/// Documents that passed [`parse_checked`], by the SHA-256 of their text, least
/// recently used evicted past a budget in bytes: clients send the same few queries
/// over and over, and parsing is a fifth of a small query's cost.
pub struct ParsedQueries {
    inner: Mutex<lru::LruCache<[u8; 32], (Checked, usize)>>,
    bytes: Mutex<usize>,
}

/// What the parsed documents may hold, counted as 16 bytes of tree per byte of text.
pub const PARSED_BYTES_MAX: usize = 8 << 20;
/// Longest query text kept parsed.
pub const PARSED_TEXT_BYTES_MAX: usize = 16 * 1024;
const TREE_BYTES_PER_TEXT_BYTE: usize = 16;

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries {
            inner: Mutex::new(lru::LruCache::unbounded()),
            bytes: Mutex::new(0),
        }
    }
}

impl ParsedQueries {
    fn get(&self, key: &[u8; 32]) -> Option<Checked> {
        self.inner.lock().ok()?.get(key).map(|(d, _)| d.clone())
    }

    fn put(&self, key: [u8; 32], doc: Checked, text_len: usize) {
        if text_len > PARSED_TEXT_BYTES_MAX {
            return;
        }
        let weight = text_len * TREE_BYTES_PER_TEXT_BYTE + 256;
        let (Ok(mut inner), Ok(mut bytes)) = (self.inner.lock(), self.bytes.lock()) else {
            return;
        };
        if let Some((_, old)) = inner.put(key, (doc, weight)) {
            *bytes -= old;
        }
        *bytes += weight;
        while *bytes > PARSED_BYTES_MAX {
            match inner.pop_lru() {
                Some((_, (_, w))) => *bytes -= w,
                None => break,
            }
        }
    }
}

/// The extension that applies this module to every request of the schema.
pub struct DocumentLimits {
    parsed: Arc<ParsedQueries>,
}

impl DocumentLimits {
    pub fn new(parsed: Arc<ParsedQueries>) -> DocumentLimits {
        DocumentLimits { parsed }
    }
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsRun {
            parsed: self.parsed.clone(),
            selections: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

struct DocumentLimitsRun {
    parsed: Arc<ParsedQueries>,
    /// The expanded selections of this request's document (0: not parsed here).
    selections: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl Extension for DocumentLimitsRun {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        check_variables(&request.variables).map_err(Refusal::into_server_error)?;
        // Nothing sets a parsed document before this extension: every text is checked.
        // The size is checked before the text is hashed or copied.
        check_text(&request.query).map_err(Refusal::into_server_error)?;
        let key: [u8; 32] = Sha256::digest(request.query.as_bytes()).into();
        let checked = match self.parsed.get(&key) {
            Some(checked) => checked,
            None => {
                let text = request.query.clone();
                let parse = tokio::task::spawn_blocking(move || parse_checked(&text));
                let doc = match tokio::time::timeout(PARSE_TIME_MAX, parse).await {
                    Ok(Ok(parsed)) => parsed?,
                    Ok(Err(e)) => return Err(ServerError::new(e.to_string(), None)),
                    Err(_) => {
                        return Err(Refusal::new(
                            "parseTime",
                            PARSE_TIME_MAX.as_millis() as u64,
                            format!(
                                "the document took longer than {} ms to parse",
                                PARSE_TIME_MAX.as_millis()
                            ),
                        )
                        .into_server_error());
                    }
                };
                self.parsed.put(key, doc.clone(), request.query.len());
                doc
            }
        };
        self.selections.store(
            checked.cost.selections,
            std::sync::atomic::Ordering::Relaxed,
        );
        request.set_parsed_query((*checked.doc).clone());
        next.run(ctx, request).await
    }

    /// The validation of a large document runs where it may block: on a multi-threaded
    /// runtime the worker's other tasks move to another worker meanwhile
    /// ([`tokio::task::block_in_place`]). Small ones (nearly all) validate in place.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let large = self.selections.load(std::sync::atomic::Ordering::Relaxed)
            > VALIDATION_BLOCKING_SELECTIONS;
        let multi = large
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| futures::executor::block_on(next.run(ctx)))
        } else {
            next.run(ctx).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout(levels: usize) -> String {
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..levels {
            q += &format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1);
        }
        q += &format!("fragment F{levels} on Query {{ __typename }}\n");
        q
    }

    #[test]
    fn nested_values_are_refused_before_parsing() {
        let deep = format!(
            "{{ organization(id: {}1{}) {{ id }} }}",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        assert_eq!(check_text(&deep).map_err(|r| r.limit), Err("nesting"));
        let obj = format!("{{ a(x: {}1{}) }}", "{a: ".repeat(3000), "}".repeat(3000));
        assert_eq!(check_text(&obj).map_err(|r| r.limit), Err("nesting"));
        // Brackets in strings, block strings and comments do not count.
        let quiet = format!(
            "# {}\n{{ a(x: \"{}\", y: \"\"\"{}\"\"\") }}",
            "[".repeat(500),
            "[".repeat(500),
            "{".repeat(500)
        );
        assert_eq!(check_text(&quiet), Ok(()));
    }

    #[test]
    fn the_text_has_a_size_limit() {
        let padded = format!("{{ __typename }} #{}", "x".repeat(QUERY_BYTES_MAX));
        assert_eq!(check_text(&padded).map_err(|r| r.limit), Err("queryBytes"));
    }

    #[test]
    fn fragment_fanout_is_counted_expanded_without_expanding_it() {
        let doc = async_graphql::parser::parse_query(fanout(8)).expect("parses");
        let cost = check_document(&doc).expect("256 leaves pass");
        assert_eq!(cost.depth, 0);
        let doc = async_graphql::parser::parse_query(fanout(60)).expect("parses");
        let started = std::time::Instant::now();
        let refused = check_document(&doc).expect_err("2^60 selections");
        assert_eq!(refused.limit, "selections");
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn cycles_depth_aliases_and_directives_are_refused() {
        let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        let doc = async_graphql::parser::parse_query(cycle).expect("parses");
        assert_eq!(check_document(&doc).map_err(|r| r.limit), Err("nesting"));
        let deep = format!("{{ {} x {} }}", "a {".repeat(16), "}".repeat(16));
        let doc = async_graphql::parser::parse_query(deep).expect("parses");
        assert_eq!(check_document(&doc).map_err(|r| r.limit), Err("depth"));
        let aliases: String = (0..101).map(|i| format!("a{i}: __typename ")).collect();
        let doc = async_graphql::parser::parse_query(format!("{{ {aliases} }}")).expect("parses");
        assert_eq!(check_document(&doc).map_err(|r| r.limit), Err("aliases"));
        let dirs = "__typename @include(if: true) ".repeat(51);
        let doc = async_graphql::parser::parse_query(format!("{{ {dirs} }}")).expect("parses");
        assert_eq!(check_document(&doc).map_err(|r| r.limit), Err("directives"));
        // A deep chain of spreads is refused by its nesting, not walked.
        let mut chain = String::from("{ ...F0 }\n");
        for i in 0..200 {
            chain += &format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1);
        }
        chain += "fragment F200 on Query { __typename }";
        let doc = async_graphql::parser::parse_query(chain).expect("parses");
        assert_eq!(check_document(&doc).map_err(|r| r.limit), Err("nesting"));
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..100 {
            v = serde_json::json!([v]);
        }
        let vars = Variables::from_json(serde_json::json!({ "x": v }));
        assert_eq!(check_variables(&vars).map_err(|r| r.limit), Err("nesting"));
        let vars = Variables::from_json(serde_json::json!({ "x": [[1], {"a": [2]}] }));
        assert_eq!(check_variables(&vars), Ok(()));
    }
}
