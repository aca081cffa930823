//! The node: parameter validation and a run with a custom segment map.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{out_table, s, shop, strs, table};
use crate::segmentation::metrics::{Metrics, OUTPUT_COLUMNS};
use flow_engine::data::Data;
use flow_engine::node::{ConfigureCx, Input, Inputs, Node, NodeKind, NodeType, ParamError, Params};
use flow_engine::source::Seg;

fn params(v: Json) -> Params {
    Params::new(v.as_object().unwrap().clone(), ".")
}

fn configure(
    v: Json,
    input_columns: &[Option<Vec<String>>],
) -> Result<Arc<dyn Node>, Vec<ParamError>> {
    let cx = ConfigureCx {
        node_id: "metrics",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("."),
        input_columns,
    };
    Metrics.configure(&params(v), &cx)
}

#[test]
fn configure_locates_bad_params() {
    let errors = configure(
        json!({
            "analysis_date": "2024-13-01",
            "time_unit": "months",
            "frequency": "visits",
            "horizon_days": 0,
            "discount_rate": 1.5,
            "fit": "pareto",
            "backtest_days": -1,
        }),
        &[],
    )
    .err()
    .unwrap();
    let paths: Vec<Vec<Seg>> = errors.iter().map(|e| e.path.clone()).collect();
    for p in [
        "analysis_date",
        "time_unit",
        "frequency",
        "horizon_days",
        "discount_rate",
        "fit",
        "backtest_days",
    ] {
        assert!(paths.contains(&vec![Seg::key(p)]), "{p}: {errors:?}");
    }
    assert!(configure(json!({"backtest_days": 0}), &[]).is_ok());
    assert!(configure(json!({"backtest_days": 36_501}), &[]).is_err());
    let errors = configure(json!({"fit": "none", "require_model": true}), &[])
        .err()
        .unwrap();
    assert_eq!(errors[0].path, vec![Seg::key("require_model")]);

    // A custom map must cover the 25 cells exactly once.
    let errors = configure(
        json!({"rfm_segments": {"Top": "5*", "Rest": ["[1-4]*"], "Dup": "11"}}),
        &[],
    )
    .err()
    .unwrap();
    assert_eq!(
        errors[0].path,
        vec![Seg::key("rfm_segments"), Seg::key("Dup")]
    );
    assert!(errors[0].message.contains("already in `Rest`"));
    let errors = configure(json!({"rfm_segments": {"Top": "5*"}}), &[])
        .err()
        .unwrap();
    assert!(errors[0].message.contains("not covered: 11"), "{errors:?}");
    assert!(
        configure(
            json!({"rfm_segments": {"Top": "5*", "Rest": "[1-4]*"}}),
            &[]
        )
        .is_ok()
    );

    // Upstream columns known at validation time.
    let cols = vec![Some(vec!["customer_id".to_string(), "date".to_string()])];
    let errors = configure(json!({}), &cols).err().unwrap();
    assert!(
        errors[0].message.contains("`order_id`, `amount`")
            && errors[0].message.contains("customer_id, date"),
        "{errors:?}"
    );
    let node = configure(json!({"analysis_date": "2024-01-31"}), &[None]).unwrap();
    assert_eq!(
        node.output_columns(&[None]).unwrap(),
        OUTPUT_COLUMNS.map(String::from).to_vec()
    );
}

#[tokio::test]
async fn runs_as_a_node_with_a_custom_segment_map() {
    let node = configure(
        json!({
            "analysis_date": "2024-01-31",
            "rfm_segments": {"Best": ["5*", "4[4-5]"], "Others": ["[1-3]*", "4[1-3]"]},
        }),
        &[],
    )
    .unwrap();
    let inputs = Inputs(vec![Input {
        from: "extract".into(),
        case: None,
        role: Some("transactions".into()),
        data: Data::Table(table(&shop())),
        meta: Default::default(),
    }]);
    let out = node
        .run(flow_engine::testing::context(), inputs)
        .await
        .unwrap();
    let t = out_table(&out);
    assert_eq!(
        strs(t, "rfm_segment"),
        vec![
            s("Others"),
            s("Best"),
            s("Others"),
            s("Others"),
            s("Others")
        ]
    );
    let err = node
        .run(
            flow_engine::testing::context(),
            Inputs(vec![Input {
                from: "x".into(),
                case: None,
                role: Some("transactions".into()),
                data: Data::Json(json!(1)),
                meta: Default::default(),
            }]),
        )
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("transactions table"), "{err}");
}
