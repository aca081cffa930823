//! Workflow parameters: typed declarations, checked values, and which params a text uses.
//!
//! A param is declared in the short form `vip_min_clv: 300` (the type is inferred from the
//! default) or the long form `vip_min_clv: { type: number, default: 300, min: 0 }`. Values given
//! with `--param` are read as the declared type, so `--param vip_min_clv=abc` is an error before
//! anything runs instead of a comparison that is silently false for every row.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as Json;

use crate::source::{Pos, Seg};

/// The type of a param.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    String,
    /// A whole number.
    Integer,
    /// A whole or decimal number.
    Number,
    Boolean,
    List,
    Mapping,
}

impl ParamKind {
    pub const ALL: [ParamKind; 6] = [
        ParamKind::String,
        ParamKind::Integer,
        ParamKind::Number,
        ParamKind::Boolean,
        ParamKind::List,
        ParamKind::Mapping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Number => "number",
            ParamKind::Boolean => "boolean",
            ParamKind::List => "list",
            ParamKind::Mapping => "mapping",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The type a default implies. Any number infers `number` (so `300` admits `800.5`);
    /// declare `type: integer` to require whole numbers.
    pub fn infer(value: &Json) -> Option<Self> {
        match value {
            Json::Null => None,
            Json::Bool(_) => Some(ParamKind::Boolean),
            Json::Number(_) => Some(ParamKind::Number),
            Json::String(_) => Some(ParamKind::String),
            Json::Array(_) => Some(ParamKind::List),
            Json::Object(_) => Some(ParamKind::Mapping),
        }
    }

    pub fn accepts(self, value: &Json) -> bool {
        match self {
            ParamKind::String => value.is_string(),
            ParamKind::Integer => value.is_i64() || value.is_u64(),
            ParamKind::Number => value.is_number(),
            ParamKind::Boolean => value.is_boolean(),
            ParamKind::List => value.is_array(),
            ParamKind::Mapping => value.is_object(),
        }
    }

    /// "a number", "an integer", ... for messages.
    pub fn described(self) -> &'static str {
        match self {
            ParamKind::String => "a string",
            ParamKind::Integer => "an integer",
            ParamKind::Number => "a number",
            ParamKind::Boolean => "a boolean (true or false)",
            ParamKind::List => "a list",
            ParamKind::Mapping => "a mapping",
        }
    }
}

/// A declared param.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamKind,
    pub default: Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The only values the param may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Where the param is declared (its name in `params:`).
    #[serde(skip)]
    pub pos: Option<Pos>,
}

/// Keys of the long form.
pub const LONG_FORM_KEYS: &[&str] = &["type", "default", "description", "allowed", "min", "max"];

impl ParamDecl {
    /// Checks a value against the type, the allowed values and the bounds.
    pub fn check(&self, value: &Json) -> Result<(), String> {
        if !self.kind.accepts(value) {
            return Err(format!(
                "expected {}, got {}",
                self.kind.described(),
                show(value)
            ));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| same_value(a, value))
        {
            let list: Vec<String> = allowed.iter().map(show).collect();
            return Err(format!(
                "{} is not one of the allowed values: {}",
                show(value),
                list.join(", ")
            ));
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.min
                && n < min
            {
                return Err(format!("{} is below the minimum {min}", show(value)));
            }
            if let Some(max) = self.max
                && n > max
            {
                return Err(format!("{} is above the maximum {max}", show(value)));
            }
        }
        Ok(())
    }

    /// Reads a `--param` value as this param's type, then checks it.
    pub fn parse_value(&self, raw: &str) -> Result<Json, String> {
        let not = || format!("`{raw}` is not {}", self.kind.described());
        let value = match self.kind {
            ParamKind::String => Json::String(raw.to_string()),
            ParamKind::Integer => Json::from(raw.trim().parse::<i64>().map_err(|_| not())?),
            ParamKind::Number => number(raw.trim()).ok_or_else(not)?,
            ParamKind::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Json::Bool(true),
                "false" | "no" | "off" => Json::Bool(false),
                _ => return Err(not()),
            },
            ParamKind::List | ParamKind::Mapping => serde_yaml::from_str::<serde_yaml::Value>(raw)
                .ok()
                .and_then(|v| serde_json::to_value(v).ok())
                .filter(|v| self.kind.accepts(v))
                .ok_or_else(|| {
                    format!(
                        "`{raw}` is not {} (write it in YAML flow style, e.g. {})",
                        self.kind.described(),
                        if self.kind == ParamKind::List {
                            "[a, b]"
                        } else {
                            "{a: 1}"
                        }
                    )
                })?,
        };
        self.check(&value)?;
        Ok(value)
    }
}

