//! Customers: each one's purchase rate, dropout, basket size, favourite categories and first
//! purchase; written as the customers CSV.

use std::io::{self, Write};

use flow_analytics::rng::Rng;

use super::catalog::CatalogModel;
use super::vocabulary::{DOMAINS, FIRST_NAMES, LAST_NAMES};
use super::{GenerateOptions, id_width, invalid};

/// Per-customer purchase state (32 bytes, plus 16 in the heap).
pub(super) struct CustomerState {
    pub(super) rng: Rng,
    pub(super) lambda: f32,
    pub(super) dropout: f32,
    pub(super) basket: f32,
    pub(super) prefs: [u8; 3],
    pub(super) premium: bool,
    pub(super) purchases: u32,
}

const BASE_RATE: f64 = 1.0 / 30.0;
const RATE_SHAPE: f64 = 0.45;

/// Draws a customer's parameters and acquisition time (seconds from the start).
pub(super) fn new_customer(
    opts: &GenerateOptions,
    model: &CatalogModel,
    i: u64,
    hours_cum: &[f64],
) -> (CustomerState, u64) {
    let mut rng = Rng::stream(opts.seed, 1, i);
    let day = rng.below(u64::from(opts.days));
    let tod = time_of_day(&mut rng, hours_cum);
    let lambda = rng
        .gamma(RATE_SHAPE, BASE_RATE / RATE_SHAPE)
        .clamp(1e-5, 2.0);
    let dropout = rng.beta(1.2, 4.0).clamp(0.005, 0.95);
    let basket = 1.0 + rng.gamma(2.0, 0.65);
    let mut prefs = [0u8; 3];
    for slot in &mut prefs {
        *slot = model.draw_category(&mut rng) as u8;
    }
    let premium = rng.chance(0.2);
    let state = CustomerState {
        rng,
        lambda: lambda as f32,
        dropout: dropout as f32,
        basket: basket as f32,
        prefs,
        premium,
        purchases: 0,
    };
    (state, day * 86_400 + tod)
}

pub(super) fn time_of_day(rng: &mut Rng, hours_cum: &[f64]) -> u64 {
    let total = hours_cum.last().copied().unwrap_or(1.0);
    let x = rng.f64() * total;
    let h = hours_cum
        .partition_point(|&c| c <= x)
        .min(hours_cum.len().saturating_sub(1)) as u64;
    (8 + h) * 3600 + rng.below(3600)
}

/// Writes the customers CSV (`customer_id,name,email,accepts_marketing`); about 12% have no
/// email and 58% accept marketing.
pub fn write_customers<W: Write>(opts: &GenerateOptions, w: W) -> io::Result<()> {
    opts.validate().map_err(invalid)?;
    let width = id_width(opts.customers, 5);
    let mut out = io::BufWriter::new(w);
    writeln!(out, "customer_id,name,email,accepts_marketing")?;
    for i in 0..opts.customers {
        let mut rng = Rng::stream(opts.seed, 2, i);
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let email = if rng.chance(0.12) {
            String::new()
        } else {
            format!(
                "{}.{}{}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                i + 1,
                rng.pick(DOMAINS)
            )
        };
        let accepts = if rng.chance(0.58) { "yes" } else { "no" };
        writeln!(out, "C{:0width$},{first} {last},{email},{accepts}", i + 1)?;
    }
    out.flush()
}
