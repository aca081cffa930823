//! Tests of `segmentation.campaign`: rendering, consent rules, validation, and hostile data.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use flow_engine::data::{Body, Data};
use flow_engine::node::Input;

fn params(yaml: &str) -> Params {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    Params::new(value.as_object().unwrap().clone(), "/")
}

fn configure(
    yaml: &str,
    columns: &[Option<Vec<String>>],
) -> Result<Arc<dyn Node>, Vec<ParamError>> {
    let cx = ConfigureCx {
        node_id: "campaign",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: columns,
    };
    Campaign.configure(&params(yaml), &cx)
}

fn customers() -> RecordBatch {
    let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            text(vec![
                Some("C1"),
                Some("C2"),
                Some("C3"),
                Some("C4"),
                Some("C5"),
            ]),
        ),
        (
            "email",
            text(vec![
                Some("ada@example.com"),
                Some("bob@example.com"),
                None,
                Some("d@example.com"),
                Some("not an address"),
            ]),
        ),
        (
            "customer_name",
            text(vec![
                Some("Ada Lovelace"),
                Some("Bob"),
                Some("Cy"),
                None,
                Some("Eve"),
            ]),
        ),
        (
            "accepts_marketing",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
                Some(true),
            ])) as ArrayRef,
        ),
        // Scores as floats (as a CSV read may give them) become Int64.
        (
            "r_score",
            Arc::new(Float64Array::from(vec![5.0, 1.0, 3.0, 2.0, 4.0])) as ArrayRef,
        ),
        (
            "clv",
            Arc::new(Float64Array::from(vec![
                Some(123.5),
                None,
                Some(1.0),
                Some(2.0),
                Some(3.0),
            ])) as ArrayRef,
        ),
        ("segment", text(vec![Some("vip"); 5])),
    ])
    .unwrap()
}

fn recommendations() -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(vec!["C1", "C1", "C2"])) as ArrayRef,
        ),
        (
            "segment",
            Arc::new(StringArray::from(vec!["vip", "vip", "vip"])),
        ),
        ("rank", Arc::new(Int64Array::from(vec![2, 1, 1]))),
        (
            "product_id",
            Arc::new(StringArray::from(vec!["P6", "P1", "P4"])),
        ),
        (
            "product_name",
            Arc::new(StringArray::from(vec!["Cake", "<b>Tea & Co</b>", "Mug"])),
        ),
        (
            "category",
            Arc::new(StringArray::from(vec!["food", "drinks", "kitchen"])),
        ),
        (
            "reason",
            Arc::new(StringArray::from(vec![
                "often bought with Tea",
                "trending in drinks",
                "x",
            ])),
        ),
    ])
    .unwrap()
}

const YAML: &str = r#"
offer: { type: discount, value: 10 }
subject: "{{ customer.first_name }}, {{ offer.label }} for you\n  in {{ segment }}"
body: "<p>Hi {{ customer.first_name }} ({{ customer.clv }})</p>{% for p in products %}<li>{{ p.rank }}. {{ p.name }} &ndash; {{ p.reason }}</li>{% endfor %}"
action: "Call {{ customer.customer_name }} about {{ products|length }} items"
"#;

