//! Composing one customer's campaign message from a campaign row: the one place both the `.eml`
//! files and the SMTP sender get their bytes from, so what is written is what is sent.

use super::*;

/// A composed message and its envelope.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) customer: String,
    pub(crate) segment: String,
    pub(crate) from: lettre::Address,
    pub(crate) to: lettre::Address,
    pub(crate) message_id: String,
    pub(crate) bytes: Vec<u8>,
}

/// Reads the campaign columns once and composes the message of any row.
pub(super) struct Composer<'a> {
    ctx: &'a NodeContext,
    ids: &'a StringArray,
    segs: &'a StringArray,
    emails: &'a StringArray,
    names: &'a StringArray,
    subjects: &'a StringArray,
    bodies: &'a StringArray,
    senders: &'a StringArray,
    date: std::time::SystemTime,
    unsubscribe: &'a Unsubscribe,
    senders_parsed: HashMap<&'a str, lettre::message::Mailbox>,
}

impl<'a> Composer<'a> {
    pub(super) fn new(
        ctx: &'a NodeContext,
        camp: &'a RecordBatch,
        now: &DateTime<FixedOffset>,
        unsubscribe: &'a Unsubscribe,
    ) -> Self {
        Composer {
            ctx,
            ids: text(camp, "customer_id"),
            segs: text(camp, "segment"),
            emails: text(camp, "email"),
            names: text(camp, "customer_name"),
            subjects: text(camp, "subject"),
            bodies: text(camp, "body_html"),
            senders: text(camp, "sender"),
            date: std::time::SystemTime::from(*now),
            unsubscribe,
            senders_parsed: HashMap::new(),
        }
    }

    fn context(&self, i: usize) -> impl Fn(String) -> NodeError + '_ {
        move |e| {
            NodeError::msg(format!(
                "customer {} (segment {}): {e}",
                self.ids.value(i),
                opt_str(self.segs, i).unwrap_or("")
            ))
        }
    }

    /// The sender of row `i`, parsed once per distinct sender.
    pub(super) fn sender(&mut self, i: usize) -> Result<lettre::message::Mailbox, NodeError> {
        let sender = opt_str(self.senders, i).unwrap_or("shop@example.com");
        if let Some(m) = self.senders_parsed.get(sender) {
            return Ok(m.clone());
        }
        let m = message::sender_mailbox(sender).map_err(|e| (self.context(i))(e.to_string()))?;
        self.senders_parsed.insert(sender, m.clone());
        Ok(m)
    }

    /// The Message-ID of row `i`: derived from the idempotency key of (run, node, segment,
    /// customer), so every attempt and resume of the run gives the same message the same id.
    pub(super) fn message_id(&self, i: usize, from: &lettre::message::Mailbox) -> String {
        let segment = opt_str(self.segs, i).unwrap_or("");
        let key = self
            .ctx
            .idempotency_key(&format!("message/{segment}/{}", self.ids.value(i)));
        format!(
            "<{}@{}>",
            message_id_local(&key),
            domain_of(from.email.as_ref())
        )
    }

    /// The message of row `i`.
    pub(super) fn compose(&mut self, i: usize) -> Result<Outgoing, NodeError> {
        let from = self.sender(i)?;
        let message_id = self.message_id(i, &from);
        let (id, segment) = (self.ids.value(i), opt_str(self.segs, i).unwrap_or(""));
        let to = message::recipient_address(opt_str(self.emails, i).unwrap_or(""))
            .map_err(|e| (self.context(i))(e.to_string()))?;
        let bytes = message::eml(&Draft {
            from: &from,
            name: opt_str(self.names, i).unwrap_or(""),
            to: to.clone(),
            subject: opt_str(self.subjects, i).unwrap_or(""),
            date: self.date,
            message_id: &message_id,
            body_html: opt_str(self.bodies, i).unwrap_or(""),
            segment,
            customer: id,
            unsubscribe: self.unsubscribe,
        })
        .map_err(|e| (self.context(i))(e.to_string()))?;
        Ok(Outgoing {
            customer: id.to_string(),
            segment: segment.to_string(),
            from: from.email,
            to,
            message_id,
            bytes,
        })
    }
}

/// The messages of every customer who gets one: `send` set by the campaign (consent, a usable
/// address, the treated group) and never a control-group customer.
pub(super) fn outgoing(
    ctx: &NodeContext,
    camp: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    now: &DateTime<FixedOffset>,
    unsubscribe: &Unsubscribe,
) -> Result<Vec<Outgoing>, NodeError> {
    let mut composer = Composer::new(ctx, camp, now, unsubscribe);
    profiles
        .iter()
        .filter(|(_, p)| p.sent && !p.control)
        .map(|(i, _)| composer.compose(*i))
        .collect()
}
