use super::extract::extract;
use super::*;
use crate::pos::csv_mapped::CsvOptions;

/// `extract` of `text` written to a file, without catalog or customers.
fn extract_text(
    text: &str,
    format: &Format,
    policy: OnBadRows,
    max: MaxBadRows,
) -> (PathBuf, Result<Output, NodeError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.csv");
    std::fs::write(&path, text).unwrap();
    let out = extract(&path, format, None, None, (policy, max), None);
    // Keep the path for the messages; the directory goes.
    (path, out)
}

fn error_of(r: (PathBuf, Result<Output, NodeError>)) -> (String, String) {
    let (path, out) = r;
    let Err(err) = out else {
        panic!("the extract of {} should fail", path.display())
    };
    let err = err.to_string();
    (path.display().to_string(), err)
}

fn table_of(out: &Output) -> &RecordBatch {
    match &out.body {
        flow_engine::data::Body::Data(flow_engine::data::Data::Table(batch)) => batch,
        _ => panic!("not a table"),
    }
}

fn formats() -> Vec<Format> {
    vec![
        Format::Csv(CsvOptions::default()),
        Format::ShopifyOrders(Default::default()),
        Format::SquareItems(Default::default()),
        Format::LightspeedSales(Default::default()),
        Format::Jsonl(Default::default()),
    ]
}

#[test]
fn empty_and_header_only_files_fail_naming_the_path_in_every_format() {
    let headers = [
        "order_id,customer_id,date,product_id,amount\n",
        "Name,Email,Created at,Lineitem quantity,Lineitem name,Lineitem price\n",
        "Date,Item,Qty,Net Sales,Transaction ID,Customer ID\n",
        "Date,Receipt Number,Line Type,Customer Code,Quantity,Total,Details,Status\n",
        "\n",
    ];
    for (format, header) in formats().iter().zip(headers) {
        for policy in [OnBadRows::Fail, OnBadRows::Skip] {
            let (path, err) = error_of(extract_text("", format, policy, MaxBadRows::Default));
            let expected = if matches!(format, Format::Jsonl(_)) {
                "the file has a header but no data rows"
            } else {
                "the file is empty: no header and no data rows"
            };
            assert_eq!(err, format!("{path}: {expected}"), "{}", format.name());
            let (path, err) = error_of(extract_text(header, format, policy, MaxBadRows::Default));
            assert_eq!(
                err,
                format!("{path}: the file has a header but no data rows"),
                "{}",
                format.name()
            );
        }
    }
}

#[test]
fn max_bad_rows_bounds_skipped_rows_at_its_boundary() {
    // 40 data rows, `bad` of them with an unreadable amount.
    let text = |bad: usize| {
        let mut t = String::from("order_id,customer_id,date,product_id,amount\n");
        for i in 0..40 {
            let amount = if i < bad { "x1" } else { "2.50" };
            t.push_str(&format!(
                "O{i},C{},2024-01-{:02},P1,{amount}\n",
                i % 7,
                i % 28 + 1
            ));
        }
        t
    };
    let csv = Format::Csv(CsvOptions::default());
    let rows = |r: (PathBuf, Result<Output, NodeError>)| {
        let out = r.1.unwrap();
        out.meta["rows"].as_u64().unwrap()
    };
    let skip = OnBadRows::Skip;
    for (max, allowed) in [
        (MaxBadRows::Count(3), 3),
        (MaxBadRows::Fraction(0.1), 4),
        (MaxBadRows::Default, 10),
        (MaxBadRows::Count(0), 0),
    ] {
        assert_eq!(
            rows(extract_text(&text(allowed), &csv, skip, max)),
            40 - allowed as u64,
            "{max}"
        );
        let (path, err) = error_of(extract_text(&text(allowed + 1), &csv, skip, max));
        assert!(
            err.starts_with(&format!(
                "{path}: {} of 40 data rows are bad, more than the {allowed} that \
                 `max_bad_rows` ({max}) allows",
                allowed + 1
            )),
            "{err}"
        );
        assert!(
            err.contains("\n  line 2: column `amount`: `x1` is not a number"),
            "{err}"
        );
    }
    // `fail` fails on the first bad row, whatever the bound.
    let (_, err) = error_of(extract_text(
        &text(1),
        &csv,
        OnBadRows::Fail,
        MaxBadRows::Count(5),
    ));
    assert!(err.contains("1 bad row (on_bad_rows: fail)"), "{err}");
}

#[test]
fn an_export_of_only_bad_rows_fails_at_the_extract_in_every_format() {
    let texts = [
        "order_id,customer_id,date,product_id,amount\nO1,C1,never,P1,1\nO2,C2,never,P2,1\n",
        "Name,Email,Created at,Lineitem quantity,Lineitem name,Lineitem price\n\
         #1,a@x.com,never,1,Mug,3.00\n#2,b@x.com,never,1,Mug,3.00\n",
        "Date,Item,Qty,Net Sales,Transaction ID,Customer ID\n\
         never,Mug,1,$3.00,T1,C1\nnever,Mug,1,$3.00,T2,C2\n",
        "Date,Receipt Number,Line Type,Customer Code,Quantity,Total,Details,Status\n\
         never,1,Sale Line,C1,1,3.00,Mug,CLOSED\nnever,2,Sale Line,C2,1,3.00,Mug,CLOSED\n",
        "{\"id\": 1}\nnot json\n",
    ];
    for (format, text) in formats().iter().zip(texts) {
        // Even a bound that allows them all leaves nothing to work with.
        let (path, err) = error_of(extract_text(
            text,
            format,
            OnBadRows::Skip,
            MaxBadRows::Count(100),
        ));
        assert!(
            err.starts_with(&format!(
                "{path}: no usable rows: 2 rows read, 0 line items"
            )),
            "{}: {err}",
            format.name()
        );
        let (_, err) = error_of(extract_text(
            text,
            format,
            OnBadRows::Skip,
            MaxBadRows::Default,
        ));
        assert!(err.contains("no usable rows"), "{err}");
    }
}

