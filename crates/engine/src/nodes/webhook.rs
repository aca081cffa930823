//! The `webhook` trigger: `flow serve --http` starts a run for each accepted request to
//! `POST /hooks/WORKFLOW/TRIGGER`. Its output is the firing with the request's JSON body and
//! the headers the trigger selects.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value as Json, json};

use crate::data::Output;
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use crate::webhook::{
    DELIVERY_HEADER, MAX_BODY_BYTES, SIGNATURE_HEADER, WebhookAuth, WebhookRespond, WebhookSpec,
};

/// Request headers that carry credentials; a trigger cannot pass them to its run.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// Fired by an HTTP request to `flow serve --http` (and by hand with `flow run`, with no body).
#[derive(Debug)]
pub struct WebhookTriggerType;

struct Hook {
    spec: WebhookSpec,
}

#[async_trait]
impl Node for Hook {
    fn webhook(&self) -> Option<&WebhookSpec> {
        Some(&self.spec)
    }

    async fn run(&self, ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let payload = ctx.trigger.get("payload");
        let field = |name: &str| {
            payload
                .and_then(|p| p.get(name))
                .cloned()
                .unwrap_or(Json::Null)
        };
        Ok(Output::json(json!({
            "trigger": ctx.node_id,
            "fired_by": ctx.trigger.get("fired_by"),
            "time": ctx.trigger.get("time"),
            "run_id": ctx.run_id,
            "params": ctx.params,
            "body": field("body"),
            "headers": payload
                .and_then(|p| p.get("headers"))
                .cloned()
                .unwrap_or_else(|| json!({})),
            "delivery": field("delivery"),
        })))
    }
}

