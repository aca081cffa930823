//! The per-customer figures accumulated from the transaction rows.

use arrow_array::{Array, RecordBatch};

use super::config::MetricsConfig;
use super::kept_rows::{Columns, KeptRows, kept_rows};
use super::output::{ModelWork, days_since, finish, finish_alone, model_free_columns};
use crate::beside::Beside;
use crate::segmentation::{
    RowInterner, TextCodes, bool_column, date_column, f64_column, missing_column, text_column,
};
use flow_analytics::affinity::{CategorySpend, for_each_category_affinity};
use flow_analytics::summary::{CustomerSummary, Transaction, summarize};
use flow_engine::data::Output;
use flow_engine::node::NodeError;

/// Per-customer results in customer-id order.
pub(super) struct Accumulated<'a> {
    pub(super) names: Vec<&'a str>,
    pub(super) end: i32,
    pub(super) used: u64,
    pub(super) after: u64,
    pub(super) missing: u64,
    pub(super) revenue: f64,
    pub(super) spend: Vec<f64>,
    pub(super) orders: Vec<u32>,
    pub(super) summaries: Vec<CustomerSummary>,
    pub(super) email: Vec<Option<&'a str>>,
    pub(super) name: Vec<Option<&'a str>>,
    pub(super) marketing: Vec<Option<bool>>,
}

/// Per customer, the favourite category (by spend) and the top category (by affinity index,
/// with the index).
#[derive(Default)]
pub(super) struct Favourites<'a> {
    pub(super) favourite: Vec<Option<&'a str>>,
    pub(super) top: Vec<Option<(&'a str, f64)>>,
}

