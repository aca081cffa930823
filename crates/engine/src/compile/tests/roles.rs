//! Input roles at validation time, with test node types: `test.people` and `test.places`
//! produce declared kinds, `test.visit` takes one of each (and optional `notes`).

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::node::{
    ConfigureCx, InputSpec, Node, NodeType, ParamError, ParamSpec, Params, TableKind,
};

fn people() -> TableKind {
    TableKind::new(
        "people",
        "who",
        Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
        ]),
    )
}

fn places() -> TableKind {
    TableKind::new(
        "places",
        "where",
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]),
    )
}

/// People without names: a kind that lacks a column `people` has.
fn badges() -> TableKind {
    TableKind::new(
        "badges",
        "ids only",
        Schema::new(vec![Field::new("id", DataType::Utf8, false)]),
    )
}

/// A node type of kind action that produces `kind` and takes `roles`.
struct TestType {
    name: &'static str,
    output: Option<fn() -> TableKind>,
    roles: fn() -> Vec<InputSpec>,
}

impl NodeType for TestType {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn configure(
        &self,
        _params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        crate::nodes::Noop.configure(&Params::default(), cx)
    }
    fn inputs(&self) -> Vec<InputSpec> {
        (self.roles)()
    }
    fn output_kind(&self) -> Option<TableKind> {
        self.output.map(|f| f())
    }
}

fn compile_str(text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let mut registry = crate::nodes::core_registry();
    registry.register(TestType {
        name: "test.people",
        output: Some(people),
        roles: Vec::new,
    });
    registry.register(TestType {
        name: "test.places",
        output: Some(places),
        roles: Vec::new,
    });
    registry.register(TestType {
        name: "test.badges",
        output: Some(badges),
        roles: Vec::new,
    });
    registry.register(TestType {
        name: "test.visit",
        output: None,
        roles: || {
            vec![
                InputSpec::one("who", people(), "the visitor"),
                InputSpec::many("where", places(), "the places"),
                InputSpec::any("notes", "anything").optional(),
            ]
        },
    });
    compile(text, Path::new("wf.yaml"), &registry)
}

fn errors(text: &str) -> Vec<String> {
    compile_str(text)
        .expect_err("should be invalid")
        .iter()
        .map(ToString::to_string)
        .collect()
}

const HEAD: &str = "\
name: roles
nodes:
  - { id: go, kind: trigger, type: manual }
  - { id: folk, kind: action, type: test.people, needs: go }
  - { id: town, kind: action, type: test.places, needs: go }
  - { id: file, kind: action, type: core.noop, needs: go }
";

fn roles_of(wf: &Workflow, id: &str) -> Vec<(String, Option<String>)> {
    let node = wf.node(id).unwrap();
    node.needs
        .iter()
        .map(|n| (wf.nodes[n.node].id.clone(), n.role.clone()))
        .collect()
}

#[test]
fn roles_come_from_the_declared_kinds_or_from_as() {
    let wf = compile_str(&format!(
        "{HEAD}  - {{ id: v, kind: action, type: test.visit, needs: [go, town, folk, {{ node: file, as: notes }}] }}\n"
    ))
    .unwrap();
    assert_eq!(
        roles_of(&wf, "v"),
        [
            ("go".to_string(), None),
            ("town".to_string(), Some("where".to_string())),
            ("folk".to_string(), Some("who".to_string())),
            ("file".to_string(), Some("notes".to_string())),
        ]
    );
    let v = wf.node("v").unwrap();
    // Only the input whose upstream declares no kind is checked when it arrives, and `notes`
    // takes any table.
    assert!(v.input_plans.iter().all(|p| p.check.is_none()));
    // Nodes without roles keep their inputs without one.
    assert_eq!(roles_of(&wf, "folk"), [("go".to_string(), None)]);
}

#[test]
fn an_input_whose_role_cannot_be_told_is_an_error_that_says_what_to_write() {
    let errs = errors(&format!(
        "{HEAD}  - {{ id: v, kind: action, type: test.visit, needs: [folk, town, file] }}\n"
    ));
    assert_eq!(
        errs,
        [
            "wf.yaml:7:66: node `v`: cannot tell which input role `file` fills: its node type does not declare the kind of table it produces; write { node: file, as: ROLE } with ROLE one of: `who` (people), `where` (places, one or more), `notes` (any table, optional)"
        ]
    );
}