#[test]
fn a_payments_export_has_null_products_and_says_so() {
    let format: Format = serde_json::from_value(serde_json::json!({
        "format": "csv",
        "columns": {"customer": "customer", "date": "paid_at", "amount": "amount",
                    "order": null, "product": null}
    }))
    .unwrap();
    let (_, out) = extract_text(
        include_str!("../fixtures/payments.csv"),
        &format,
        OnBadRows::Fail,
        MaxBadRows::Default,
    );
    let out = out.unwrap();
    assert_eq!(out.meta["products"], "none in the export");
    assert_eq!(
        out.meta["orders"],
        "none in the export: each row is one order"
    );
    let batch = table_of(&out);
    let product = batch.column_by_name("product_id").unwrap();
    assert_eq!(product.null_count(), batch.num_rows());
    assert!(batch.num_rows() > 30);
    // An export with products says nothing of the kind.
    let (_, out) = extract_text(
        include_str!("../fixtures/transactions.csv"),
        &Format::Csv(CsvOptions::default()),
        OnBadRows::Skip,
        MaxBadRows::Default,
    );
    let out = out.unwrap();
    assert!(out.meta.get("products").is_none() && out.meta.get("orders").is_none());
    let batch = table_of(&out);
    assert_eq!(batch.column_by_name("product_id").unwrap().null_count(), 0);
}

#[test]
fn a_customers_file_read_beside_a_large_export_gives_its_details_and_its_errors() {
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray;
    // Over twice the size parsed in parts: the customers file is read between the parts when
    // a spare core parses them, afterwards when none is free; the table is the same.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.csv");
    let mut text = String::from("order_id,customer_id,date,product_id,quantity,amount,email\n");
    let mut line = 0u64;
    while text.len() < 10 << 20 {
        line += 1;
        let c = line % 40_000;
        text.push_str(&format!(
            "O{line},C{c},2025-0{}-1{} 10:00:00,P{},1,{}.50,old{c}@example.com\n",
            1 + line % 9,
            line % 10,
            line % 300,
            line % 97
        ));
    }
    std::fs::write(&export, &text).unwrap();
    let customers = dir.path().join("customers.csv");
    // The file lists two customers in three, some without a name, an email or a consent: the
    // export's email stays where the file has none.
    let mut list = String::from("customer_id,name,email,accepts_marketing\n");
    for c in (0..40_000).filter(|c| c % 3 != 0) {
        let name = if c % 2 == 0 {
            format!("Name {c}")
        } else {
            String::new()
        };
        let email = if c % 5 != 0 {
            format!("new{c}@example.com")
        } else {
            String::new()
        };
        let consent = if c % 2 == 1 { "yes" } else { "" };
        list.push_str(&format!("C{c},{name},{email},{consent}\n"));
    }
    std::fs::write(&customers, &list).unwrap();
    let format = Format::Csv(CsvOptions::default());
    let run = |customers_path: &std::path::Path| {
        extract(
            &export,
            &format,
            None,
            Some((customers_path.to_path_buf(), CustomersOptions::default())),
            (OnBadRows::Fail, MaxBadRows::Default),
            None,
        )
    };
    let out = run(&customers).unwrap();
    let table = table_of(&out);
    assert_eq!(table.num_rows() as u64, line);
    let ids = arrow_cast::cast(table.column(0), &arrow_schema::DataType::Utf8).unwrap();
    let emails = arrow_cast::cast(
        table.column_by_name("email").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let names = arrow_cast::cast(
        table.column_by_name("customer_name").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let (ids, emails, names) = (
        ids.as_string::<i32>(),
        emails.as_string::<i32>(),
        names.as_string::<i32>(),
    );
    let consent = table
        .column_by_name("accepts_marketing")
        .unwrap()
        .as_boolean();
    for i in 0..table.num_rows() {
        let c: u64 = ids.value(i)[1..].parse().unwrap();
        let listed = !c.is_multiple_of(3);
        let email = if listed && !c.is_multiple_of(5) {
            "new"
        } else {
            "old"
        };
        assert_eq!(
            emails.value(i),
            format!("{email}{c}@example.com"),
            "row {i}"
        );
        let name = (listed && c.is_multiple_of(2)).then(|| format!("Name {c}"));
        assert_eq!(
            names.is_valid(i).then(|| names.value(i).to_string()),
            name,
            "row {i}"
        );
        let yes = (listed && c % 2 == 1).then_some(true);
        assert_eq!(
            consent.is_valid(i).then(|| consent.value(i)),
            yes,
            "row {i}"
        );
    }

    // A bad row far into the customers file fails the node, naming that file and line.
    let bad = dir.path().join("bad-customers.csv");
    std::fs::write(&bad, format!("{list}C7,Someone,not-an-email,yes\n")).unwrap();
    let err = run(&bad)
        .expect_err("a bad customers file fails")
        .to_string();
    assert!(err.contains("bad-customers.csv"), "{err}");
    let line = list.lines().count() + 1;
    assert!(err.contains(&format!("line {line}:")), "{err}");
    // A customers file without its key column fails at its header, after the export is read.
    let headless = dir.path().join("no-key.csv");
    std::fs::write(&headless, "name,email\nAda,ada@example.com\n").unwrap();
    let err = run(&headless)
        .expect_err("no customer id column")
        .to_string();
    assert!(
        err.contains("no-key.csv") && err.contains("customer_id"),
        "{err}"
    );
}
