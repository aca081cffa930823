//! Which earlier run a deploy compares with: the previous run of the same workflow file, with
//! the same effective parameters. A `--param` experiment starts its own lineage, so it neither
//! becomes nor replaces the baseline of the plain runs.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use flow_engine::node::NodeContext;

/// The node-state key of a lineage: workflow file, node id and a digest of the parameters.
pub(super) fn state_key(ctx: &NodeContext) -> String {
    format!(
        "profiles:{}#{}@{}",
        workflow_file(ctx).display(),
        ctx.node_id,
        params_digest(&ctx.params)
    )
}

/// The run's workflow file as an absolute path, the same however the command line named it:
/// the directory is absolute, and the file name tells two workflows in one directory apart.
pub(super) fn workflow_file(ctx: &NodeContext) -> std::path::PathBuf {
    ctx.workflow_path
        .file_name()
        .map(|f| ctx.workflow_dir.join(f))
        .unwrap_or_else(|| ctx.workflow_dir.clone())
}

/// A short stable digest of the parameters (sorted by name).
fn params_digest(params: &BTreeMap<String, Json>) -> String {
    let canonical = serde_json::to_vec(params).expect("params serialize");
    let digest = Sha256::digest(&canonical);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(path: &str, params: &[(&str, Json)]) -> NodeContext {
        let mut ctx = flow_engine::testing::context()
            .with_workflow_dir("/shop")
            .with_workflow_path(path)
            .with_node_id("deploy");
        for (name, value) in params {
            ctx = ctx.with_param(*name, value.clone());
        }
        ctx
    }

    #[test]
    fn same_file_and_params_share_a_lineage_others_do_not() {
        let plain = state_key(&ctx("seg.yaml", &[("vip_min_clv", json!(300))]));
        // The path as given on another command line: same file.
        assert_eq!(
            plain,
            state_key(&ctx("/shop/seg.yaml", &[("vip_min_clv", json!(300))]))
        );
        assert_ne!(
            plain,
            state_key(&ctx("seg.yaml", &[("vip_min_clv", json!(800))]))
        );
        assert_ne!(
            plain,
            state_key(&ctx("other.yaml", &[("vip_min_clv", json!(300))]))
        );
        assert!(
            plain.starts_with("profiles:/shop/seg.yaml#deploy@"),
            "{plain}"
        );
    }
}