/// Runs the node on recommendations tables followed by one customers table (the last).
fn run(node: &Arc<dyn Node>, tables: Vec<RecordBatch>) -> Result<Output, NodeError> {
    let last = tables.len().saturating_sub(1);
    let inputs = Inputs(
        tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| Input {
                from: format!("in{i}"),
                case: None,
                role: Some(
                    if i == last {
                        "customers"
                    } else {
                        "recommendations"
                    }
                    .into(),
                ),
                data: Data::Table(t),
                meta: Default::default(),
            })
            .collect(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(node.run(flow_engine::testing::context(), inputs))
}

fn table(out: &Output) -> &RecordBatch {
    match &out.body {
        Body::Data(Data::Table(t)) => t,
        _ => panic!("not a table"),
    }
}

fn texts(t: &RecordBatch, name: &str) -> Vec<Option<String>> {
    t.column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn renders_per_customer_with_html_escaping_and_consent_rules() {
    let node = configure(YAML, &[]).unwrap();
    let out = run(&node, vec![recommendations(), customers()]).unwrap();
    let t = table(&out);
    let names: Vec<String> = t
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, OUTPUT_COLUMNS);
    assert_eq!(t.num_rows(), 5);

    let send: Vec<bool> = t
        .column_by_name("send")
        .unwrap()
        .as_boolean()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(send, [true, false, false, false, false]);
    let skip = texts(t, "skip_reason");
    assert_eq!(
        skip,
        [
            None,
            Some("no marketing consent".into()),
            Some("no email address".into()),
            Some("no marketing consent".into()), // unknown consent is not consent
            Some("invalid email address".into()),
        ]
    );
    let subject = texts(t, "subject");
    assert_eq!(subject[0].as_deref(), Some("Ada, 10% off for you in vip"));
    assert!(subject[1..].iter().all(Option::is_none));
    let body = texts(t, "body_html")[0].clone().unwrap();
    assert_eq!(
        body,
        "<p>Hi Ada (123.5)</p><li>1. &lt;b&gt;Tea &amp; Co&lt;&#x2f;b&gt; &ndash; trending in drinks</li>\
         <li>2. Cake &ndash; often bought with Tea</li>"
    );
    assert!(texts(t, "body_html")[1..].iter().all(Option::is_none));
    // The profile columns are plain text, and every customer gets the action.
    assert_eq!(
        texts(t, "recommended_products"),
        [
            Some("<b>Tea & Co</b>; Cake".into()),
            Some("Mug".into()),
            Some(String::new()),
            Some(String::new()),
            Some(String::new())
        ]
    );
    let action = texts(t, "recommended_action");
    assert_eq!(
        action[0].as_deref(),
        Some("Call Ada Lovelace about 2 items")
    );
    assert_eq!(action[1].as_deref(), Some("Call Bob about 1 items"));
    assert_eq!(
        action[3].as_deref(),
        Some("Call  about 0 items"),
        "a null prints as nothing"
    );
    assert_eq!(texts(t, "offer")[0].as_deref(), Some("10% off"));
    assert_eq!(texts(t, "sender")[0].as_deref(), Some("shop@example.com"));
    let r = t
        .column_by_name("r_score")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(r.value(0), 5);
    assert!(
        t.column_by_name("p_alive").unwrap().is_null(0),
        "absent columns are null"
    );
    assert_eq!(out.meta["messages"], 1);
    assert_eq!(out.meta["skipped_no_consent"], 2);

    // Without recommendations (the recommend node was skipped) everyone still gets a row.
    let out = run(&node, vec![customers()]).unwrap();
    assert_eq!(table(&out).num_rows(), 5);
    assert_eq!(
        texts(table(&out), "body_html")[0].as_deref(),
        Some("<p>Hi Ada (123.5)</p>")
    );
}

#[test]
fn channel_none_sends_nothing_and_keeps_profiles() {
    let node = configure(
        "channel: none\naction: 'Say hi to {{ customer.first_name }}'\n",
        &[],
    )
    .unwrap();
    let out = run(&node, vec![customers()]).unwrap();
    let t = table(&out);
    assert_eq!(
        t.column_by_name("send").unwrap().as_boolean().true_count(),
        0
    );
    assert_eq!(
        texts(t, "skip_reason")[0].as_deref(),
        Some("channel is none")
    );
    assert_eq!(
        texts(t, "recommended_action")[0].as_deref(),
        Some("Say hi to Ada")
    );
    assert_eq!(texts(t, "offer")[0].as_deref(), Some("no offer"));
}

#[test]
fn template_and_offer_mistakes_fail_validation() {
    let messages = |yaml: &str, cols: &[Option<Vec<String>>]| -> Vec<String> {
        configure(yaml, cols)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    flow_engine::source::path_to_string(&e.path),
                    e.message
                )
            })
            .collect()
    };
    let m = messages("subject: hi\nbody: '{% for p in products %}'\n", &[]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("body: ") && m[0].contains("syntax error"),
        "{m:?}"
    );
    let m = messages(
        "subject: '{{ custmer.name }}'\nbody: '{{ offer.percent }}'\n",
        &[],
    );
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].contains("subject: unknown variable `custmer`"),
        "{m:?}"
    );
    assert!(
        m[1].contains("body: `offer` has no field `percent`"),
        "{m:?}"
    );
    let m = messages("subject: hi\n", &[]);
    assert_eq!(m, ["body: is required when `channel` is email"]);
    let cols = [Some(vec![
        "customer_id".to_string(),
        "segment".to_string(),
        "email".to_string(),
    ])];
    let m = messages(
        "subject: '{{ customer.first_name }} {{ customer.nickname }}'\nbody: x\n",
        &cols,
    );
    assert_eq!(
        m,
        ["subject: `customer` has no field `nickname`: the input has no such column"]
    );
    for (offer, want) in [
        ("{ type: discount }", "needs a `value`"),
        ("{ type: discount, value: 150 }", "at most 100"),
        ("{ type: free_shipping, value: 5 }", "discounts only"),
        (
            "{ type: bogo }",
            "must be discount, free_shipping, early_access or none",
        ),
        ("{ type: none, percent: 3 }", "unknown field `percent`"),
    ] {
        let m = messages(&format!("channel: none\noffer: {offer}\n"), &[]);
        assert!(
            m.len() == 1 && m[0].starts_with("offer: ") && m[0].contains(want),
            "{offer}: {m:?}"
        );
    }
    let m = messages("channel: none\nsender: nobody\n", &[]);
    assert!(m[0].starts_with("sender: "), "{m:?}");
    assert!(configure("channel: none\nsender: 'Shop <shop@example.com>'\noffer: { type: discount, value: 12.5 }\n", &[]).is_ok());
}