/// A whole number stays whole (`300`), anything else finite is a decimal.
fn number(raw: &str) -> Option<Json> {
    if let Ok(i) = raw.parse::<i64>() {
        return Some(Json::from(i));
    }
    let f = raw.parse::<f64>().ok().filter(|f| f.is_finite())?;
    serde_json::Number::from_f64(f).map(Json::Number)
}

/// Numbers compare by value (`300` equals `300.0`); everything else exactly.
fn same_value(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// A value as it would be written in YAML, shortened.
pub fn show(value: &Json) -> String {
    let s = match value {
        Json::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// One problem in `params:`, at a path from the top of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclError {
    pub path: Vec<Seg>,
    pub message: String,
}

/// Reads the `params:` mapping, collecting every problem.
pub fn declare(
    raw: &serde_json::Map<String, Json>,
) -> (BTreeMap<String, ParamDecl>, Vec<DeclError>) {
    let mut decls = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, value) in raw {
        let at = |rest: &[Seg]| {
            let mut p = vec![Seg::key("params"), Seg::key(name.clone())];
            p.extend_from_slice(rest);
            p
        };
        let mut err = |path: Vec<Seg>, message: String| errors.push(DeclError { path, message });
        if !valid_name(name) {
            err(
                vec![Seg::key("params"), Seg::KeyName(name.clone())],
                format!(
                    "param name `{name}` must be letters, digits and `_`, not starting with a digit (templates write `params.NAME`)"
                ),
            );
            continue;
        }
        let long = match value {
            // A mapping is always the long form; a mapping default is written in it too.
            Json::Object(m) => m,
            Json::Null => {
                err(
                    at(&[]),
                    format!(
                        "param `{name}` has no default; write `{name}: VALUE` or `{name}: {{ type: TYPE, default: VALUE }}`"
                    ),
                );
                continue;
            }
            short => {
                decls.insert(
                    name.clone(),
                    ParamDecl {
                        name: name.clone(),
                        kind: ParamKind::infer(short).expect("not null"),
                        default: short.clone(),
                        description: None,
                        allowed: None,
                        min: None,
                        max: None,
                        pos: None,
                    },
                );
                continue;
            }
        };
        let before = errors.len();
        let mut err = |path: Vec<Seg>, message: String| errors.push(DeclError { path, message });
        for key in long.keys() {
            if !LONG_FORM_KEYS.contains(&key.as_str()) {
                let hint = crate::compile::suggest(key, LONG_FORM_KEYS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("expected one of: {}", LONG_FORM_KEYS.join(", ")));
                err(
                    at(&[Seg::KeyName(key.clone())]),
                    format!("unknown param key `{key}` ({hint})"),
                );
            }
        }
        let default = long.get("default").cloned().unwrap_or(Json::Null);
        let kind = match long.get("type") {
            Some(Json::String(t)) => match ParamKind::parse(t) {
                Some(k) => Some(k),
                None => {
                    let names: Vec<&str> = ParamKind::ALL.iter().map(|k| k.as_str()).collect();
                    let hint = crate::compile::suggest(t, names.iter().copied())
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    err(
                        at(&[Seg::key("type")]),
                        format!(
                            "unknown param type `{t}` ({hint}types: {})",
                            names.join(", ")
                        ),
                    );
                    None
                }
            },
            Some(other) => {
                err(
                    at(&[Seg::key("type")]),
                    format!("`type` must be a type name, got {}", show(other)),
                );
                None
            }
            None => ParamKind::infer(&default),
        };
        if default.is_null() {
            err(
                at(&[]),
                format!(
                    "param `{name}` needs a `default` (the value runs use unless `--param {name}=VALUE` is given)"
                ),
            );
        }
        let description = match long.get("description") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => {
                err(
                    at(&[Seg::key("description")]),
                    format!("`description` must be text, got {}", show(other)),
                );
                None
            }
        };
        let mut bound = |key: &str| match long.get(key) {
            None | Some(Json::Null) => None,
            Some(v) => match v.as_f64() {
                Some(n) if matches!(kind, Some(ParamKind::Integer | ParamKind::Number)) => Some(n),
                Some(_) => {
                    err(
                        at(&[Seg::KeyName(key.to_string())]),
                        format!("`{key}` applies only to integer and number params"),
                    );
                    None
                }
                None => {
                    err(
                        at(&[Seg::key(key)]),
                        format!("`{key}` must be a number, got {}", show(v)),
                    );
                    None
                }
            },
        };
        let min = bound("min");
        let max = bound("max");
        let mut err = |path: Vec<Seg>, message: String| errors.push(DeclError { path, message });
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            err(
                at(&[Seg::key("min")]),
                format!("`min` {lo} is above `max` {hi}"),
            );
        }
        let allowed = match long.get("allowed") {
            None | Some(Json::Null) => None,
            Some(Json::Array(items)) if !items.is_empty() => {
                if let Some(kind) = kind {
                    for (i, item) in items.iter().enumerate() {
                        if !kind.accepts(item) {
                            err(
                                at(&[Seg::key("allowed"), Seg::Index(i)]),
                                format!("allowed value {} is not {}", show(item), kind.described()),
                            );
                        }
                    }
                }
                Some(items.clone())
            }
            Some(_) => {
                err(
                    at(&[Seg::key("allowed")]),
                    "`allowed` must be a non-empty list of values".to_string(),
                );
                None
            }
        };
        let (Some(kind), false) = (kind, errors.len() > before || default.is_null()) else {
            continue;
        };
        let decl = ParamDecl {
            name: name.clone(),
            kind,
            default,
            description,
            allowed,
            min,
            max,
            pos: None,
        };
        if let Err(e) = decl.check(&decl.default) {
            errors.push(DeclError {
                path: at(&[Seg::key("default")]),
                message: format!("the default of param `{name}`: {e}"),
            });
            continue;
        }
        decls.insert(name.clone(), decl);
    }
    (decls, errors)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Which params a text uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    pub names: BTreeSet<String>,
    /// The text uses `params` as a whole (`params[key]`, `{{ params }}`): it may read any.
    pub all: bool,
}

