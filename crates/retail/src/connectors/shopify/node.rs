//! `shopify.orders` and `shopify.catalog`: a shop's orders (the `transactions` table) and
//! products (the `catalog` table), synced incrementally into a history beside the store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::DEFAULT_API_VERSION;
use super::client::ClientConfig;
use super::connector::ShopifyConnector;
use super::incremental::Stream;
use super::source::SourceConfig;
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, TableKind, noted,
};

/// Registers `shopify.orders` and `shopify.catalog`.
pub fn register(registry: &mut flow_engine::node::Registry) {
    registry
        .register(ShopifyNode(Stream::Orders))
        .register(ShopifyNode(Stream::Products));
}

#[derive(Debug)]
struct ShopifyNode(Stream);

/// The parameters shared by the push (`segmentation.deploy`'s `shopify:` block).
pub(crate) fn connection_specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional(
            "shop",
            ParamType::String,
            "the shop's domain, e.g. my-shop.myshopify.com",
        ),
        ParamSpec::optional(
            "base_url",
            ParamType::String,
            "http(s) URL to send requests to instead of https://SHOP (a proxy, a test server)",
        ),
        ParamSpec::with_default(
            "api_version",
            ParamType::String,
            DEFAULT_API_VERSION,
            "Admin API version (YYYY-MM)",
        ),
        ParamSpec::with_default(
            "token_env",
            ParamType::String,
            "SHOPIFY_ACCESS_TOKEN",
            "environment variable (or secrets-file entry) holding the Admin API access token",
        ),
        ParamSpec::with_default(
            "timeout",
            ParamType::Duration,
            "30s",
            "time limit of one request",
        ),
        ParamSpec::with_default(
            "retries",
            ParamType::Integer,
            "5",
            "retries after a connection error, HTTP 429 or 5xx",
        ),
    ]
}

/// The connection: `(client config, token variable)`, errors collected.
pub(crate) fn connection(params: &Params, errors: &mut Vec<ParamError>) -> (ClientConfig, String) {
    let mut get = |name: &str| match params.opt_str(name) {
        Ok(v) => v
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let (shop, base, version, token_env) = (
        get("shop"),
        get("base_url"),
        get("api_version").unwrap_or_else(|| DEFAULT_API_VERSION.into()),
        get("token_env").unwrap_or_else(|| "SHOPIFY_ACCESS_TOKEN".into()),
    );
    let base_url = match (base, shop) {
        (Some(b), _) => {
            let ok = b.parse::<ureq::http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some_and(|h| !h.is_empty())
            });
            if !ok {
                errors.push(ParamError::new(
                    "base_url",
                    format!(
                        "`{}` is not an http(s) URL with a host",
                        flow_engine::redact::url(&b)
                    ),
                ));
            }
            b
        }
        (None, Some(shop)) => {
            let host = shop
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                errors.push(ParamError::new(
                    "shop",
                    format!("`{shop}` is not a shop domain such as my-shop.myshopify.com"),
                ));
            }
            format!("https://{host}")
        }
        (None, None) => {
            errors.push(ParamError::new(
                "shop",
                "is required (my-shop.myshopify.com), or base_url",
            ));
            String::new()
        }
    };
    let valid_version = version == "unstable"
        || (version.len() == 7
            && version.as_bytes()[4] == b'-'
            && version
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit()));
    if !valid_version {
        errors.push(ParamError::new(
            "api_version",
            format!("`{version}` is not an API version such as {DEFAULT_API_VERSION}"),
        ));
    }
    if token_env.is_empty()
        || token_env.starts_with(|c: char| c.is_ascii_digit())
        || !token_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        errors.push(ParamError::new(
            "token_env",
            "must name an environment variable (letters, digits and _), not hold the token",
        ));
    }
    let timeout = noted(
        errors,
        params.duration_or("timeout", Duration::from_secs(30)),
        Duration::from_secs(30),
    );
    let retries = noted(errors, params.u64_between("retries", 5, 0, 20), 5) as u32;
    (
        ClientConfig {
            base_url,
            api_version: version,
            timeout,
            retries,
            backoff: Duration::from_millis(500),
            throttle_retries: 30,
        },
        token_env,
    )
}

impl NodeType for ShopifyNode {
    fn name(&self) -> &'static str {
        match self.0 {
            Stream::Orders => "shopify.orders",
            Stream::Products => "shopify.catalog",
        }
    }
    fn summary(&self) -> &'static str {
        match self.0 {
            Stream::Orders => {
                "Syncs a Shopify shop's orders and customers (Admin GraphQL API: a bulk operation \
                 first, then only the changes) into a transactions table."
            }
            Stream::Products => {
                "Syncs a Shopify shop's products (type or collection as category, price, stock) \
                 into a catalog table."
            }
        }
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn output_kind(&self) -> Option<TableKind> {
        Some(match self.0 {
            Stream::Orders => crate::segmentation::tables::transactions(),
            Stream::Products => crate::segmentation::tables::catalog(),
        })
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut specs = connection_specs();
        specs.extend([
            ParamSpec::with_default(
                "lookback",
                ParamType::Duration,
                "10m",
                "overlap behind the last change seen that the next sync reads again",
            ),
            ParamSpec::with_default(
                "page_size",
                ParamType::Integer,
                "50",
                "objects per page of an incremental sync (1 to 250)",
            ),
            ParamSpec::with_default(
                "full_sync",
                ParamType::Bool,
                "false",
                "load everything again (a bulk operation) and replace the history",
            ),
            ParamSpec::with_default(
                "poll_interval",
                ParamType::Duration,
                "2s",
                "wait between two status checks of a bulk operation",
            ),
            ParamSpec::with_default(
                "bulk_timeout",
                ParamType::Duration,
                "2h",
                "how long a bulk operation may run",
            ),
        ]);
        specs
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let (client, token_env) = connection(params, &mut errors);
        let mut duration = |name: &str, default: Duration| {
            noted(&mut errors, params.duration_or(name, default), default)
        };
        let lookback = duration("lookback", Duration::from_secs(600));
        let poll = duration("poll_interval", Duration::from_secs(2));
        let bulk_timeout = duration("bulk_timeout", Duration::from_secs(7200));
        let page_size = noted(&mut errors, params.u64_between("page_size", 50, 1, 250), 50) as u32;
        let full = noted(&mut errors, params.bool_or("full_sync", false), false);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(Configured {
            stream: self.0,
            full,
            cfg: SourceConfig {
                client,
                token_env,
                lookback,
                page_size,
                poll,
                bulk_timeout,
            },
        }))
    }
}

struct Configured {
    stream: Stream,
    full: bool,
    cfg: SourceConfig,
}

#[async_trait]
impl Node for Configured {
    async fn run(&self, ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let token = self
            .cfg
            .token()
            .map_err(|e| NodeError::msg(e.to_string()))?;
        let connector = ShopifyConnector {
            cfg: self.cfg.clone(),
            stream: self.stream,
            token,
        };
        let synced = crate::connectors::sync(&ctx, Arc::new(connector), self.full).await?;
        match self.stream {
            Stream::Orders => synced.transactions(),
            Stream::Products => synced.catalog(),
        }
    }
}
