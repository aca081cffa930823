//! `flow schema`: the JSON Schema of the workflow format, with each node type's parameters so
//! editors can complete and check `with:` blocks.

use serde_json::{Value, json};

use flow_engine::model::WorkflowDef;
use flow_engine::node::Registry;

pub fn workflow_schema(registry: &Registry) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(WorkflowDef)).expect("schema");
    let type_names: Vec<&str> = registry.names().collect();
    let per_type: Vec<Value> = registry
        .iter()
        .map(|t| {
            let params = t.params();
            let properties: serde_json::Map<String, Value> = params
                .iter()
                .map(|p| {
                    let mut s = p.ty.json_schema();
                    s["description"] = json!(p.doc);
                    (p.name.to_string(), s)
                })
                .collect();
            let required: Vec<&str> = params.iter().filter(|p| p.required).map(|p| p.name).collect();
            json!({
                "if": { "properties": { "type": { "const": t.name() } }, "required": ["type"] },
                "then": {
                    "properties": {
                        "kind": { "enum": t.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>() },
                        "with": {
                            "type": "object",
                            "properties": properties,
                            "required": required,
                            "additionalProperties": false
                        }
                    }
                }
            })
        })
        .collect();
    if let Some(node) = schema.pointer_mut("/$defs/NodeDef") {
        node["allOf"] = Value::Array(per_type);
        if let Some(ty) = node.pointer_mut("/properties/type") {
            ty["enum"] = json!(type_names);
        }
    }
    schema
}
