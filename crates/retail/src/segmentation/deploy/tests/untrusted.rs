//! Customer data is untrusted input: names, addresses, subjects, product names and categories
//! that try to add mail headers, run spreadsheet formulas or break out of HTML, and the
//! permissions of the files holding them.

use std::os::unix::fs::PermissionsExt;

use super::*;

/// A parsed `.eml`: headers unfolded, in order, the decoded HTML body and its plain-text
/// alternative.
pub(super) struct Eml {
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
    pub(super) text: String,
}

impl Eml {
    /// Every value of a header (names compare without case).
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of a header.
    pub(super) fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "exactly one {name}: {:?}", self.headers);
        all[0]
    }
}

/// A header block as a mail reader reads it: a line starting with a space or tab continues the
/// header before it, anything else is `Name: value`.
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "a bare CR or LF in the header block: {line:?}"
        );
        assert!(line.len() <= 998, "header line too long: {line}");
        if line.starts_with([' ', '\t']) {
            headers
                .last_mut()
                .expect("a header to continue")
                .1
                .push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("Name: value");
            headers.push((name.to_string(), value.trim_start().to_string()));
        }
    }
    headers
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parses a message as a mail reader would: headers end at the first empty line; the body is
/// `multipart/alternative` with a quoted-printable UTF-8 `text/plain` part, then a
/// `text/html` part.
pub(super) fn parse_eml(text: &str) -> Eml {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("headers, blank line, body");
    let headers = parse_headers(head);
    let content_type = header(&headers, "Content-Type").expect("a Content-Type");
    let boundary = content_type
        .strip_prefix("multipart/alternative;")
        .and_then(|rest| rest.trim().strip_prefix("boundary=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("multipart/alternative with a boundary: {content_type}"));
    let delimiter = format!("--{boundary}");
    let parts: Vec<&str> = body.split(delimiter.as_str()).collect();
    assert_eq!(
        parts.len(),
        4,
        "preamble, two parts and the closing delimiter: {body}"
    );
    assert!(parts[3].starts_with("--"), "the closing delimiter: {body}");
    let mut decoded = Vec::new();
    for (part, want) in parts[1..3].iter().zip(["text/plain", "text/html"]) {
        let part = part
            .strip_prefix("\r\n")
            .expect("a part starts on its own line");
        let (head, body) = part
            .split_once("\r\n\r\n")
            .expect("part headers, blank line");
        let part_headers = parse_headers(head);
        assert_eq!(
            header(&part_headers, "Content-Type"),
            Some(format!("{want}; charset=utf-8").as_str()),
            "{part_headers:?}"
        );
        assert_eq!(
            header(&part_headers, "Content-Transfer-Encoding"),
            Some("quoted-printable"),
            "a quoted-printable part: {part_headers:?}"
        );
        let body = body.strip_suffix("\r\n").unwrap_or(body);
        decoded.push(qp_decode(body));
    }
    let html = decoded.pop().expect("html part");
    let plain = decoded.pop().expect("text part");
    Eml {
        headers,
        body: html,
        text: plain,
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = TABLE.iter().position(|&t| t == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`); white space between two encoded words is
/// dropped, as RFC 2047 says.
pub(super) fn decode_words(value: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = value;
    let mut after_word = false;
    while !rest.is_empty() {
        let start = rest.find("=?");
        let Some(start) = start else {
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.extend_from_slice(between.as_bytes());
        }
        let word = &rest[start + 2..];
        let end = word.find("?=").expect("end of encoded word");
        let mut parts = word[..end].splitn(3, '?');
        let (charset, encoding, text) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(charset.eq_ignore_ascii_case("utf-8"), "{value}");
        assert!(encoding.eq_ignore_ascii_case("b"), "{value}");
        out.extend(base64_decode(text));
        rest = &word[end + 2..];
        after_word = true;
    }
    String::from_utf8(out).expect("UTF-8")
}

/// `(display name, address)` of a single mailbox header.
pub(super) fn mailbox_of(value: &str) -> (String, String) {
    let (name, address) = match value.rfind('<') {
        Some(l) => (value[..l].trim(), &value[l + 1..value.len() - 1]),
        None => ("", value),
    };
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => decode_words(name),
    };
    (name, address.to_string())
}

fn one_customer(id: &str, email: &str, name: &'static str) -> Inputs {
    let row: Row<'static> = (
        Box::leak(id.to_string().into_boxed_str()),
        "vip",
        Box::leak(email.to_string().into_boxed_str()),
        name,
        true,
        10.0,
        -12.5,
        1,
        0.5,
    );
    inputs(vec![("campaign_vip", campaign_table(&[row]))])
}

pub(super) fn deploy_to(dir: &Path, extra: &str) -> Arc<dyn Node> {
    configure(&format!("out_dir: {}\n{extra}", dir.display())).unwrap()
}

#[test]
fn a_name_carrying_a_bcc_header_stays_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let evil = "Bob\r\nBcc: victim@evil.example";
    run(
        &node,
        Stores::new().ctx("r1"),
        one_customer("C1", "bob@example.com", evil),
    )
    .unwrap();
    let text = read(&dir.path().join("messages/vip/C1.eml"));
    let eml = parse_eml(&text);
    assert!(eml.all("Bcc").is_empty(), "{text}");
    assert!(eml.all("Cc").is_empty(), "{text}");
    let head = text.split_once("\r\n\r\n").unwrap().0;
    assert!(!head.to_ascii_lowercase().contains("\nbcc:"), "{text}");
    // The name is one line of text: the line break became a space, nothing else changed.
    let (name, address) = mailbox_of(eml.one("To"));
    assert_eq!(name, "Bob Bcc: victim@evil.example");
    assert_eq!(address, "bob@example.com");
    // The subject carried the same text (deploy does not trust the campaign node to clean it).
    assert_eq!(
        decode_words(eml.one("Subject")),
        "Café treats for Bob Bcc: victim@evil.example"
    );
    assert_eq!(eml.one("X-Flow-Customer"), "C1");
    assert_eq!(eml.one("From"), "\"Corner Shop\" <shop@example.com>");
}

#[test]
fn header_values_from_data_cannot_add_headers() {
    // The segment and the customer id are header values too (X-Flow-Segment, X-Flow-Customer).
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let table = campaign_table(&[(
        "C1\nX-Evil: 1",
        "vip\r\nBcc: a@evil.example",
        "ada@example.com",
        "Ada",
        true,
        1.0,
        1.0,
        1,
        0.5,
    )]);
    run(
        &node,
        Stores::new().ctx("r1"),
        inputs(vec![("campaign_vip", table)]),
    )
    .unwrap();
    let seg_dir = dir.path().join("messages/vip__Bcc__a@evil.example");
    let path = seg_dir.join("C1_X-Evil__1.eml");
    let eml = parse_eml(&read(&path));
    assert!(eml.all("Bcc").is_empty() && eml.all("X-Evil").is_empty());
    assert_eq!(
        decode_words(eml.one("X-Flow-Segment")),
        "vip\r\nBcc: a@evil.example"
    );
    assert_eq!(decode_words(eml.one("X-Flow-Customer")), "C1\nX-Evil: 1");
}

#[test]
fn non_ascii_and_long_names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let names: [&'static str; 4] = [
        "Zoë Ærøskøbing",
        "山田 太郎",
        "Ünïcödé \"quoted\" \\ back-slashed, with a comma; and more text than fits on one line",
        "O'Brien, Pat",
    ];
    let rows: Vec<Row<'static>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id: &'static str = Box::leak(format!("C{i}").into_boxed_str());
            let email: &'static str = Box::leak(format!("c{i}@example.com").into_boxed_str());
            (id, "vip", email, *n, true, 1.0, 1.0, 1, 0.5)
        })
        .collect();
    run(
        &node,
        Stores::new().ctx("r1"),
        inputs(vec![("campaign_vip", campaign_table(&rows))]),
    )
    .unwrap();
    for (i, expected) in names.iter().enumerate() {
        let text = read(&dir.path().join(format!("messages/vip/C{i}.eml")));
        assert!(
            text.split("\r\n").all(|l| l.len() <= 998),
            "no line is longer than RFC 5322 allows: {text}"
        );
        let eml = parse_eml(&text);
        let (name, address) = mailbox_of(eml.one("To"));
        assert_eq!(&name, expected, "{text}");
        assert_eq!(address, format!("c{i}@example.com"));
        assert_eq!(
            decode_words(eml.one("Subject")),
            format!("Café treats for {expected}")
        );
        assert_eq!(
            eml.body.trim_end(),
            format!("<p>Hi {expected} &amp; welcome = yes</p>")
        );
    }
}

#[test]
fn unusable_addresses_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let rows: [Row<'static>; 5] = [
        ("C1", "vip", "ok@example.com", "Ok", true, 1.0, 1.0, 1, 0.5),
        (
            "C2",
            "vip",
            "bob@example.com\r\nBcc: victim@evil.example",
            "Bob",
            true,
            1.0,
            1.0,
            1,
            0.5,
        ),
        ("C3", "vip", "not an address", "Cy", true, 1.0, 1.0, 1, 0.5),
        ("C4", "vip", "a@b@c.example", "Di", true, 1.0, 1.0, 1, 0.5),
        (
            "C5",
            "vip",
            "a@example.com, b@example.com",
            "Ed",
            true,
            1.0,
            1.0,
            1,
            0.5,
        ),
    ];
    let out = run(
        &node,
        Stores::new().ctx("r1"),
        inputs(vec![("campaign_vip", campaign_table(&rows))]),
    )
    .unwrap();
    let written: Vec<String> = std::fs::read_dir(dir.path().join("messages/vip"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["C1.eml"]);
    assert_eq!(out.meta["messages_sent"], 1);
    assert_eq!(
        json_out(&out)["messages_skipped"]["invalid email address"],
        4
    );
    let summary: Json = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    assert_eq!(summary["messages_skipped"]["invalid email address"], 4);
    let mut segments = csv::Reader::from_path(dir.path().join("segments.csv")).unwrap();
    let headers = segments.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let rows: Vec<(String, String, String)> = segments
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[col("customer_id")].to_string(),
                r[col("message_sent")].to_string(),
                r[col("skip_reason")].to_string(),
            )
        })
        .collect();
    assert_eq!(rows[0], ("C1".into(), "true".into(), String::new()));
    for r in &rows[1..] {
        assert_eq!(
            (r.1.as_str(), r.2.as_str()),
            ("false", "invalid email address")
        );
    }
}

#[test]
fn an_invalid_sender_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let table = campaign_table(&[("C1", "vip", "ok@example.com", "Ok", true, 1.0, 1.0, 1, 0.5)]);
    let mut columns: Vec<(String, ArrayRef)> = table
        .schema()
        .fields()
        .iter()
        .zip(table.columns())
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    for (name, col) in &mut columns {
        if name == "sender" {
            *col = Arc::new(StringArray::from(vec![
                "Shop <shop@example.com>\r\nBcc: x@y.z",
            ]));
        }
    }
    let table = RecordBatch::try_from_iter(columns).unwrap();
    let err = run(
        &node,
        Stores::new().ctx("r1"),
        inputs(vec![("campaign_vip", table)]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sender") && err.contains("is not an email address") && err.contains("C1"),
        "{err}"
    );
}

#[test]
fn list_unsubscribe_with_one_click() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(
        dir.path(),
        "unsubscribe_url: https://shop.example/unsubscribe?c={customer_id}&s={segment}\n\
         unsubscribe_email: leave@shop.example\n",
    );
    run(
        &node,
        Stores::new().ctx("r1"),
        one_customer("C 1/ä", "a@example.com", "Ada"),
    )
    .unwrap();
    let eml = parse_eml(&read(&dir.path().join("messages/vip/C_1__.eml")));
    assert_eq!(
        eml.one("List-Unsubscribe"),
        "<https://shop.example/unsubscribe?c=C%201%2F%C3%A4&s=vip>, <mailto:leave@shop.example>"
    );
    assert_eq!(
        eml.one("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );

    // Only a mailto: no one-click header. Without either: neither header.
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "unsubscribe_email: leave@shop.example\n");
    run(
        &node,
        Stores::new().ctx("r1"),
        one_customer("C1", "a@example.com", "Ada"),
    )
    .unwrap();
    let eml = parse_eml(&read(&dir.path().join("messages/vip/C1.eml")));
    assert_eq!(eml.one("List-Unsubscribe"), "<mailto:leave@shop.example>");
    assert!(eml.all("List-Unsubscribe-Post").is_empty());
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "unsubscribe_url: ''\n");
    run(
        &node,
        Stores::new().ctx("r1"),
        one_customer("C1", "a@example.com", "Ada"),
    )
    .unwrap();
    let eml = parse_eml(&read(&dir.path().join("messages/vip/C1.eml")));
    assert!(eml.all("List-Unsubscribe").is_empty());

    // Bad values fail validation, naming the parameter.
    for (yaml, needle) in [
        ("unsubscribe_url: http://shop.example/u\n", "https://"),
        (
            "unsubscribe_url: 'https://shop.example/u <x>'\n",
            "must not contain",
        ),
        (
            "unsubscribe_email: not-an-address\n",
            "invalid email address",
        ),
    ] {
        let Err(errs) = configure(&format!("out_dir: /tmp/x\n{yaml}")) else {
            panic!("{yaml} is accepted")
        };
        let text = format!("{errs:?}");
        assert!(
            text.contains("unsubscribe_") && text.contains(needle),
            "{yaml}: {text}"
        );
    }
}

#[test]
fn the_message_id_is_stable_across_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let stores = Stores::new();
    let path = dir.path().join("messages/vip/C1.eml");
    run(&node, stores.ctx("r1"), first_run_inputs()).unwrap();
    let first = read(&path);
    run(&node, stores.ctx("r1"), first_run_inputs()).unwrap();
    assert_eq!(
        read(&path),
        first,
        "a retried attempt writes the same bytes"
    );
    let eml = parse_eml(&first);
    assert_eq!(
        eml.one("Message-ID"),
        "<r1/deploy/message/vip/C1@example.com>"
    );
    assert_eq!(eml.one("Date"), "Mon, 01 Apr 2024 04:00:00 +0000");
}

/// Cells of a CSV file by column name.
fn csv_column(path: &Path, column: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {}", path.display()));
    reader
        .records()
        .map(|r| r.unwrap()[at].to_string())
        .collect()
}

#[test]
fn formula_cells_are_neutralised_and_numbers_kept() {
    for messages in ["eml", "csv"] {
        let dir = tempfile::tempdir().unwrap();
        let node = deploy_to(dir.path(), &format!("messages: {messages}\n"));
        let names: [&'static str; 6] = [
            "=HYPERLINK(\"http://evil.example\",\"click\")",
            "+SUM(A1:A9)",
            "-2+3",
            "@cmd",
            "\tTabbed",
            "Plain Name",
        ];
        let rows: Vec<Row<'static>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id: &'static str = Box::leak(format!("C{i}").into_boxed_str());
                let email: &'static str = Box::leak(format!("c{i}@example.com").into_boxed_str());
                (id, "vip", email, *n, true, 1.0, -12.5, 1, 0.5)
            })
            .collect();
        let recs = recommendation_table(&[
            ("C0", "vip", 1, "=cmd|' /C calc'!A0"),
            ("C1", "vip", 1, "@SUM(1)"),
            ("C2", "vip", 1, "Tea"),
        ]);
        run(
            &node,
            Stores::new().ctx("r1"),
            inputs(vec![
                ("campaign_vip", campaign_table(&rows)),
                ("rec_vip", recs),
            ]),
        )
        .unwrap();
        let segments = dir.path().join("segments.csv");
        let expected: Vec<String> = names
            .iter()
            .map(|n| {
                if n.starts_with(['=', '+', '-', '@', '\t']) {
                    format!("'{n}")
                } else {
                    n.to_string()
                }
            })
            .collect();
        assert_eq!(csv_column(&segments, "customer_name"), expected);
        // A negative amount in a number column stays a number.
        assert!(
            csv_column(&segments, "total_spend")
                .iter()
                .all(|v| v == "-12.5"),
            "{:?}",
            csv_column(&segments, "total_spend")
        );
        let recs = dir.path().join("recommendations.csv");
        assert_eq!(
            csv_column(&recs, "product_name"),
            ["'=cmd|' /C calc'!A0", "'@SUM(1)", "Tea"]
        );
        assert_eq!(csv_column(&recs, "rank"), ["1", "1", "1"]);
        if messages == "csv" {
            let path = dir.path().join("messages/vip.csv");
            assert_eq!(csv_column(&path, "customer_name"), expected);
            assert!(
                csv_column(&path, "subject")
                    .iter()
                    .all(|s| s.starts_with("Café treats for ")),
                "subjects start with text and are left as they are"
            );
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and folder under `root`, with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push((path.clone(), mode(&path)));
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_and_folder_with_personal_data_is_private() {
    for messages in ["eml", "csv"] {
        let base = tempfile::tempdir().unwrap();
        let out_dir = base.path().join("out/2024-04-01");
        let node = configure(&format!(
            "out_dir: {}\nmessages: {messages}\n",
            out_dir.display()
        ))
        .unwrap();
        run(&node, Stores::new().ctx("r1"), first_run_inputs()).unwrap();
        // The folders deploy created, and everything inside.
        assert_eq!(mode(&base.path().join("out")), 0o700);
        assert_eq!(mode(&out_dir), 0o700);
        let all = modes(&out_dir);
        assert!(all.len() >= 7, "{all:?}");
        for (path, m) in &all {
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(*m, want, "{} is {m:o}", path.display());
        }
        let names: Vec<String> = all
            .iter()
            .map(|(p, _)| p.strip_prefix(&out_dir).unwrap().display().to_string())
            .collect();
        for f in [
            "segments.csv",
            "recommendations.csv",
            "summary.json",
            "report.html",
            "messages",
        ] {
            assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
        }
    }
    // A folder that already exists keeps its permissions.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    run(
        &deploy_to(dir.path(), ""),
        Stores::new().ctx("r1"),
        first_run_inputs(),
    )
    .unwrap();
    assert_eq!(mode(dir.path()), 0o750);
    assert_eq!(mode(&dir.path().join("segments.csv")), 0o600);
}

#[test]
fn the_report_escapes_segment_names_labels_offers_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), "");
    let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    let table = campaign_table(&[("C1", evil, "ok@example.com", "Ok", false, 1.0, 1.0, 1, 0.5)]);
    // The skip reason and offer replaced, a segment label added: all text from the data.
    let evil_column =
        |tag: &str| -> ArrayRef { Arc::new(StringArray::from(vec![format!("{evil}{tag}")])) };
    let mut columns: Vec<(String, ArrayRef)> = table
        .schema()
        .fields()
        .iter()
        .zip(table.columns())
        .filter(|(f, _)| !matches!(f.name().as_str(), "skip_reason" | "offer"))
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    for (name, tag) in [("skip_reason", "R"), ("offer", "O"), ("segment_label", "L")] {
        columns.push((name.to_string(), evil_column(tag)));
    }
    let table = RecordBatch::try_from_iter(columns).unwrap();
    run(
        &node,
        Stores::new().ctx("r1"),
        inputs(vec![
            ("campaign_vip", table),
            (
                "rec_vip",
                recommendation_table(&[("C1", evil, 1, "<b>P</b>")]),
            ),
        ]),
    )
    .unwrap();
    let report = read(&dir.path().join("report.html"));
    assert!(!report.contains("<script"), "{report}");
    assert!(!report.contains("<img"), "{report}");
    assert!(!report.contains("\"'>"), "{report}");
    // Each value is shown, escaped: the segment name, its label, its offer and the skip reason.
    let escaped =
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&gt;&lt;img src=x onerror=alert(2)&gt;";
    for tag in ["", "L", "O", "R"] {
        assert!(
            report.contains(&format!("{escaped}{tag}")),
            "{tag}: {report}"
        );
    }
}
