//! The transactions CSV lines, formatted by hand into one buffer (the hot loop of the
//! generator), and their malformed variants.

use std::io::{self, Write};

use super::catalog::CatalogModel;
use super::vocabulary::CATEGORIES;

pub(super) struct Day {
    pub(super) text: [u8; 11],
    pub(super) month: usize,
    pub(super) factor: f64,
}

pub(super) struct Writer<'a, W: Write> {
    pub(super) out: W,
    pub(super) buf: Vec<u8>,
    pub(super) cust_width: usize,
    pub(super) prod_width: usize,
    pub(super) model: &'a CatalogModel,
}

impl<W: Write> Writer<'_, W> {
    pub(super) fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn line(
        &mut self,
        order: u64,
        customer: u32,
        day: &Day,
        tod: u64,
        product: u32,
        qty: i64,
        unit_cents: i64,
        amount_cents: i64,
    ) {
        self.buf.push(b'O');
        push_padded(&mut self.buf, order, 8);
        self.rest(customer, day, tod, product, qty, unit_cents, amount_cents);
    }

    /// A line of extra order `order` of simulated campaign `campaign` (0-based), with its own
    /// id space: `OX<campaign + 1>-<order>`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn extra_line(
        &mut self,
        campaign: u32,
        order: u64,
        customer: u32,
        day: &Day,
        tod: u64,
        product: u32,
        qty: i64,
        unit_cents: i64,
        amount_cents: i64,
    ) {
        self.buf.extend_from_slice(b"OX");
        push_padded(&mut self.buf, u64::from(campaign) + 1, 1);
        self.buf.push(b'-');
        push_padded(&mut self.buf, order, 8);
        self.rest(customer, day, tod, product, qty, unit_cents, amount_cents);
    }

    /// The line after its order id.
    #[allow(clippy::too_many_arguments)]
    fn rest(
        &mut self,
        customer: u32,
        day: &Day,
        tod: u64,
        product: u32,
        qty: i64,
        unit_cents: i64,
        amount_cents: i64,
    ) {
        let b = &mut self.buf;
        b.extend_from_slice(b",C");
        push_padded(b, u64::from(customer) + 1, self.cust_width);
        b.push(b',');
        b.extend_from_slice(&day.text);
        push_padded(b, tod / 3600, 2);
        b.push(b':');
        push_padded(b, (tod / 60) % 60, 2);
        b.push(b':');
        push_padded(b, tod % 60, 2);
        b.extend_from_slice(b",P");
        push_padded(b, u64::from(product) + 1, self.prod_width);
        b.push(b',');
        let cat = self
            .model
            .products
            .get(product as usize)
            .map_or(0, |p| p.category as usize);
        push_field(b, CATEGORIES[cat].name);
        b.push(b',');
        push_int(b, qty);
        b.push(b',');
        push_cents(b, unit_cents);
        b.push(b',');
        push_cents(b, amount_cents);
        b.push(b'\n');
    }
}

fn push_padded(b: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut x = v;
    loop {
        digits[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    for _ in n..width {
        b.push(b'0');
    }
    b.extend(digits[..n].iter().rev());
}

fn push_int(b: &mut Vec<u8>, v: i64) {
    if v < 0 {
        b.push(b'-');
    }
    push_padded(b, v.unsigned_abs(), 1);
}

fn push_cents(b: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        b.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_padded(b, c / 100, 1);
    b.push(b'.');
    push_padded(b, c % 100, 2);
}

fn push_field(b: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"']) {
        b.push(b'"');
        b.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn write_malformed<W: Write>(
    w: &mut Writer<W>,
    kind: u64,
    order: u64,
    customer: u32,
    day: &Day,
    tod: u64,
    product: u32,
    qty: i64,
) {
    let start = w.buf.len();
    let unit = w
        .model
        .products
        .get(product as usize)
        .map_or(99, |p| i64::from(p.price_cents));
    w.line(order, customer, day, tod, product, qty, unit, unit * qty);
    let mut line: Vec<u8> = w.buf.split_off(start);
    line.pop(); // newline
    let mut fields: Vec<Vec<u8>> = line.split(|&b| b == b',').map(<[u8]>::to_vec).collect();
    // The category may be quoted with a comma inside; the tests' categories have none.
    let last = fields.len().saturating_sub(1);
    match kind {
        0 => fields[last] = b"12.3x".to_vec(),
        1 => {
            if let Some(f) = fields.get_mut(2) {
                let year: Vec<u8> = f.iter().take(4).copied().collect();
                let mut v = year;
                v.extend_from_slice(b"-02-30 12:00:00");
                *f = v;
            }
        }
        2 => {
            if fields.len() > 4 {
                fields.remove(4);
            }
        }
        3 => {
            if let Some(f) = fields.get_mut(5) {
                *f = b"two".to_vec();
            }
        }
        4 => fields[0] = Vec::new(),
        _ => fields[last] = b"N/A".to_vec(),
    }
    w.buf.extend_from_slice(&fields.join(&b','));
    w.buf.push(b'\n');
}