/// Computes the metrics table and its metadata.
pub(super) fn compute(batch: &RecordBatch, cfg: &MetricsConfig) -> Result<Output, NodeError> {
    let need = |name: &str, purpose: &str| missing_column(batch, name, purpose);
    let customer = text_column(batch, "customer_id")?
        .ok_or_else(|| need("customer_id", "the customer key"))?;
    let order = text_column(batch, "order_id")?.ok_or_else(|| need("order_id", "the order key"))?;
    let date = date_column(batch, "date")?.ok_or_else(|| need("date", "the purchase date"))?;
    let amount =
        f64_column(batch, "amount")?.ok_or_else(|| need("amount", "the net line amount"))?;
    let category = text_column(batch, "category")?;
    let email = text_column(batch, "email")?;
    let customer_name = text_column(batch, "customer_name")?;
    let marketing = bool_column(batch, "accepts_marketing")?;

    let n_rows = batch.num_rows();
    let complete = |i: usize| {
        customer.is_valid(i) && order.is_valid(i) && date.is_valid(i) && amount.is_valid(i)
    };
    // Without a missing value anywhere, the latest date is the maximum of a plain slice.
    let none_missing = !customer.has_nulls()
        && !order.has_nulls()
        && date.null_count() == 0
        && amount.null_count() == 0;
    let end = match cfg.analysis_date {
        Some(d) => Some(d),
        None if none_missing => date.values().iter().copied().max(),
        None => (0..n_rows)
            .filter(|&i| complete(i))
            .map(|i| date.value(i))
            .max(),
    };
    let Some(end) = end else {
        // No usable row and no date: an empty table.
        let missing = (0..n_rows).filter(|&i| !complete(i)).count() as u64;
        let acc = Accumulated {
            names: Vec::new(),
            end: 0,
            used: 0,
            after: 0,
            missing,
            revenue: 0.0,
            spend: Vec::new(),
            orders: Vec::new(),
            summaries: Vec::new(),
            email: Vec::new(),
            name: Vec::new(),
            marketing: Vec::new(),
        };
        let backtest = super::backtest::clv_backtest(&[], 0, 0, cfg);
        return Ok(with_backtest(
            finish_alone(acc, Favourites::default(), cfg)?,
            backtest,
        ));
    };

    // Pass 1: the kept rows and their customers, numbered in id order so every per-customer
    // vector is already sorted by customer_id.
    let KeptRows {
        row_customer,
        names,
        after,
        missing,
    } = kept_rows(
        Columns {
            customer: &customer,
            order: &order,
            date: &date,
            amount: &amount,
        },
        end,
    )?;
    let n_customers = names.len();

    // Pass 2: accumulate, every sum in row order. The per-customer figures are scattered
    // over a table as long as the customers (a cache miss per row): each thread sums those of
    // a range of customers, the first thread fewer, as it also lists the rows and the
    // category lines, which are written in row order.
    let email_codes = email.as_ref().map(TextCodes::new);
    let name_codes = customer_name.as_ref().map(TextCodes::new);
    let per_customer = |customers: std::ops::Range<usize>| {
        // What each customer's rows add up to, in one place: a row touches one cache line.
        let mut latest = vec![Latest::default(); customers.len()];
        for (i, &customer) in row_customer.iter().enumerate() {
            let Some(mine) = (customer as usize)
                .checked_sub(customers.start)
                .and_then(|c| latest.get_mut(c))
            else {
                continue;
            };
            let day = date.value(i);
            mine.spend += amount.value(i);
            // Latest row with a value wins; rows come in order, so `>=` makes ties go to the
            // later.
            if let Some(code) = email_codes.as_ref().and_then(|c| c.code(i))
                && mine.email.is_none_or(|(d, _)| day >= d)
            {
                mine.email = Some((day, code));
            }
            if let Some(code) = name_codes.as_ref().and_then(|c| c.code(i))
                && mine.name.is_none_or(|(d, _)| day >= d)
            {
                mine.name = Some((day, code));
            }
            if let Some(col) = marketing.as_ref()
                && col.is_valid(i)
                && mine.marketing.is_none_or(|(d, _)| day >= d)
            {
                mine.marketing = Some((day, col.value(i)));
            }
        }
        latest
    };
    let in_row_order = || {
        let mut transactions = Vec::with_capacity(n_rows - after as usize - missing as usize);
        let mut categories = category.as_ref().map(|c| RowInterner::new(c, 0));
        // At most one per row kept: sized once, not grown by doubling.
        let mut category_lines: Vec<CategorySpend> = Vec::with_capacity(if category.is_some() {
            transactions.capacity()
        } else {
            0
        });
        let mut revenue = 0.0;
        for (i, &c) in row_customer.iter().enumerate() {
            if c == u32::MAX {
                continue;
            }
            let a = amount.value(i);
            transactions.push(Transaction {
                customer: c,
                day: date.value(i),
                amount: a,
            });
            revenue += a;
            if let (Some(col), Some(interner)) = (&category, &mut categories)
                && col.get(i).is_some_and(|k| !k.is_empty())
            {
                category_lines.push(CategorySpend {
                    customer: c,
                    category: interner.intern(i).expect("a category, checked above"),
                    amount: a,
                });
            }
        }
        (transactions, categories, category_lines, revenue)
    };
    let cores = super::step_cores();
    let ranges = customer_ranges(n_customers, cores.threads());
    let (latest, (transactions, categories, category_lines, revenue)) =
        std::thread::scope(|scope| {
            let others: Vec<_> = ranges[1..]
                .iter()
                .map(|range| scope.spawn(|| per_customer(range.clone())))
                .collect();
            let rows = in_row_order();
            let mut latest = per_customer(ranges[0].clone());
            latest.reserve(n_customers - latest.len());
            for other in others {
                latest.extend(
                    other
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                );
            }
            (latest, rows)
        });
    drop(cores);
    // The order counts and the customers' summaries share nothing: the summaries on a core of
    // their own when one is free (the counts then get one thread fewer).
    let (order_counts, summaries) = std::thread::scope(|scope| {
        let summaries =
            Beside::on_core(scope, flow_engine::node::spare_cores(2).split_one(), || {
                summarize(&transactions, n_customers, end, cfg.unit)
            });
        let counts = super::orders::distinct_orders(&order, &row_customer, n_customers);
        (counts, summaries.join())
    });
    drop(row_customer);
    let summaries = summaries.map_err(|e| NodeError::msg(format!("customer summary: {e}")))?;
    if summaries.len() != n_customers {
        return Err(NodeError::msg(format!(
            "internal error: {} summaries for {n_customers} customers",
            summaries.len()
        )));
    }
    let used = transactions.len() as u64;
    let acc = Accumulated {
        names,
        end,
        used,
        after,
        missing,
        revenue,
        spend: latest.iter().map(|l| l.spend).collect(),
        orders: order_counts,
        summaries,
        email: texts(&latest, email_codes.as_ref(), |l| l.email),
        name: texts(&latest, name_codes.as_ref(), |l| l.name),
        marketing: latest.iter().map(|l| l.marketing.map(|x| x.1)).collect(),
    };
    drop(latest);
    let category_names = categories.map(RowInterner::into_names).unwrap_or_default();

    // The CLV backtest refits the models on an earlier window, with which this window's
    // figures share nothing: on a core of its own when one is free, beside the category
    // figures and the columns that need no model. Then both threads take turns at the RFM
    // scores, the Gamma-Gamma fit, the BG/NBD fit's preparation and the customers' patterns
    // for the predictions; both are waited for before the BG/NBD fit, which then gets every
    // core. Without a free core the backtest comes last.
    let days_since = days_since(&acc);
    let work = ModelWork::default();
    let take_turns = || work.take_turns(&acc, &days_since, cfg);
    let backtest_here = || super::backtest::clv_backtest(&transactions, n_customers, end, cfg);
    let side = flow_engine::node::spare_cores(2).split_one();
    let (backtest, columns) = std::thread::scope(|scope| {
        let beside = side.map(|core| {
            scope.spawn(|| {
                let _core = core;
                let backtest = backtest_here();
                take_turns();
                backtest
            })
        });
        let columns = favourites(n_customers, &category_names, category_lines).map(|favourites| {
            let columns = model_free_columns(&acc, &days_since, &favourites);
            take_turns();
            columns
        });
        let beside = beside.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (beside, columns)
    });
    let columns = columns?;
    let out = finish(acc, columns, work, cfg)?;
    let backtest = backtest.unwrap_or_else(backtest_here);
    Ok(with_backtest(out, backtest))
}

