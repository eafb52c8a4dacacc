//! The served schema is the contract (`tests/contract.graphql`, a verbatim copy of
//! `shared/design/schema.graphql`) plus additions, and `graphql/schema.graphql` is
//! exactly what is served (`UPDATE_SCHEMA=1` rewrites it after a deliberate change).

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
use std::collections::BTreeMap;

/// Every named thing of a schema with its signature: `Type.field(arg: T = d): T`,
/// `Input.field: T`, `Enum.VALUE`, `scalar X`.
fn signatures(sdl: &str) -> BTreeMap<String, String> {
    let doc = parse_schema(sdl).expect("SDL parses");
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let name = t.node.name.node.to_string();
        match &t.node.kind {
            TypeKind::Scalar => {
                out.insert(format!("scalar {name}"), String::new());
            }
            TypeKind::Object(o) => {
                for f in &o.fields {
                    let f = &f.node;
                    let args: Vec<String> = f
                        .arguments
                        .iter()
                        .map(|a| {
                            let a = &a.node;
                            let d = a
                                .default_value
                                .as_ref()
                                .map(|d| format!(" = {}", d.node))
                                .unwrap_or_default();
                            format!("{}: {}{d}", a.name.node, a.ty.node)
                        })
                        .collect();
                    out.insert(
                        format!("{name}.{}", f.name.node),
                        format!("({}): {}", args.join(", "), f.ty.node),
                    );
                }
            }
            TypeKind::InputObject(i) => {
                for f in &i.fields {
                    let f = &f.node;
                    let d = f
                        .default_value
                        .as_ref()
                        .map(|d| format!(" = {}", d.node))
                        .unwrap_or_default();
                    out.insert(
                        format!("{name}.{}", f.name.node),
                        format!("{}{d}", f.ty.node),
                    );
                }
            }
            TypeKind::Enum(e) => {
                for v in &e.values {
                    out.insert(format!("{name}.{}", v.node.value.node), String::new());
                }
            }
            _ => {
                out.insert(format!("other {name}"), String::new());
            }
        }
    }
    out
}

#[test]
fn the_served_schema_holds_every_name_of_the_contract_with_its_exact_type() {
    let contract = signatures(include_str!("contract.graphql"));
    let served = signatures(&graphql::sdl());
    let mut problems = Vec::new();
    for (name, sig) in &contract {
        match served.get(name) {
            None => problems.push(format!("missing: {name}{sig}")),
            Some(s) if s != sig => problems.push(format!("{name}: contract {sig}, served {s}")),
            Some(_) => {}
        }
    }
    assert!(
        contract.len() > 400,
        "the contract parsed into {} names",
        contract.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checked_in_sdl_is_what_the_server_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let served = graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &served).expect("write schema.graphql");
    }
    let on_disk = std::fs::read_to_string(path).expect("graphql/schema.graphql");
    assert!(
        on_disk == served,
        "graphql/schema.graphql differs from the served schema; run `orgline schema > graphql/schema.graphql` (or UPDATE_SCHEMA=1)"
    );
}