impl Uses {
    pub fn extend(&mut self, other: Uses) {
        self.names.extend(other.names);
        self.all |= other.all;
    }
}

/// The params a text mentions: `params.NAME`, `params["NAME"]`, or `FLOW_PARAM_NAME` (the
/// environment variable a shell command sees). Finding a mention in a plain string as well
/// errs on the side of re-running a node on resume, never of reusing a stale result.
pub fn mentions(text: &str, declared: &BTreeMap<String, ParamDecl>) -> Uses {
    let mut uses = Uses::default();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(found) = text[from..].find("params") {
        let start = from + found;
        let end = start + "params".len();
        from = end;
        if start > 0 && (ident(bytes[start - 1]) || bytes[start - 1] == b'.') {
            continue;
        }
        if bytes.get(end).copied().is_some_and(ident) {
            continue;
        }
        let rest = text[end..].trim_start();
        if let Some(after) = rest.strip_prefix('.') {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if declared.contains_key(&name) {
                uses.names.insert(name);
            }
        } else if let Some(after) = rest.strip_prefix('[') {
            let after = after.trim_start();
            let quoted = after
                .strip_prefix('"')
                .and_then(|a| a.split_once('"'))
                .or_else(|| after.strip_prefix('\'').and_then(|a| a.split_once('\'')));
            match quoted {
                Some((name, _)) if declared.contains_key(name) => {
                    uses.names.insert(name.to_string());
                }
                Some(_) => {}
                None => uses.all = true,
            }
        } else if crate::template::is_template(text) {
            uses.all = true;
        }
    }
    for name in declared.keys() {
        let var = format!("FLOW_PARAM_{}", name.to_ascii_uppercase());
        if text
            .match_indices(&var)
            .any(|(i, _)| !bytes.get(i + var.len()).copied().is_some_and(ident))
        {
            uses.names.insert(name.clone());
        }
    }
    uses
}