#[test]
fn an_unknown_field_at_run_time_names_the_customer() {
    let node = configure("subject: hi\nbody: 'Dear {{ customer.nickname }}'\n", &[]).unwrap();
    let err = run(&node, vec![customers()]).err().unwrap().to_string();
    assert!(
        err.contains("rendering `body` for customer C1 (segment vip)"),
        "{err}"
    );
    assert!(err.contains("undefined"), "{err}");
}

#[test]
fn offer_labels() {
    let label = |yaml: &str| Offer::from_params(&params(yaml)).unwrap().label;
    assert_eq!(label("offer: { type: discount, value: 12.5 }"), "12.5% off");
    assert_eq!(label("offer: { type: discount, value: 20 }"), "20% off");
    assert_eq!(label("offer: { type: free_shipping }"), "free shipping");
    assert_eq!(
        label("offer: { type: early_access, label: Spring preview }"),
        "Spring preview"
    );
    assert_eq!(label("{}"), "no offer");
}

/// One customer with `name` (accepting marketing) and one recommendation.
fn hostile(name: &str, email: &str, product: &str, category: &str) -> Vec<RecordBatch> {
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let customers = RecordBatch::try_from_iter(vec![
        ("customer_id", text("C1")),
        ("email", text(email)),
        ("customer_name", text(name)),
        (
            "accepts_marketing",
            Arc::new(BooleanArray::from(vec![true])) as ArrayRef,
        ),
        ("segment", text("vip")),
    ])
    .unwrap();
    let recs = RecordBatch::try_from_iter(vec![
        ("customer_id", text("C1")),
        ("segment", text("vip")),
        ("rank", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("product_id", text("P1")),
        ("product_name", text(product)),
        ("category", text(category)),
        ("reason", text("x")),
    ])
    .unwrap();
    vec![recs, customers]
}

#[test]
fn line_breaks_from_data_never_leave_the_subject_line() {
    let node = configure(
        "subject: \"Hi {{ customer.customer_name }}, {{ products[0].name }}\"\nbody: x\n",
        &[],
    )
    .unwrap();
    let out = run(
        &node,
        hostile(
            "Bob\r\nBcc: victim@evil.example",
            "bob@example.com",
            "Tea\u{2028}Cc: a@evil.example\u{85}\u{0b}x",
            "food",
        ),
    )
    .unwrap();
    assert_eq!(
        texts(table(&out), "subject")[0].as_deref(),
        Some("Hi Bob Bcc: victim@evil.example, Tea Cc: a@evil.example x")
    );
}

#[test]
fn addresses_that_do_not_parse_get_no_message() {
    let node = configure("subject: hi\nbody: x\n", &[]).unwrap();
    for bad in [
        "bob@example.com\r\nBcc: victim@evil.example",
        "a@b@example.com",
        "a@example.com, b@example.com",
        "<a@example.com>",
        "a@-example.com",
    ] {
        let out = run(&node, hostile("Bob", bad, "Tea", "food")).unwrap();
        let t = table(&out);
        assert_eq!(
            texts(t, "skip_reason")[0].as_deref(),
            Some("invalid email address"),
            "{bad:?}"
        );
        assert_eq!(out.meta["skipped_invalid_email"], 1, "{bad:?}");
    }
    // The sender is checked when the workflow is validated.
    let Err(errs) = configure(
        "subject: hi\nbody: x\nsender: \"Shop <shop@example.com>\\r\\nBcc: x@evil.example\"\n",
        &[],
    ) else {
        panic!("a sender with a line break is accepted")
    };
    assert!(
        errs[0].message.contains("is not an email address"),
        "{errs:?}"
    );
    assert!(
        configure(
            "subject: hi\nbody: x\nsender: \"Corner Shop <shop@example.com>\"\n",
            &[]
        )
        .is_ok()
    );
}

#[test]
fn html_from_data_is_escaped_in_every_place() {
    let node = configure(
        "subject: hi\nbody: \"<p title=\\\"{{ customer.customer_name }}\\\">{{ customer.first_name }}</p>\
         {% for p in products %}<a title='{{ p.name }}'>{{ p.category }}</a>{% endfor %}\"\n",
        &[],
    )
    .unwrap();
    let out = run(
        &node,
        hostile(
            "<script>alert(1)</script>\"><img src=x onerror=alert(2)>",
            "a@example.com",
            "'><script>p()</script>",
            "<svg onload=c()>",
        ),
    )
    .unwrap();
    let body = texts(table(&out), "body_html")[0].clone().unwrap();
    assert_eq!(
        body,
        "<p title=\"&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&gt;&lt;img src=x \
         onerror=alert(2)&gt;\">&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&gt;&lt;img</p>\
         <a title='&#x27;&gt;&lt;script&gt;p()&lt;&#x2f;script&gt;'>&lt;svg onload=c()&gt;</a>"
    );
}

/// `n` customers `H0000`..; every fifth has no marketing consent.
fn many_customers(n: usize) -> RecordBatch {
    let ids: Vec<String> = (0..n).map(|i| format!("H{i:04}")).collect();
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from_iter_values(ids.iter())) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|id| format!("{id}@example.com")),
            )),
        ),
        (
            "customer_name",
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|id| format!("Name {id}")),
            )),
        ),
        (
            "clv",
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ),
        (
            "accepts_marketing",
            Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 5 != 0)))),
        ),
        (
            "segment",
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "vip"))),
        ),
    ])
    .unwrap()
}

