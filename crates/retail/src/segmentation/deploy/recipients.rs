//! Customers whose message cannot be addressed: a campaign row marked `send` whose email
//! address does not parse (a typo, a line break, two addresses in one cell) gets no message.
//! It is counted under the skip reason `invalid email address`, like the customers the campaign
//! node already turned away, and `segments.csv` says `message_sent = false` for it.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};

use super::message::recipient_address;
use flow_engine::node::NodeError;

/// The skip reason of a customer whose address does not parse.
pub(crate) const INVALID_ADDRESS: &str = "invalid email address";

/// The campaign rows (normalized: `send`, `skip_reason`, `email`, `group`, `eligible` and
/// `channel` present) with `send` and `eligible` cleared and the reason set for every row whose
/// address is not usable. A control customer of an email campaign is checked the same way: it
/// is compared only if it could have been messaged, like the treated customers.
pub(crate) fn unsendable_to_skipped(camp: &RecordBatch) -> Result<RecordBatch, NodeError> {
    let column = |name: &str| {
        camp.column_by_name(name)
            .ok_or_else(|| NodeError::msg(format!("campaign rows without `{name}`")))
    };
    let (send, reason, email) = (
        column("send")?.as_boolean(),
        column("skip_reason")?.as_string::<i32>(),
        column("email")?.as_string::<i32>(),
    );
    let (group, eligible, channel) = (
        column("group")?.as_string::<i32>(),
        column("eligible")?.as_boolean(),
        column("channel")?.as_string::<i32>(),
    );
    let bad_address = |i: usize| email.is_null(i) || recipient_address(email.value(i)).is_err();
    let held_out_would_send = |i: usize| {
        group.is_valid(i)
            && group.value(i) == "control"
            && eligible.is_valid(i)
            && eligible.value(i)
            && !(channel.is_valid(i) && channel.value(i) == "none")
    };
    let unsendable = |i: usize| {
        ((send.is_valid(i) && send.value(i)) || held_out_would_send(i)) && bad_address(i)
    };
    if !(0..camp.num_rows()).any(unsendable) {
        return Ok(camp.clone());
    }
    let mut new_send = BooleanBuilder::with_capacity(camp.num_rows());
    let mut new_eligible = BooleanBuilder::with_capacity(camp.num_rows());
    let mut new_reason = StringBuilder::new();
    for i in 0..camp.num_rows() {
        if unsendable(i) {
            new_send.append_value(false);
            new_eligible.append_value(false);
            new_reason.append_value(INVALID_ADDRESS);
        } else {
            new_send.append_option(send.is_valid(i).then(|| send.value(i)));
            new_eligible.append_option(eligible.is_valid(i).then(|| eligible.value(i)));
            new_reason.append_option(reason.is_valid(i).then(|| reason.value(i)));
        }
    }
    let (new_send, new_eligible, new_reason): (ArrayRef, ArrayRef, ArrayRef) = (
        Arc::new(new_send.finish()),
        Arc::new(new_eligible.finish()),
        Arc::new(new_reason.finish()),
    );
    let schema = camp.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(camp.columns())
        .map(|(f, c)| match f.name().as_str() {
            "send" => new_send.clone(),
            "eligible" => new_eligible.clone(),
            "skip_reason" => new_reason.clone(),
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}
