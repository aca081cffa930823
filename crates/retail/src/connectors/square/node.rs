//! `square.orders` and `square.catalog`: Square synced into the node's history, as the
//! `transactions` and `catalog` tables `pos.extract` and `pos.catalog` produce.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{SquareConfig, SquareConnector, SquareSource, client, orders};
use crate::connectors;
use crate::pos::{CATALOG_COLUMNS, TRANSACTION_COLUMNS};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, TableKind, noted,
};

/// `square.orders`.
#[derive(Debug)]
pub struct SquareOrdersNode;

/// `square.catalog`.
#[derive(Debug)]
pub struct SquareCatalogNode;

fn common_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::with_default(
            "token_env",
            ParamType::String,
            "SQUARE_ACCESS_TOKEN",
            "environment variable (or secrets file entry) holding the Square access token",
        ),
        ParamSpec::with_default(
            "api_version",
            ParamType::String,
            client::DEFAULT_API_VERSION,
            "Square-Version header: the API version the requests are written for",
        ),
        ParamSpec::with_default(
            "base_url",
            ParamType::String,
            client::DEFAULT_BASE_URL,
            "Square API root (https://connect.squareupsandbox.com for the sandbox)",
        ),
        ParamSpec::with_default(
            "retries",
            ParamType::Integer,
            "5",
            "retries of a request after HTTP 429, 5xx or a connection error",
        ),
        ParamSpec::with_default(
            "backoff",
            ParamType::Duration,
            "500ms",
            "wait before the first retry (doubled each time) when Square sends no Retry-After",
        ),
        ParamSpec::with_default(
            "full_sync",
            ParamType::Bool,
            "false",
            "fetch everything again and replace the history",
        ),
    ]
}

struct Common {
    config: SquareConfig,
    token_env: String,
    full: bool,
}

fn common(params: &Params, errors: &mut Vec<ParamError>) -> Common {
    let mut config = SquareConfig::default();
    let mut text = |name: &str, default: &str| match params.str_or(name, default) {
        Ok(v) => v.trim().to_string(),
        Err(e) => {
            errors.push(e);
            default.to_string()
        }
    };
    let token_env = text("token_env", "SQUARE_ACCESS_TOKEN");
    config.api_version = text("api_version", client::DEFAULT_API_VERSION);
    config.base_url = text("base_url", client::DEFAULT_BASE_URL)
        .trim_end_matches('/')
        .to_string();
    let valid_env = !token_env.is_empty()
        && !token_env.starts_with(|c: char| c.is_ascii_digit())
        && token_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_env {
        errors.push(ParamError::new(
            "token_env",
            "must name an environment variable (letters, digits and _), not hold the token",
        ));
    }
    if let Err(e) = client::check_base_url(&config.base_url) {
        errors.push(ParamError::new("base_url", e));
    }
    config.retries = noted(errors, params.u64_between("retries", 5, 0, 20), 5) as u32;
    config.backoff = noted(
        errors,
        params.duration_or("backoff", Duration::from_millis(500)),
        Duration::from_millis(500),
    );
    let full = noted(errors, params.bool_or("full_sync", false), false);
    Common {
        config,
        token_env,
        full,
    }
}

impl NodeType for SquareOrdersNode {
    fn name(&self) -> &'static str {
        "square.orders"
    }
    fn summary(&self) -> &'static str {
        "Syncs Square orders and customers incrementally (SearchOrders by updated_at) into a \
         history beside the store; outputs the transactions table."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn output_kind(&self) -> Option<TableKind> {
        Some(crate::segmentation::tables::transactions())
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut p = vec![
            ParamSpec::optional(
                "location_ids",
                ParamType::List,
                "Square location ids to read (default: every location)",
            ),
            ParamSpec::with_default(
                "lookback",
                ParamType::Duration,
                "10m",
                "overlap behind the last updated_at seen, fetched again each sync",
            ),
            ParamSpec::with_default(
                "limit",
                ParamType::Integer,
                "500",
                "orders per page (1 to 1000)",
            ),
            ParamSpec::with_default(
                "catalog",
                ParamType::Bool,
                "true",
                "also list the catalog so lines get product names and categories",
            ),
        ];
        p.extend(common_params());
        p
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let common = common(params, &mut errors);
        let location_ids = match params.get("location_ids") {
            None => Vec::new(),
            Some(v) => match v.as_array().map(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(Some(ids)) => ids,
                _ => {
                    errors.push(ParamError::new(
                        "location_ids",
                        "must be a list of location ids (strings)",
                    ));
                    Vec::new()
                }
            },
        };
        let lookback = noted(
            &mut errors,
            params.duration_or("lookback", Duration::from_secs(600)),
            Duration::from_secs(600),
        );
        let limit = noted(
            &mut errors,
            params.u64_between("limit", 500, 1, u64::from(orders::MAX_LIMIT)),
            500,
        ) as u32;
        let catalog = params.bool_or("catalog", true).unwrap_or_else(|e| {
            errors.push(e);
            true
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(Configured {
            source: SquareSource {
                config: common.config,
                location_ids,
                limit,
                lookback,
            },
            token_env: common.token_env,
            full: common.full,
            orders: true,
            catalog,
        }))
    }
}

impl NodeType for SquareCatalogNode {
    fn name(&self) -> &'static str {
        "square.catalog"
    }
    fn summary(&self) -> &'static str {
        "Lists the Square catalog (item variations with their category and price) into the \
         catalog table."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn output_kind(&self) -> Option<TableKind> {
        Some(crate::segmentation::tables::catalog())
    }
    fn params(&self) -> Vec<ParamSpec> {
        // The catalog is always listed whole: no `full_sync`.
        let mut p = common_params();
        p.retain(|p| p.name != "full_sync");
        p
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let common = common(params, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(Configured {
            source: SquareSource {
                config: common.config,
                location_ids: Vec::new(),
                limit: 500,
                lookback: Duration::ZERO,
            },
            token_env: common.token_env,
            // ListCatalog has no change filter: the catalog is listed whole, and replaces the
            // history, so deleted items leave it.
            full: true,
            orders: false,
            catalog: true,
        }))
    }
}

struct Configured {
    source: SquareSource,
    token_env: String,
    full: bool,
    orders: bool,
    catalog: bool,
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let cols: &[&str] = if self.orders {
            &TRANSACTION_COLUMNS
        } else {
            &CATALOG_COLUMNS
        };
        Some(cols.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let token = flow_engine::secret::require("token_env", &self.token_env)
            .map_err(|e| NodeError::msg(format!("Square: {e}")))?;
        let connector = SquareConnector {
            source: self.source.clone(),
            token,
            orders: self.orders,
            catalog: self.catalog,
        };
        let synced = connectors::sync(&ctx, Arc::new(connector), self.full).await?;
        if self.orders {
            synced.transactions()
        } else {
            synced.catalog()
        }
    }
}