fn bools_of(t: &RecordBatch, name: &str) -> Vec<bool> {
    t.column_by_name(name)
        .unwrap()
        .as_boolean()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

#[test]
fn control_customers_get_no_message_no_offer_and_no_offer_action() {
    let yaml = format!("{YAML}holdout: 20%\n");
    let node = configure(&yaml, &[]).unwrap();
    let recs = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(vec!["H0001", "H0002", "H0003"])) as ArrayRef,
        ),
        ("rank", Arc::new(Int64Array::from(vec![1, 1, 1]))),
        (
            "product_id",
            Arc::new(StringArray::from(vec!["P1", "P1", "P1"])),
        ),
    ])
    .unwrap();
    let out = run(&node, vec![recs.clone(), many_customers(400)]).unwrap();
    let t = table(&out);
    let ids = texts(t, "customer_id");
    let (group, skip, action, offer, subject, products) = (
        texts(t, "group"),
        texts(t, "skip_reason"),
        texts(t, "recommended_action"),
        texts(t, "offer"),
        texts(t, "subject"),
        texts(t, "recommended_products"),
    );
    let (send, eligible) = (bools_of(t, "send"), bools_of(t, "eligible"));
    let mut held = 0;
    for i in 0..t.num_rows() {
        let id = ids[i].as_deref().unwrap();
        let consent = i % 5 != 0;
        // The key defaults to the node id ("campaign" here) and consent plays no part.
        let control = flow_analytics::holdout::is_control("campaign", id, 0.2);
        assert_eq!(
            group[i].as_deref(),
            Some(if control { "control" } else { "treated" })
        );
        assert_eq!(
            eligible[i], consent,
            "{id}: eligible is who would be messaged"
        );
        if control {
            held += 1;
            assert!(!send[i], "{id}: a control customer is never messaged");
            assert_eq!(subject[i], None, "{id}");
            assert_eq!(
                skip[i].as_deref(),
                Some(if consent {
                    "control group"
                } else {
                    "no marketing consent"
                })
            );
            assert_eq!(
                action[i].as_deref(),
                Some("Control group: no campaign offer")
            );
            assert_eq!(offer[i].as_deref(), Some("no offer (control group)"));
        } else {
            assert_eq!(send[i], consent, "{id}");
            assert_eq!(offer[i].as_deref(), Some("10% off"));
            assert!(action[i].as_deref().unwrap().starts_with("Call "), "{id}");
        }
    }
    assert!((50..110).contains(&held), "{held} of 400 held out at 20%");
    // Otherwise identical: recommendations stay.
    for (i, id) in ids.iter().enumerate() {
        if matches!(id.as_deref(), Some("H0001" | "H0002" | "H0003")) {
            assert_eq!(products[i].as_deref(), Some("P1"), "{id:?}");
        }
    }
    assert_eq!(out.meta["holdout_share"], 0.2);
    assert_eq!(out.meta["holdout_key"], "campaign");
    assert_eq!(out.meta["control_customers"], held);

    // Again, and under another node id with the same key: the same groups.
    let again = run(&node, vec![recs.clone(), many_customers(400)]).unwrap();
    assert_eq!(texts(table(&again), "group"), group);
    let cx = ConfigureCx {
        node_id: "campaign_renamed",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: &[],
    };
    let keyed = |key: &str| {
        let yaml = format!("{YAML}holdout: {{ share: 20%, key: {key} }}\n");
        let node = Campaign.configure(&params(&yaml), &cx).unwrap();
        texts(
            table(&run(&node, vec![recs.clone(), many_customers(400)]).unwrap()),
            "group",
        )
    };
    assert_eq!(keyed("campaign"), group);
    assert_ne!(keyed("spring"), group);
}