#[test]
fn unknown_missing_and_repeated_roles_are_located_errors() {
    let errs = errors(&format!(
        "{HEAD}  - id: v
    kind: action
    type: test.visit
    needs:
      - {{ node: folk, as: whom }}
      - town
  - id: w
    kind: action
    type: test.visit
    needs: [folk, town, {{ node: folk, as: who }}]
"
    ));
    assert_eq!(
        errs,
        [
            "wf.yaml:10:5: node `v`: no input fills the role `who` (people (id Utf8, name Utf8): the visitor); add the node that produces it to `needs`, as { node: ID, as: who } if its type does not declare that kind",
            "wf.yaml:11:27: node `v`: `whom` is not an input role of type `test.visit` (did you mean `who`? its roles: `who` (people), `where` (places, one or more), `notes` (any table, optional))",
            "wf.yaml:16:25: node `w`: `folk` is listed twice",
        ]
    );
    // The same node twice in one role that takes one table.
    let errs = errors(&format!(
        "{HEAD}  - {{ id: other, kind: action, type: test.people, needs: go }}\n  - {{ id: v, kind: action, type: test.visit, needs: [folk, town, other] }}\n"
    ));
    assert_eq!(
        errs,
        [
            "wf.yaml:8:66: node `v`: the role `who` takes one table, and `folk` already fills it; remove one of them from `needs`"
        ]
    );
}

#[test]
fn a_declared_kind_that_lacks_a_column_or_type_the_role_needs_is_an_error() {
    // `town` produces places, whose `id` is Int64; `who` needs people, whose `id` is text.
    let errs = errors(&format!(
        "{HEAD}  - {{ id: v, kind: action, type: test.visit, needs: [{{ node: town, as: who }}] }}\n"
    ));
    assert!(
        errs.iter().any(|e| e.starts_with("wf.yaml:7:") && e.contains("`town` cannot fill the role `who`: its places table column `id` is Int64; expected Utf8; the role needs people (id Utf8, name Utf8)")),
        "{errs:#?}"
    );
    // `badge` produces badges, which have no `name` column.
    let errs = errors(&format!(
        "{HEAD}  - {{ id: badge, kind: action, type: test.badges, needs: go }}\n  - {{ id: v, kind: action, type: test.visit, needs: [{{ node: badge, as: who }}, town] }}\n"
    ));
    assert_eq!(
        errs,
        [
            "wf.yaml:8:54: node `v`: `badge` cannot fill the role `who`: its badges table has no `name` column (Utf8 expected); its columns are: id; the role needs people (id Utf8, name Utf8)"
        ]
    );
}

#[test]
fn as_on_a_trigger_or_a_node_without_roles_is_an_error() {
    let errs = errors(&format!(
        "{HEAD}  - {{ id: n, kind: action, type: core.noop, needs: [{{ node: folk, as: who }}] }}\n  - {{ id: v, kind: action, type: test.visit, needs: [folk, town, {{ node: go, as: notes }}] }}\n"
    ));
    assert_eq!(
        errs,
        [
            "wf.yaml:7:71: node `n`: type `core.noop` has no input roles, so `as: who` means nothing; write `folk` without `as:`",
            "wf.yaml:8:82: node `v`: `go` is a trigger: it starts the node and fills no input role; write `go` without `as:`",
        ]
    );
}

#[test]
fn an_undeclared_upstream_is_checked_when_its_table_arrives() {
    let wf = compile_str(&format!(
        "{HEAD}  - {{ id: v, kind: action, type: test.visit, needs: [town, {{ node: file, as: who }}] }}\n"
    ))
    .unwrap();
    let v = wf.node("v").unwrap();
    let checks: Vec<Option<&str>> = v
        .input_plans
        .iter()
        .map(|p| p.check.as_ref().map(TableKind::name))
        .collect();
    assert_eq!(checks, [None, Some("people")]);
}

#[test]
fn changing_a_role_changes_the_fingerprint() {
    let base = format!(
        "{HEAD}  - {{ id: v, kind: action, type: test.visit, needs: [folk, town, {{ node: file, as: notes }}] }}\n"
    );
    let a = compile_str(&base).unwrap();
    let b = compile_str(&base.replace("{ node: file, as: notes }", "{ node: file, as: where }"))
        .unwrap();
    assert_ne!(
        a.node("v").unwrap().fingerprint,
        b.node("v").unwrap().fingerprint
    );
    assert_eq!(
        a.node("folk").unwrap().fingerprint,
        b.node("folk").unwrap().fingerprint
    );
}
