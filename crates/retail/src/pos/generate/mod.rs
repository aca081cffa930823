//! Deterministic, realistic retail sample data: transactions (the [`super::csv_mapped`]
//! default layout), a product catalog and a customers file.
//!
//! Same options (seed included) = byte-identical output, on any machine with the same Rust
//! standard library math (`ln`, `exp`, `powf` come from the platform; IEEE operations are
//! exact). No external RNG crate: [`flow_analytics::rng::Rng`] (SplitMix64) streams, one per
//! customer, so a customer's history does not depend on the others'.
//!
//! The submodules: `options` (what to generate, what was generated), `vocabulary` (the data
//! tables), `catalog`, `customers`, `basket` (one order's products), `calibration` (the rate
//! scale for `target_lines`), `campaign` (simulated campaigns), `writer` (the transactions CSV
//! lines) and `transactions` (the simulation in time order).
//!
//! # The model
//! - **Catalog**: 12 categories, each with three sub-brands (the third a premium brand priced
//!   about 1.8x), product names from per-category vocabularies, a log-normal price around the
//!   category median (ending in 9 cents), and stock levels (about 7% at zero: out of stock).
//! - **Popularity**: Zipf-like (weight 1 / rank^1.05) within each category; categories have
//!   their own overall popularity. Premium customers weigh premium-brand products 3x.
//! - **Co-purchase**: each product has two complements in complementary categories (coffee with
//!   bakery and kitchen, toys with electronics, ...); after the first line of a basket, each
//!   further line is, with probability 0.35, a complement of a product already in the basket.
//! - **Customers** (BG/NBD-like, Fader, Hardie & Lee 2005): each customer is acquired with a
//!   first purchase on a uniformly random day of the period; while alive they buy as a Poisson
//!   process with their own rate λ ~ Gamma(0.45, mean 1/30 per day); after each *repeat* purchase
//!   they drop out for good with their own probability p ~ Beta(1.2, 4), so many lapse. Each has
//!   three favourite categories, a mean basket size (order sizes 1-6 lines) and 20% are premium
//!   buyers.
//! - **Seasonality**: daily traffic follows a month profile (November and December peaks,
//!   January lull) and a weekday profile (Saturday busiest), via thinning of the Poisson
//!   process; category choice follows per-category month profiles (outdoor and garden in
//!   summer, toys and electronics in December, tea and coffee in winter). Times of day follow
//!   store hours (8:00-21:59, lunch and after-work peaks).
//! - **Returns**: 0.6% of orders get a return of one line 1-14 days later, written as a line
//!   with the *same order id*, negative quantity and negative amount. 8% of lines carry a
//!   10-25% promotion (amount < quantity x unit price).
//! - **Malformed rows**: `malformed_rows` extra lines, spread evenly over the period, each
//!   broken one of six ways (amount `12.3x`, impossible date `YYYY-02-30`, a missing field,
//!   quantity `two`, an empty order id, amount `N/A`). Each is an *extra* line (a corrupted copy
//!   of a real one), so dropping it loses no data.
//! - **Volume**: about 10 lines per customer over two years by default; `target_lines`
//!   rescales every purchase rate by one factor `s` (and, when `s` > 1, divides the dropout
//!   probabilities by `sqrt(s)`, since `1 + 1/p` bounds the expected purchases), found by
//!   bisection on the BG/NBD expected number of transactions `1 + (1 - exp(-λ p T)) / p` per
//!   customer, so the output has about that many lines (within a few percent; it cannot go
//!   below one order per customer, nor above about one order per customer per day).
//! - **Simulated campaigns** (none by default): a campaign has a key, a send date, a holdout
//!   share, a window and an uplift. Every customer acquired on or before the send date is in
//!   the control group if [`flow_analytics::holdout::is_control`] says so for the key and their
//!   id as written (`C00042`), else treated; with probability `uplift` a treated customer makes
//!   one extra order on a uniformly random day in (send date, send date + window], at a store
//!   hour, with a basket drawn like their normal orders (no return, never malformed). The extra
//!   orders have their own ids (`OX1-00000001` for the first campaign) and come from a separate
//!   random stream per customer and campaign, so every other line is byte-identical to the
//!   output without the campaign: the true effect on any group of customers is the difference
//!   of the two outputs. They are extra purchases on top of the natural ones, not a change of
//!   the customer's rate or dropout, and may fall on a day the customer also buys naturally.
//!
//! # Streaming
//! [`write_transactions`] writes in time order while holding only O(customers) state (a heap
//! of next-purchase times and about 50 bytes per customer: 81 MB peak for 1M customers and 10M
//! lines; a campaign's extra orders wait in a second heap, 32 bytes each), so any number of
//! lines can go to any `Write`.

mod basket;
mod calibration;
mod campaign;
mod catalog;
mod customers;
mod options;
mod transactions;
mod vocabulary;
mod writer;

#[cfg(test)]
mod campaign_tests;
#[cfg(test)]
mod tests;

use std::io;

pub use campaign::SimulatedCampaign;
pub use catalog::write_catalog;
pub use customers::write_customers;
pub use options::{GenerateOptions, GenerateStats};
pub use transactions::write_transactions;

/// A whole generated data set in memory (for small sizes and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Transactions CSV (`order_id,customer_id,date,product_id,category,quantity,unit_price,amount`).
    pub transactions: String,
    /// Catalog CSV (`product_id,name,category,brand,price,stock`).
    pub catalog: String,
    /// Customers CSV (`customer_id,name,email,accepts_marketing`).
    pub customers: String,
    /// What the transactions contain.
    pub stats: GenerateStats,
}

/// The header of the transactions file (the `csv` format's default column names).
pub const TRANSACTIONS_HEADER: &str =
    "order_id,customer_id,date,product_id,category,quantity,unit_price,amount";

/// Generates the three files in memory.
pub fn generate(opts: &GenerateOptions) -> io::Result<Dataset> {
    let mut tx = Vec::new();
    let stats = write_transactions(opts, &mut tx)?;
    let mut catalog = Vec::new();
    write_catalog(opts, &mut catalog)?;
    let mut customers = Vec::new();
    write_customers(opts, &mut customers)?;
    let text = |v: Vec<u8>| String::from_utf8(v).map_err(|e| io::Error::other(e.to_string()));
    Ok(Dataset {
        transactions: text(tx)?,
        catalog: text(catalog)?,
        customers: text(customers)?,
        stats,
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Digits of the largest id `n`, at least `min` (ids are zero-padded to this width).
fn id_width(n: u64, min: usize) -> usize {
    let mut w = 1;
    let mut v = n;
    while v >= 10 {
        v /= 10;
        w += 1;
    }
    w.max(min)
}