#[test]
fn holdout_defaults_ten_percent_for_email_and_none_without_a_channel() {
    let email = run(&configure(YAML, &[]).unwrap(), vec![many_customers(1000)]).unwrap();
    let held = texts(table(&email), "group")
        .iter()
        .filter(|g| g.as_deref() == Some("control"))
        .count();
    assert!(
        (60..140).contains(&held),
        "{held} of 1000 at the default 10%"
    );
    let none = configure("channel: none\naction: hi\n", &[]).unwrap();
    let out = run(&none, vec![many_customers(200)]).unwrap();
    let t = table(&out);
    assert!(
        texts(t, "group")
            .iter()
            .all(|g| g.as_deref() == Some("treated"))
    );
    assert!(
        bools_of(t, "eligible").iter().all(|e| *e),
        "everyone is reached in store"
    );
    // An explicit holdout on a channel-none campaign withholds the staff action and offer.
    let held = configure("channel: none\naction: hi\nholdout: 30%\n", &[]).unwrap();
    let t = run(&held, vec![many_customers(200)]).unwrap();
    let t = table(&t);
    for (g, a) in texts(t, "group").iter().zip(texts(t, "recommended_action")) {
        match g.as_deref() {
            Some("control") => assert_eq!(a.as_deref(), Some("Control group: no campaign offer")),
            _ => assert_eq!(a.as_deref(), Some("hi")),
        }
    }
}
