//! One campaign message as an RFC 5322 / MIME document, built with lettre's message builder.
//!
//! Names, subjects, segment names and customer ids come from customer data, so they only ever
//! reach a header through lettre's encoders: a display name is a quoted string or an RFC 2047
//! encoded word, and a header value with a line break or non-ASCII text is an encoded word, so
//! no CR/LF from the data can start a header of its own. A display name or subject is one line
//! of text, so line breaks and other control characters in them become spaces first
//! (`Bob\r\nBcc: victim@example.com` becomes the name `Bob Bcc: victim@example.com`).
//! Addresses are parsed, never pasted: a customer whose address does not parse gets no message.

use std::time::SystemTime;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, MultiPartKind, SinglePart};
use lettre::{Address, Message};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::super::campaign::one_line;
use super::plain_text;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MessageError {
    #[error("invalid email address `{address}`: {reason}")]
    InvalidRecipient { address: String, reason: String },
    #[error(
        "the sender `{sender}` is not an email address (write shop@example.com or Shop <shop@example.com>): {reason}"
    )]
    InvalidSender { sender: String, reason: String },
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// The recipient's address, parsed; an error when it is not an RFC 5322 address.
pub(crate) fn recipient_address(email: &str) -> Result<Address, MessageError> {
    email
        .trim()
        .parse::<Address>()
        .map_err(|e| MessageError::InvalidRecipient {
            address: email.to_string(),
            reason: e.to_string(),
        })
}

/// The sender as a mailbox (`shop@example.com` or `Corner Shop <shop@example.com>`).
pub(crate) fn sender_mailbox(sender: &str) -> Result<Mailbox, MessageError> {
    sender
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| MessageError::InvalidSender {
            sender: sender.to_string(),
            reason: e.to_string(),
        })
}

/// Where recipients unsubscribe: the `List-Unsubscribe` header (RFC 2369), with one-click
/// unsubscribe (RFC 8058, `List-Unsubscribe-Post`) when there is an https URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unsubscribe {
    /// An https URL; `{customer_id}` and `{segment}` are replaced, percent-encoded.
    pub(crate) url: Option<String>,
    /// An address for `mailto:` unsubscribe requests.
    pub(crate) email: Option<Address>,
}

impl Unsubscribe {
    /// Checks an `unsubscribe_url` parameter.
    pub(crate) fn check_url(url: &str) -> Result<(), String> {
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return Err(format!(
                "must be an https:// URL (one-click unsubscribe requires https), got `{url}`"
            ));
        }
        if let Some(c) = url
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        {
            return Err(format!(
                "must not contain {c:?}; percent-encode it in `{url}`"
            ));
        }
        if !url.is_ascii() {
            return Err(format!("must be ASCII; percent-encode `{url}`"));
        }
        Ok(())
    }

    fn header(&self, customer: &str, segment: &str) -> Option<String> {
        let mut targets = Vec::new();
        if let Some(url) = &self.url {
            let url = url
                .replace(
                    "{customer_id}",
                    &utf8_percent_encode(customer, NON_ALPHANUMERIC).to_string(),
                )
                .replace(
                    "{segment}",
                    &utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string(),
                );
            targets.push(format!("<{url}>"));
        }
        if let Some(email) = &self.email {
            targets.push(format!("<mailto:{email}>"));
        }
        (!targets.is_empty()).then(|| targets.join(", "))
    }
}

/// What one message says and to whom.
#[derive(Debug)]
pub(crate) struct Draft<'a> {
    pub(crate) from: &'a Mailbox,
    pub(crate) name: &'a str,
    pub(crate) to: Address,
    pub(crate) subject: &'a str,
    pub(crate) date: SystemTime,
    pub(crate) message_id: &'a str,
    pub(crate) body_html: &'a str,
    pub(crate) segment: &'a str,
    pub(crate) customer: &'a str,
    pub(crate) unsubscribe: &'a Unsubscribe,
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    // `HeaderValue::new` encodes any word holding a line break or non-ASCII text.
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// The message as RFC 5322 bytes, for an `.eml` file and for SMTP alike: `multipart/alternative`
/// with a `text/plain` part derived from the HTML (see [`plain_text`]) and the `text/html` part,
/// both UTF-8 and quoted-printable.
pub(crate) fn eml(d: &Draft<'_>) -> Result<Vec<u8>, MessageError> {
    let name = one_line(d.name);
    let to = Mailbox::new((!name.is_empty()).then_some(name), d.to.clone());
    let mut builder = Message::builder()
        .from(d.from.clone())
        .to(to)
        .subject(one_line(d.subject))
        .date(d.date)
        .message_id(Some(d.message_id.to_string()))
        .raw_header(header("X-Flow-Segment", d.segment))
        .raw_header(header("X-Flow-Customer", d.customer));
    if let Some(list) = d.unsubscribe.header(d.customer, d.segment) {
        builder = builder.raw_header(header("List-Unsubscribe", &list));
        if d.unsubscribe.url.is_some() {
            builder = builder.raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click",
            ));
        }
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .header(ContentTransferEncoding::QuotedPrintable)
        .body(plain_text::from_html(d.body_html));
    let html = SinglePart::builder()
        .header(ContentType::TEXT_HTML)
        .header(ContentTransferEncoding::QuotedPrintable)
        .body(d.body_html.to_string());
    let body = MultiPart::builder()
        .kind(MultiPartKind::Alternative)
        .boundary(boundary(d.message_id))
        .singlepart(text)
        .singlepart(html);
    Ok(builder.multipart(body)?.formatted())
}

/// The MIME boundary, derived from the Message-ID so a retried attempt writes and sends the same
/// bytes. It starts with `=_`, which quoted-printable text never contains, so no body can hold it.
fn boundary(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("=_flow_{hex}")
}