impl NodeType for WebhookTriggerType {
    fn name(&self) -> &'static str {
        "webhook"
    }
    fn summary(&self) -> &'static str {
        "Starts a run for each request to `POST /hooks/WORKFLOW/TRIGGER` on `flow serve --http`; its output carries the JSON body."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Trigger]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::with_default(
                "auth",
                ParamType::String,
                "hmac",
                "how callers prove who they are: hmac (a signature of the body), bearer (a token) or none",
            ),
            ParamSpec::optional(
                "secret_env",
                ParamType::String,
                "environment variable holding the HMAC secret (auth: hmac) or the bearer token (auth: bearer)",
            ),
            ParamSpec::with_default(
                "signature_header",
                ParamType::String,
                SIGNATURE_HEADER,
                "header carrying `sha256=HEX`, the HMAC-SHA256 of the raw body (auth: hmac)",
            ),
            ParamSpec::with_default(
                "delivery_header",
                ParamType::String,
                DELIVERY_HEADER,
                "header identifying a delivery; a repeated delivery starts no second run",
            ),
            ParamSpec::optional(
                "headers",
                ParamType::List,
                "request headers the run sees in its trigger output",
            ),
            ParamSpec::with_default(
                "respond",
                ParamType::String,
                "accepted",
                "accepted (202 with the run id at once) or output (wait for the run, answer with respond_node's output)",
            ),
            ParamSpec::optional(
                "respond_node",
                ParamType::String,
                "the node whose output answers the request (respond: output)",
            ),
            ParamSpec::with_default(
                "respond_timeout",
                ParamType::Duration,
                "30s",
                "how long the request waits for the run (respond: output); then it gets 202 with the run id",
            ),
            ParamSpec::with_default(
                "max_body_kb",
                ParamType::Integer,
                "1024",
                "the largest request body accepted, in KiB",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let mut note = |r: Result<(), ParamError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        let string = |name: &str, default: &str| -> Result<String, ParamError> {
            params.str_or(name, default).map(str::to_string)
        };
        let header = |name: &str, default: &str| -> Result<String, ParamError> {
            let h = string(name, default)?;
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ParamError::new(
                    name,
                    format!("`{h}` is not a header name (letters, digits and `-`)"),
                ));
            }
            Ok(h.to_ascii_lowercase())
        };
        let secret_env = params.opt_str("secret_env").map(|s| s.map(str::to_string));
        let auth = match (string("auth", "hmac"), secret_env) {
            (Ok(a), Ok(secret)) => match (a.as_str(), secret) {
                ("none", None) => Ok(WebhookAuth::None),
                ("none", Some(_)) => Err(ParamError::new(
                    "secret_env",
                    "`secret_env` is not used with `auth: none`; remove it, or choose hmac or bearer",
                )),
                ("hmac" | "bearer", None) => Err(ParamError::new(
                    "secret_env",
                    format!(
                        "`secret_env` is required with `auth: {a}`: the environment variable holding the {}; a trigger anyone may call needs `auth: none`",
                        if a == "hmac" {
                            "signing secret"
                        } else {
                            "token"
                        }
                    ),
                )),
                ("hmac", Some(secret_env)) => header("signature_header", SIGNATURE_HEADER)
                    .map(|header| WebhookAuth::Hmac { secret_env, header }),
                ("bearer", Some(token_env)) => Ok(WebhookAuth::Bearer { token_env }),
                (other, _) => Err(ParamError::new(
                    "auth",
                    format!("`{other}` is not one of hmac, bearer, none"),
                )),
            },
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let delivery_header = header("delivery_header", DELIVERY_HEADER);
        let signature = match &auth {
            Ok(WebhookAuth::Hmac { header, .. }) => Some(header.clone()),
            _ => None,
        };
        let headers = match params.get("headers") {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .map(|h| match h.as_str() {
                    // Credentials would be stored with the run and shown on its page.
                    Some(h)
                        if SECRET_HEADERS.contains(&h.to_ascii_lowercase().as_str())
                            || signature.as_deref() == Some(h.to_ascii_lowercase().as_str()) =>
                    {
                        Err(ParamError::new(
                            "headers",
                            format!("`{h}` carries credentials and cannot be passed to the run"),
                        ))
                    }
                    Some(h)
                        if !h.is_empty()
                            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                    {
                        Ok(h.to_ascii_lowercase())
                    }
                    _ => Err(ParamError::new(
                        "headers",
                        format!("{h} is not a header name (letters, digits and `-`)"),
                    )),
                })
                .collect(),
            Some(other) => Err(ParamError::new(
                "headers",
                format!("must be a list of header names, got {other}"),
            )),
        };
        let timeout = params
            .duration("respond_timeout")
            .map(|d| d.unwrap_or(Duration::from_secs(30)));
        let respond = match (
            string("respond", "accepted"),
            params.opt_str("respond_node"),
        ) {
            (Ok(r), Ok(node)) => match (r.as_str(), node) {
                ("accepted", None) => Ok(WebhookRespond::Accepted),
                ("accepted", Some(_)) => Err(ParamError::new(
                    "respond_node",
                    "`respond_node` is used only with `respond: output`",
                )),
                ("output", Some(node)) => timeout.map(|timeout| WebhookRespond::Output {
                    node: node.to_string(),
                    timeout,
                }),
                ("output", None) => Err(ParamError::new(
                    "respond_node",
                    "`respond_node` is required with `respond: output`: the node whose output answers the request",
                )),
                (other, _) => Err(ParamError::new(
                    "respond",
                    format!("`{other}` is not one of accepted, output"),
                )),
            },
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let max_body = params
            .u64_or("max_body_kb", MAX_BODY_BYTES / 1024)
            .and_then(|kb| match kb {
                1..=102_400 => Ok(kb * 1024),
                _ => Err(ParamError::new(
                    "max_body_kb",
                    format!("must be between 1 and 102400, got {kb}"),
                )),
            });
        match (auth, delivery_header, headers, respond, max_body) {
            (Ok(auth), Ok(delivery_header), Ok(headers), Ok(respond), Ok(max_body)) => {
                Ok(Arc::new(Hook {
                    spec: WebhookSpec {
                        auth,
                        delivery_header,
                        headers,
                        respond,
                        max_body,
                    },
                }))
            }
            (auth, delivery, headers, respond, max_body) => {
                note(auth.map(drop));
                note(delivery.map(drop));
                note(headers.map(drop));
                note(respond.map(drop));
                note(max_body.map(drop));
                Err(errors)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(with: Json) -> Result<WebhookSpec, Vec<String>> {
        let params = Params::new(with.as_object().cloned().unwrap_or_default(), ".");
        let cx = ConfigureCx {
            node_id: "hook",
            kind: NodeKind::Trigger,
            workflow_dir: std::path::Path::new("."),
            input_columns: &[],
        };
        WebhookTriggerType
            .configure(&params, &cx)
            .map(|n| n.webhook().cloned().expect("a webhook"))
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| match e.path.first() {
                        Some(crate::source::Seg::Key(k)) => format!("{k}: {}", e.message),
                        _ => e.message,
                    })
                    .collect()
            })
    }

    #[test]
    fn hmac_is_the_default_and_needs_a_secret() {
        let spec = configure(json!({ "secret_env": "HOOK_SECRET" })).unwrap();
        assert_eq!(
            spec.auth,
            WebhookAuth::Hmac {
                secret_env: "HOOK_SECRET".into(),
                header: "x-flow-signature-256".into()
            }
        );
        assert_eq!(spec.delivery_header, "x-flow-delivery");
        assert_eq!(spec.respond, WebhookRespond::Accepted);
        assert_eq!(spec.max_body, MAX_BODY_BYTES);
        let err = configure(json!({})).unwrap_err();
        assert!(
            err[0].starts_with("secret_env: `secret_env` is required with `auth: hmac`"),
            "{err:?}"
        );
    }

    #[test]
    fn an_open_trigger_must_say_so() {
        assert_eq!(
            configure(json!({ "auth": "none" })).unwrap().auth,
            WebhookAuth::None
        );
        let err = configure(json!({ "auth": "open" })).unwrap_err();
        assert!(
            err[0].contains("`open` is not one of hmac, bearer, none"),
            "{err:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = configure(json!({
            "auth": "bearer",
            "delivery_header": "X Bad",
            "headers": ["ok", "no good"],
            "respond": "output",
            "max_body_kb": 0
        }))
        .unwrap_err();
        assert_eq!(err.len(), 5, "{err:?}");
        let spec = configure(json!({
            "auth": "bearer", "secret_env": "T", "headers": ["X-Shopify-Topic"],
            "respond": "output", "respond_node": "summary", "respond_timeout": "5s"
        }))
        .unwrap();
        assert_eq!(spec.headers, ["x-shopify-topic"]);
        for credential in ["Authorization", "cookie"] {
            let err = configure(json!({
                "auth": "bearer", "secret_env": "T", "headers": [credential]
            }))
            .unwrap_err();
            assert!(err[0].contains("carries credentials"), "{err:?}");
        }
        let err = configure(json!({ "secret_env": "S", "headers": ["X-Flow-Signature-256"] }))
            .unwrap_err();
        assert!(err[0].contains("carries credentials"), "{err:?}");
        assert_eq!(
            spec.respond,
            WebhookRespond::Output {
                node: "summary".into(),
                timeout: Duration::from_secs(5)
            }
        );
    }
}
