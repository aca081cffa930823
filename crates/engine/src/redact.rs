//! URLs made safe to print: credentials in a URL (`user:password@`, query values such as
//! `?token=...`, a fragment) never reach an error message, a log line or a report.

/// What replaces a hidden part.
const HIDDEN: &str = "***";

/// `url` with its userinfo, every query value and its fragment replaced by `***`; the scheme,
/// host, port, path and query names stay, so the URL is still recognisable. Text without `://`
/// is returned unchanged.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    // The host is after the last `@`: a password may itself contain `@` unescaped.
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(HIDDEN);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, value)) if !value.is_empty() => format!("{name}={HIDDEN}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        if !fragment.is_empty() {
            out.push_str(HIDDEN);
        }
    }
    out
}

/// `text` with every URL in it (a run of non-space characters containing `://`) passed through
/// [`url`]: for messages that may quote a URL among other words, such as a transport error.
pub fn urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '`' | '"' | '\'' | '<' | '>' | '(' | ')') {
            out.push_str(&url(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&url(&word));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden_and_the_host_kept() {
        assert_eq!(
            url("https://user:s3cret@pos.example.com:8443/api/updates"),
            "https://***@pos.example.com:8443/api/updates"
        );
        assert_eq!(url("http://tok@host/x"), "http://***@host/x");
        // A password with an unescaped `@`: everything before the last one is hidden.
        assert_eq!(url("http://u:p@ss@host"), "http://***@host");
    }

    #[test]
    fn query_values_and_fragment_are_hidden_names_kept() {
        assert_eq!(
            url("https://h/p?token=abc&batch=&flag#access_token=xyz"),
            "https://h/p?token=***&batch=&flag#***"
        );
        assert_eq!(url("https://h?key=v"), "https://h?key=***");
    }

    #[test]
    fn plain_urls_and_text_are_unchanged() {
        for s in [
            "http://127.0.0.1:8080/updates",
            "https://h/",
            "not a url",
            "",
        ] {
            assert_eq!(url(s), s);
        }
        // An `@` in the path is not userinfo.
        assert_eq!(url("https://h/a@b"), "https://h/a@b");
    }

    #[test]
    fn urls_inside_a_message_are_redacted() {
        assert_eq!(
            urls_in("POS endpoint `http://u:pw@h/x?k=1` refused: see http://h/doc"),
            "POS endpoint `http://***@h/x?k=***` refused: see http://h/doc"
        );
        assert_eq!(urls_in("no url here"), "no url here");
    }
}
