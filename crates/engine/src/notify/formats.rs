//! The message rendered as a request body: the plain JSON object, a Slack incoming-webhook
//! message, or a Microsoft Teams incoming-webhook message with an Adaptive Card.
//!
//! Every piece of run data (names, error texts, paths) is escaped for the format, so an error
//! text cannot add markup, links or mentions: Slack gets `&`, `<` and `>` as entities (no
//! `<!channel>` can form) and data only inside code spans and blocks it cannot close; Teams gets
//! data only in `TextRun`s, which do not interpret markdown.

use serde_json::{Value as Json, json};

use super::message::{Message, human_duration};
use crate::model::NotifyFormat;
use crate::store::RunStatus;

/// Failed nodes a chat message lists one by one; the rest are counted.
const NODES_SHOWN: usize = 10;
/// Slack rejects a section whose text is longer than 3,000 characters.
const SLACK_SECTION_CHARS: usize = 2_900;

/// The request body for `format`.
pub fn render(format: NotifyFormat, message: &Message) -> Json {
    match format {
        NotifyFormat::Json => json(message),
        NotifyFormat::Slack => slack(message),
        NotifyFormat::Teams => teams(message),
    }
}

/// The message object itself.
pub fn json(message: &Message) -> Json {
    serde_json::to_value(message).expect("a message serializes")
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

// --- Slack ---------------------------------------------------------------------------------

/// `{"text": ..., "blocks": [...]}` with mrkdwn sections.
pub fn slack(m: &Message) -> Json {
    let failed = m.status == RunStatus::Failed;
    let icon = if failed { ":x:" } else { ":white_check_mark:" };
    let mut blocks = vec![section(format!(
        "{icon} *Run {}*: workflow {} · run {}",
        m.status_str(),
        slack_code(&m.workflow),
        slack_code(&m.run_id)
    ))];
    let fields = [
        ("Trigger", slack_code(&m.fired_by)),
        ("Duration", slack_escape(&human_duration(m.duration_secs))),
        ("Started", slack_escape(&time(&m.started_at))),
        ("Finished", slack_escape(&time(&m.finished_at))),
        ("Workflow file", slack_code(&m.workflow_file)),
    ];
    blocks.push(json!({
        "type": "section",
        "fields": fields
            .iter()
            .map(|(label, value)| json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") }))
            .collect::<Vec<_>>(),
    }));
    for node in m.failed_nodes.iter().take(NODES_SHOWN) {
        blocks.push(section(format!(
            "*Node* {} *failed:*\n{}",
            slack_code(&node.node),
            slack_block(&node.error)
        )));
    }
    if m.failed_nodes.len() > NODES_SHOWN {
        blocks.push(section(format!(
            "…and {} more failed nodes",
            m.failed_nodes.len() - NODES_SHOWN
        )));
    }
    if let Some(error) = &m.error {
        blocks.push(section(format!("*Error:*\n{}", slack_block(error))));
    }
    if let Some(cmd) = &m.resume_command {
        blocks.push(section(format!("*Resume with:* {}", slack_code(cmd))));
    }
    if let Some(url) = &m.ui_url {
        // In `<url|label>` the URL must not contain `|` or `>`; escaping keeps it one link.
        let url = slack_escape(url).replace('|', "%7C");
        blocks.push(section(format!("<{url}|Open the run>")));
    }
    json!({ "text": slack_escape(&m.headline()), "blocks": blocks })
}

fn section(text: String) -> Json {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// Slack's required escapes: `&`, `<` and `>` as entities, so no link, mention or
/// `<!channel>` can be written by data. Stops before [`SLACK_SECTION_CHARS`].
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = 0;
    for c in s.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => {
                if chars >= SLACK_SECTION_CHARS {
                    out.push('…');
                    return out;
                }
                out.push(c);
                chars += 1;
                continue;
            }
        };
        if chars + piece.len() > SLACK_SECTION_CHARS {
            out.push('…');
            return out;
        }
        out.push_str(piece);
        chars += piece.len();
    }
    out
}

/// Data as an inline code span: formatting characters inside are shown as they are, and a
/// backquote in the data (which would close the span) becomes `ˋ`.
fn slack_code(s: &str) -> String {
    let s = s.replace('`', "ˋ").replace(['\n', '\r'], " ");
    format!("`{}`", slack_escape(&s))
}

/// Data as a code block: runs of backquotes in it are broken up with zero-width spaces so the
/// data cannot close the block.
fn slack_block(s: &str) -> String {
    let mut text = String::with_capacity(s.len());
    let mut prev_tick = false;
    for c in s.chars() {
        if c == '`' && prev_tick {
            text.push('\u{200b}');
        }
        prev_tick = c == '`';
        text.push(c);
    }
    // A block starting or ending with a backquote would merge with the fence.
    format!("```\u{200b}{}\u{200b}```", slack_escape(&text))
}

// --- Teams ---------------------------------------------------------------------------------

/// `{"type": "message", "attachments": [{ adaptive card }]}`.
pub fn teams(m: &Message) -> Json {
    let failed = m.status == RunStatus::Failed;
    let mut body = vec![json!({
        "type": "RichTextBlock",
        "inlines": [
            run_bold(&format!("flow run {}: ", m.status_str()), if failed { "attention" } else { "good" }),
            text_run(&m.workflow),
        ],
    })];
    let facts = [
        ("Run", m.run_id.clone()),
        ("Trigger", m.fired_by.clone()),
        ("Started", time(&m.started_at)),
        ("Finished", time(&m.finished_at)),
        ("Duration", human_duration(m.duration_secs)),
        ("Workflow file", m.workflow_file.clone()),
    ];
    for (label, value) in facts {
        body.push(labelled(label, &value, false));
    }
    for node in m.failed_nodes.iter().take(NODES_SHOWN) {
        body.push(json!({
            "type": "RichTextBlock",
            "separator": true,
            "inlines": [text_run("Node "), run_bold(&node.node, "default"), text_run(" failed:")],
        }));
        body.push(monospace(&node.error));
    }
    if m.failed_nodes.len() > NODES_SHOWN {
        body.push(json!({
            "type": "RichTextBlock",
            "inlines": [text_run(&format!("…and {} more failed nodes", m.failed_nodes.len() - NODES_SHOWN))],
        }));
    }
    if let Some(error) = &m.error {
        body.push(labelled("Error", "", false));
        body.push(monospace(error));
    }
    if let Some(cmd) = &m.resume_command {
        body.push(labelled("Resume with", cmd, true));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(url) = &m.ui_url {
        card["actions"] =
            json!([{ "type": "Action.OpenUrl", "title": "Open the run", "url": url }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// A `TextRun`: plain text, no markdown is interpreted in it.
fn text_run(text: &str) -> Json {
    json!({ "type": "TextRun", "text": text })
}

fn run_bold(text: &str, color: &str) -> Json {
    json!({ "type": "TextRun", "text": text, "weight": "bolder", "color": color })
}

fn labelled(label: &str, value: &str, mono: bool) -> Json {
    let mut value = text_run(value);
    if mono {
        value["fontType"] = json!("monospace");
    }
    json!({
        "type": "RichTextBlock",
        "spacing": "none",
        "inlines": [run_bold(&format!("{label}: "), "default"), value],
    })
}

fn monospace(text: &str) -> Json {
    json!({
        "type": "RichTextBlock",
        "inlines": [{ "type": "TextRun", "text": text, "fontType": "monospace" }],
    })
}
