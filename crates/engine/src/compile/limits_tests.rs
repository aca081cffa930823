use super::*;

fn depth_error(text: &str) -> Option<(usize, usize)> {
    match check(text) {
        Ok(()) => None,
        Err(LimitError::TooDeep { at }) => Some((at.line, at.col)),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn the_shipped_workflows_pass() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../workflows")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(check(&text), Ok(()), "{}", path.display());
        }
    }
}

#[test]
fn deep_flow_nesting_is_located_at_the_bracket_past_the_limit() {
    assert_eq!(depth_error(&"[".repeat(MAX_DEPTH)), None);
    assert_eq!(
        depth_error(&"[".repeat(MAX_DEPTH + 1)),
        Some((1, MAX_DEPTH + 1))
    );
    assert_eq!(
        depth_error(&"{a: ".repeat(40_000)),
        Some((1, 4 * MAX_DEPTH + 1))
    );
    // Balanced brackets do not add up along a line.
    let wide = format!("a: {}\n", "[[x]], ".repeat(10_000));
    assert_eq!(depth_error(&wide), None);
}

#[test]
fn deep_block_nesting_is_refused() {
    // Mappings, one column deeper each.
    let maps: String = (0..1000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_eq!(depth_error(&maps), Some((MAX_DEPTH + 1, MAX_DEPTH + 1)));
    // Sequences nested on one line.
    let dashes = format!("{}x\n", "- ".repeat(10_000));
    assert_eq!(depth_error(&dashes), Some((1, 2 * MAX_DEPTH + 1)));
    // Sequence items holding mappings, block-indented.
    let mixed: String = (0..200)
        .map(|i| format!("{}- k:\n", "  ".repeat(i)))
        .collect();
    assert!(depth_error(&mixed).is_some());
}

#[test]
fn levels_close_when_indentation_returns() {
    let mut text = String::new();
    for _ in 0..100 {
        for i in 0..20 {
            text.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        text.push_str(&format!("{}- [a, {{b: [c]}}]\n", "  ".repeat(20)));
    }
    assert_eq!(depth_error(&text), None);
}

#[test]
fn scalars_and_comments_do_not_nest() {
    let deep = "[".repeat(1000);
    let cases = [
        format!("a: '{deep}'\n"),
        format!("a: \"{deep}\\\"\"\n"),
        format!("a: \"x\n  {deep}\n  y\"\nb: 1\n"),
        format!("a: 'it''s\n  {deep}'\n"),
        format!("a: |\n  {deep}\n\n  - - - -\nb: 1\n"),
        format!("- >-\n  {deep}\n- x\n"),
        format!("a: x {deep}\n"),
        format!("a: plain text\n  continued {deep}\n  - - - -\n"),
        format!("a: 1 # {deep}\n"),
        format!("# {deep}\n"),
        format!("[a, '{deep}', \"{deep}\"]\n"),
        format!("a: it's {deep}\n"),
        format!("a: &anchor !tag '{deep}'\n"),
    ];
    for text in &cases {
        assert_eq!(depth_error(text), None, "{text:.80}");
    }
}

#[test]
fn quotes_inside_plain_scalars_open_nothing() {
    // `it's` does not open a quoted scalar that would hide the brackets after it.
    let text = format!("a: it's\nb: {}\n", "[".repeat(MAX_DEPTH + 1));
    // `b` opens one level, so the 64th bracket is one too many.
    assert_eq!(depth_error(&text), Some((2, MAX_DEPTH + 3)));
}

#[test]
fn a_byte_order_mark_and_crlf_are_not_content() {
    let text = format!("\u{feff}a:\r\n  b: {}\r\n", "[".repeat(MAX_DEPTH));
    assert_eq!(depth_error(&text), Some((2, MAX_DEPTH + 4)));
}

#[test]
fn size_limit_is_located_where_it_is_crossed() {
    let line = format!("# {}\n", "x".repeat(1021));
    let text = line.repeat(MAX_BYTES / 1024 + 1);
    match check(&text) {
        Err(LimitError::TooLarge { at }) => assert_eq!((at.line, at.col), (8193, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(check(&line.repeat(MAX_BYTES / 1024)), Ok(()));
}

#[test]
fn the_scan_is_linear() {
    // 8 MiB of the worst shapes: each is checked in well under a second even unoptimised.
    for text in [
        "[".repeat(MAX_BYTES),
        "- ".repeat(MAX_BYTES / 2),
        "[a], ".repeat(MAX_BYTES / 5),
        "'".repeat(MAX_BYTES),
        format!("a: \"{}", "\\".repeat(MAX_BYTES - 10)),
    ] {
        let started = std::time::Instant::now();
        let _ = check(&text);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?} for {:.20}",
            started.elapsed(),
            text
        );
    }
}