/// The output with the CLV backtest's metadata, when there is one.
fn with_backtest(out: Output, backtest: Option<serde_json::Value>) -> Output {
    match backtest {
        Some(b) => out.with_meta("clv_backtest", b),
        None => out,
    }
}

/// Each customer's favourite and top category from the category lines.
fn favourites<'a>(
    n_customers: usize,
    category_names: &[&'a str],
    category_lines: Vec<CategorySpend>,
) -> Result<Favourites<'a>, NodeError> {
    // Category favourites (by net spend) and top affinity (by index).
    let mut favourite: Vec<Option<&'a str>> = vec![None; n_customers];
    let mut top: Vec<Option<(&'a str, f64)>> = vec![None; n_customers];
    if !category_lines.is_empty() {
        let mut best_spend: Vec<f64> = vec![0.0; n_customers];
        let mut best_index: Vec<(f64, f64)> = vec![(f64::NEG_INFINITY, 0.0); n_customers];
        for_each_category_affinity(&category_lines, |cell| {
            let ci = cell.customer as usize;
            let name = category_names[cell.category as usize];
            // Favourite: highest positive spend, ties by name.
            if cell.spend > 0.0 {
                let better = match favourite[ci] {
                    None => true,
                    Some(f) => {
                        cell.spend > best_spend[ci] || (cell.spend == best_spend[ci] && name < f)
                    }
                };
                if better {
                    favourite[ci] = Some(name);
                    best_spend[ci] = cell.spend;
                }
            }
            // Top affinity: highest index, ties by spend then name.
            let (bi, bs) = best_index[ci];
            let better = match top[ci] {
                None => true,
                Some((t, _)) => {
                    cell.index > bi
                        || (cell.index == bi && (cell.spend > bs || (cell.spend == bs && name < t)))
                }
            };
            if better && cell.spend > 0.0 {
                top[ci] = Some((name, cell.index));
                best_index[ci] = (cell.index, cell.spend);
            }
        })
        .map_err(|e| NodeError::msg(format!("category affinity: {e}")))?;
    }
    drop(category_lines);
    Ok(Favourites { favourite, top })
}

/// The customers each of `threads` threads sums the rows of, in order. The first thread also
/// lists the rows, which takes about a third of the time of summing every customer's rows: it
/// gets that much less of the customers.
fn customer_ranges(n_customers: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let threads = threads.max(1);
    let first =
        (n_customers as f64 * (4.0 / (3.0 * threads as f64) - 1.0 / 3.0).max(0.0)).round() as usize;
    let first = first.min(n_customers);
    let rest = threads - 1;
    let mut ranges = Vec::with_capacity(threads);
    ranges.push(0..first);
    let mut start = first;
    for k in 0..rest {
        let end = first + (n_customers - first) * (k + 1) / rest;
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// One customer's sums and latest values over their rows.
#[derive(Debug, Clone, Copy, Default)]
struct Latest {
    spend: f64,
    /// The day and code of the latest email and name, and the latest marketing consent.
    email: Option<(i32, u32)>,
    name: Option<(i32, u32)>,
    marketing: Option<(i32, bool)>,
}

/// The latest text of each customer, from its code.
fn texts<'a>(
    latest: &[Latest],
    codes: Option<&TextCodes<'a>>,
    which: impl Fn(&Latest) -> Option<(i32, u32)>,
) -> Vec<Option<&'a str>> {
    latest
        .iter()
        .map(|l| Some(codes?.text(which(l)?.1)))
        .collect()
}

#[cfg(test)]
mod range_tests {
    use super::customer_ranges;

    #[test]
    fn customer_ranges_cover_every_customer_once_in_order() {
        for n in [0, 1, 2, 5, 1000, 1_000_003] {
            for threads in 1..=8 {
                let ranges = customer_ranges(n, threads);
                assert_eq!(ranges.len(), threads);
                assert_eq!(ranges[0].start, 0);
                assert_eq!(
                    ranges[threads - 1].end,
                    n,
                    "{n} customers, {threads} threads"
                );
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
            }
        }
        // Two threads: the one that also lists the rows sums a third of the customers.
        assert_eq!(customer_ranges(900, 2), [0..300, 300..900]);
    }
}
