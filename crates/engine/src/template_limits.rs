//! A bound on the size of one template tag or row expression, checked before minijinja sees it.
//!
//! minijinja builds a chain like `a*a*a*...` or `x|f|f|f...` as a tree one level deeper per
//! operator and walks it recursively: tens of thousands of operators overflow the stack. Every
//! level takes at least one character, so bounding the characters of each `{{ }}` / `{% %}` tag
//! and of each expression bounds the depth, far above anything written by hand.

/// The most characters one tag or expression may have.
pub const MAX_EXPRESSION_CHARS: usize = 2000;

/// Checks a bare expression (a `when:` rule).
pub fn check_expression(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > MAX_EXPRESSION_CHARS {
        return Err(too_long("expression", chars));
    }
    Ok(())
}

/// Checks each `{{ ... }}` and `{% ... %}` tag of a template (an unclosed one runs to the end).
pub fn check_template(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = find_open(rest) {
        let close = if rest[open..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let body = &rest[open + 2..];
        let end = body.find(close).unwrap_or(body.len());
        let chars = body[..end].chars().count();
        if chars > MAX_EXPRESSION_CHARS {
            return Err(too_long("template tag", chars));
        }
        rest = &body[(end + close.len()).min(body.len())..];
    }
    Ok(())
}

/// [`check_template`] as a minijinja error, for code that reports those.
pub fn checked_template(text: &str) -> Result<&str, minijinja::Error> {
    check_template(text)
        .map(|()| text)
        .map_err(|msg| minijinja::Error::new(minijinja::ErrorKind::SyntaxError, msg))
}

fn find_open(text: &str) -> Option<usize> {
    match (text.find("{{"), text.find("{%")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn too_long(what: &str, chars: usize) -> String {
    format!("{what} of {chars} characters is longer than the {MAX_EXPRESSION_CHARS} allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tags_and_expressions_are_refused_short_ones_kept() {
        let long = format!("a{}", "*a".repeat(MAX_EXPRESSION_CHARS));
        assert!(check_expression(&long).is_err());
        assert!(check_expression("r >= 4 && clv >= params.vip").is_ok());
        let err = check_template(&format!("Hi {{{{ {long} }}}}")).unwrap_err();
        assert!(err.starts_with("template tag of 4003 characters"), "{err}");
        assert!(check_template(&format!("{{% if {long} %}}x{{% endif %}}")).is_err());
        // Unclosed: measured to the end.
        assert!(check_template(&format!("{{{{ {long}")).is_err());
        // Long text between short tags is fine.
        let text = format!(
            "{{{{ a }}}}{}{{% if b %}}c{{% endif %}}",
            "x".repeat(100_000)
        );
        assert!(check_template(&text).is_ok());
    }
}
