//! The plain-text alternative of an HTML message: tags stripped, links kept as `text (URL)`,
//! entities decoded, block elements on lines of their own, list items as `- item`.
//!
//! The campaign bodies are small, well-formed templates, so a careful tag scanner does the job
//! of a full HTML parser here: `<script>`/`<style>`/`<head>` contents are dropped, comments too,
//! and anything that does not parse as a tag is kept as text.

/// `html` as readable plain text.
pub(crate) fn from_html(html: &str) -> String {
    let mut out = Text::default();
    let mut rest = html;
    // The href of the link being read and where its text started in `out`.
    let mut link: Option<(String, usize)> = None;
    let mut skip_until: Option<&'static str> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                out.text(rest);
            }
            break;
        };
        if skip_until.is_none() {
            out.text(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        let Some(gt) = tag_end(rest) else {
            // A lone `<` (as in `a < b`) is text.
            if skip_until.is_none() {
                out.text("<");
            }
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("script", false) => skip_until = Some("script"),
            ("style", false) => skip_until = Some("style"),
            ("head", false) => skip_until = Some("head"),
            ("title", false) => skip_until = Some("title"),
            ("br", _) => out.line_break(),
            ("a", false) => link = attribute(tag, "href").map(|h| (h, out.len())),
            ("a", true) => {
                if let Some((href, start)) = link.take() {
                    out.link_end(&href, start);
                }
            }
            ("li", false) => {
                out.block();
                out.text_raw("- ");
            }
            ("img", _) => {
                if let Some(alt) = attribute(tag, "alt").filter(|a| !a.trim().is_empty()) {
                    out.text(&alt);
                }
            }
            ("td" | "th", true) => out.text_raw(" "),
            (
                "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "table"
                | "tr" | "blockquote" | "section" | "article" | "header" | "footer" | "hr" | "li"
                | "body" | "html",
                _,
            ) => out.block(),
            _ => {}
        }
    }
    out.finish()
}

/// The index of the `>` that ends the tag at the start of `s`, skipping quoted attribute
/// values; `None` when `s` does not start a tag.
fn tag_end(s: &str) -> Option<usize> {
    let second = s[1..].chars().next()?;
    if !(second.is_ascii_alphabetic() || second == '/' || second == '!') {
        return None;
    }
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

/// The decoded value of attribute `name` in the inside of a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or(""),
        };
        return Some(decode_entities(raw));
    }
    None
}

/// `text` with HTML character references decoded (the named ones mail templates use, and every
/// numeric one); an unknown reference stays as written.
pub(crate) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        let name = &rest[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            "ndash" => Some('–'),
            "mdash" => Some('—'),
            "hellip" => Some('…'),
            "euro" => Some('€'),
            "pound" => Some('£'),
            "copy" => Some('©'),
            "reg" => Some('®'),
            "trade" => Some('™'),
            "lsquo" => Some('‘'),
            "rsquo" => Some('’'),
            "ldquo" => Some('“'),
            "rdquo" => Some('”'),
            _ => name.strip_prefix('#').and_then(|n| {
                let code = match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse::<u32>().ok(),
                };
                code.and_then(char::from_u32)
                    .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
            }),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text being built: runs of white space in the HTML collapse to one space, block
/// boundaries become (at most one) blank line.
#[derive(Default)]
struct Text {
    out: String,
    /// Line breaks wanted before the next text: 1 for `<br>`, 2 for a block.
    pending_breaks: usize,
}

impl Text {
    fn len(&self) -> usize {
        self.out.len()
    }

    fn flush_breaks(&mut self) {
        if self.pending_breaks > 0 && !self.out.is_empty() {
            while self.out.ends_with(' ') {
                self.out.pop();
            }
            let have = self.out.len() - self.out.trim_end_matches('\n').len();
            for _ in have..self.pending_breaks {
                self.out.push('\n');
            }
        }
        self.pending_breaks = 0;
    }

    fn text(&mut self, html_text: &str) {
        let decoded = decode_entities(html_text);
        for (i, word) in decoded.split(char::is_whitespace).enumerate() {
            if i > 0 && !self.out.is_empty() && !self.out.ends_with([' ', '\n']) {
                self.out.push(' ');
            }
            if !word.is_empty() {
                self.flush_breaks();
                self.out.push_str(word);
            }
        }
    }

    fn text_raw(&mut self, s: &str) {
        self.flush_breaks();
        self.out.push_str(s);
    }

    fn line_break(&mut self) {
        self.pending_breaks = self.pending_breaks.max(1);
    }

    fn block(&mut self) {
        self.pending_breaks = 2;
    }

    /// Appends ` (URL)` after a link's text, unless the text is the URL itself.
    fn link_end(&mut self, href: &str, start: usize) {
        let href = href.trim();
        if href.is_empty() || href.starts_with('#') || href.starts_with("javascript:") {
            return;
        }
        let shown = href.strip_prefix("mailto:").unwrap_or(href);
        let label = self.out[start.min(self.out.len())..].trim();
        if label == shown || label == href {
            return;
        }
        if label.is_empty() {
            self.text_raw(shown);
        } else {
            let trimmed = self.out.trim_end().len();
            self.out.truncate(trimmed);
            self.out.push_str(&format!(" ({shown})"));
        }
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        let mut text = lines.join("\n").trim().to_string();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_links_and_decodes_entities() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
            <h1>Hi Zo&euml; &amp; Bob</h1><p>Your <b>offer</b>:\n  10&#37; off &lt;today&gt;.</p>\
            <ul><li>Tea &ndash; 2&nbsp;kg</li><li><a href=\"https://shop.example/p?a=1&amp;b=2\">See it</a></li></ul>\
            <p><a href='https://shop.example/'>https://shop.example/</a><br>Bye<!-- hidden --></p>\
            <script>alert(1)</script><img src=x alt=\"Logo\"></body></html>";
        let text = from_html(html);
        assert_eq!(
            text,
            "Hi Zo&euml; & Bob\n\nYour offer: 10% off <today>.\n\n- Tea – 2 kg\n\n- See it \
             (https://shop.example/p?a=1&b=2)\n\nhttps://shop.example/\nBye\n\nLogo\n"
        );
    }

    #[test]
    fn plain_text_and_stray_brackets_stay() {
        assert_eq!(from_html("a < b and c > d"), "a < b and c > d\n");
        assert_eq!(from_html("&#0; &#x1F600; &bogus; &"), "&#0; 😀 &bogus; &\n");
        assert_eq!(
            from_html("<a href=\"mailto:x@example.com\">Write</a>"),
            "Write (x@example.com)\n"
        );
    }
}