/// The params used anywhere in a node's `with:` (every string, at any depth, and keys).
pub fn used_by(
    with: &serde_json::Map<String, Json>,
    declared: &BTreeMap<String, ParamDecl>,
) -> Uses {
    fn walk(value: &Json, declared: &BTreeMap<String, ParamDecl>, uses: &mut Uses) {
        match value {
            Json::String(s) => uses.extend(mentions(s, declared)),
            Json::Array(items) => items.iter().for_each(|v| walk(v, declared, uses)),
            Json::Object(map) => {
                for (k, v) in map {
                    uses.extend(mentions(k, declared));
                    walk(v, declared, uses);
                }
            }
            _ => {}
        }
    }
    let mut uses = Uses::default();
    for (k, v) in with {
        uses.extend(mentions(k, declared));
        walk(v, declared, &mut uses);
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decls(value: Json) -> (BTreeMap<String, ParamDecl>, Vec<DeclError>) {
        declare(value.as_object().unwrap())
    }

    #[test]
    fn short_form_infers_the_type_and_numbers_admit_decimals() {
        let (d, errs) = decls(json!({"n": 300, "name": "x", "on": true, "tags": ["a"]}));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(d["n"].kind, ParamKind::Number);
        assert_eq!(d["name"].kind, ParamKind::String);
        assert_eq!(d["on"].kind, ParamKind::Boolean);
        assert_eq!(d["tags"].kind, ParamKind::List);
        assert_eq!(d["n"].parse_value("800.5").unwrap(), json!(800.5));
        assert_eq!(d["n"].parse_value("800").unwrap(), json!(800));
        assert_eq!(
            d["n"].parse_value("abc").unwrap_err(),
            "`abc` is not a number"
        );
        assert_eq!(
            d["n"].parse_value("inf").unwrap_err(),
            "`inf` is not a number"
        );
        assert_eq!(d["name"].parse_value("007").unwrap(), json!("007"));
        assert_eq!(d["on"].parse_value("no").unwrap(), json!(false));
        assert!(d["on"].parse_value("maybe").is_err());
        assert_eq!(d["tags"].parse_value("[x, y]").unwrap(), json!(["x", "y"]));
        assert!(d["tags"].parse_value("x").is_err());
    }

    #[test]
    fn long_form_checks_type_bounds_and_allowed_values() {
        let (d, errs) = decls(json!({
            "n": {"type": "integer", "default": 3, "min": 1, "max": 5, "description": "how many"},
            "tier": {"default": "gold", "allowed": ["gold", "silver"]},
        }));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(d["n"].kind, ParamKind::Integer);
        assert_eq!(d["n"].description.as_deref(), Some("how many"));
        assert_eq!(
            d["n"].parse_value("2.5").unwrap_err(),
            "`2.5` is not an integer"
        );
        assert_eq!(
            d["n"].parse_value("9").unwrap_err(),
            "9 is above the maximum 5"
        );
        assert_eq!(
            d["n"].parse_value("0").unwrap_err(),
            "0 is below the minimum 1"
        );
        assert_eq!(d["tier"].kind, ParamKind::String);
        assert_eq!(
            d["tier"].parse_value("bronze").unwrap_err(),
            "\"bronze\" is not one of the allowed values: \"gold\", \"silver\""
        );
    }

    #[test]
    fn declaration_mistakes_are_all_reported_with_their_paths() {
        let (d, errs) = decls(json!({
            "a": {"type": "integr", "default": 1},
            "b": {"type": "integer", "default": 1.5},
            "c": {"type": "string"},
            "d": {"default": "x", "min": 1, "descripton": "typo"},
            "e": null,
            "bad-name": 1,
            "ok": 1,
        }));
        let got: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        let expect = [
            "unknown param type `integr` (did you mean `integer`? ",
            "the default of param `b`: expected an integer, got 1.5",
            "param `c` needs a `default`",
            "unknown param key `descripton` (did you mean `description`?)",
            "`min` applies only to integer and number params",
            "param `e` has no default",
            "param name `bad-name` must be letters",
        ];
        for e in expect {
            assert!(
                got.iter().any(|g| g.starts_with(e)),
                "missing {e}\n{got:#?}"
            );
        }
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        assert_eq!(d.keys().collect::<Vec<_>>(), ["ok"]);
        let b = errs.iter().find(|e| e.message.contains("`b`")).unwrap();
        assert_eq!(
            b.path,
            vec![Seg::key("params"), Seg::key("b"), Seg::key("default")]
        );
    }

    #[test]
    fn mentions_find_params_in_expressions_templates_and_shell_variables() {
        let (d, _) = decls(json!({"min": 1, "max": 2, "mode": "x", "region": "eu"}));
        let names = |t: &str| mentions(t, &d).names.into_iter().collect::<Vec<_>>();
        assert_eq!(
            names("clv >= params.min && x < params . max"),
            ["max", "min"]
        );
        assert_eq!(names("{{ params['mode'] }}"), ["mode"]);
        assert_eq!(
            names("echo $FLOW_PARAM_REGION ${FLOW_PARAM_MIN}"),
            ["min", "region"]
        );
        assert!(names("myparams.min, FLOW_PARAM_MINIMUM, params.unknown").is_empty());
        assert!(mentions("{{ params[key] }}", &d).all);
        assert!(mentions("{{ params | tojson }}", &d).all);
        assert!(!mentions("clv >= params.min", &d).all);
        let with =
            json!({"rules": [{"case": "a", "when": "v > params.max"}], "x": "{{ params.region }}"});
        let uses = used_by(with.as_object().unwrap(), &d);
        assert_eq!(
            uses.names.into_iter().collect::<Vec<_>>(),
            ["max", "region"]
        );
    }
}
