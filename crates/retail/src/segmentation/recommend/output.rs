//! One branch's recommendations: the index from the run cache, each customer's picks, and the
//! output table with its metadata.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::super::{TextColumn, day_string, f64_column, missing_column, no_products, text_column};
use super::ids::Ids;
use super::index::{CatalogColumns, IndexKey, Orders, SharedIndex};
use super::rank::{Member, Pair, rank};
use super::strategies::Reason;
use super::{RecommendConfig, RecommendInputs, Strategy};
use crate::str_map::StrMap;
use crate::text_dictionary::TextDictionary;
use flow_engine::data::Output;
use flow_engine::node::{NodeError, compute_here};
use flow_engine::run_cache::RunCache;

/// The output table, row by row. The text columns are dictionary-encoded: a customer's id is
/// stored once for its rows, a product's id and name once for the branch.
pub(super) struct OutBuilders {
    customer_id: TextDictionary,
    /// The customer of the last row, and its keys in `customer_id` and `segment`.
    last_customer: Option<(usize, [i32; 2])>,
    segment: TextDictionary,
    rank: Int64Builder,
    product_id: TextDictionary,
    product_name: TextDictionary,
    /// Per product, its keys in `product_id` and `product_name` (`-1`: not yet used).
    product_keys: Vec<[i32; 2]>,
    category: TextDictionary,
    /// Per category, its key in `category` (`-1`: not yet used).
    category_keys: Vec<i32>,
    score: Float64Builder,
    reason: TextDictionary,
    strategy: TextDictionary,
    reason_buf: String,
}

impl OutBuilders {
    pub(super) fn new(rows: usize, products: usize, categories: usize) -> Self {
        let text = || TextDictionary::with_rows(rows);
        OutBuilders {
            customer_id: text(),
            last_customer: None,
            segment: text(),
            rank: Int64Builder::with_capacity(rows),
            product_id: text(),
            product_name: text(),
            product_keys: vec![[-1; 2]; products],
            category: text(),
            category_keys: vec![-1; categories],
            score: Float64Builder::with_capacity(rows),
            reason: text(),
            strategy: text(),
            reason_buf: String::new(),
        }
    }

    /// A row of customer number `c`, with its id and segment (its rows come together).
    fn customer(&mut self, c: usize, id: &str, segment: &str) {
        let keys = match self.last_customer {
            Some((last, keys)) if last == c => keys,
            _ => {
                let keys = [
                    self.customer_id.key_unindexed(id),
                    self.segment.key(segment),
                ];
                self.last_customer = Some((c, keys));
                keys
            }
        };
        self.customer_id.rows.append_value(keys[0]);
        self.segment.rows.append_value(keys[1]);
    }

    /// A row of product `p`, with its id and display name.
    fn product(&mut self, p: usize, id: &str, name: &str) {
        let keys = &mut self.product_keys[p];
        if keys[0] < 0 {
            *keys = [self.product_id.key(id), self.product_name.key(name)];
        }
        self.product_id.rows.append_value(keys[0]);
        self.product_name.rows.append_value(keys[1]);
    }

    /// A row of category `c` named `name` (none: null).
    fn category(&mut self, category: Option<(u32, &str)>) {
        let Some((c, name)) = category else {
            self.category.rows.append_null();
            return;
        };
        let key = &mut self.category_keys[c as usize];
        if *key < 0 {
            *key = self.category.key(name);
        }
        self.category.rows.append_value(*key);
    }

    pub(super) fn finish(mut self) -> Result<RecordBatch, NodeError> {
        let text = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let columns: Vec<(&str, DataType, bool, ArrayRef)> = vec![
            ("customer_id", text(), false, self.customer_id.finish()?),
            ("segment", text(), false, self.segment.finish()?),
            ("rank", DataType::Int64, false, Arc::new(self.rank.finish())),
            ("product_id", text(), false, self.product_id.finish()?),
            ("product_name", text(), false, self.product_name.finish()?),
            ("category", text(), true, self.category.finish()?),
            (
                "score",
                DataType::Float64,
                false,
                Arc::new(self.score.finish()),
            ),
            ("reason", text(), false, self.reason.finish()?),
            ("strategy", text(), false, self.strategy.finish()?),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, t, null, _)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        );
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|c| c.3).collect(),
        )?)
    }
}

/// Computes the recommendations table and its metadata: [`prepare`], then [`rank_prepared`].
pub(crate) fn recommend(
    t: RecommendInputs,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<Output, NodeError> {
    rank_prepared(prepare(t, cfg, cache)?, cfg, cache)
}

/// A node's inputs with the run's shared index, ready to rank; the transactions are gone.
pub(crate) struct Prepared {
    t: RecommendInputs,
    customer_columns: Vec<CustomerColumns>,
    slot: IndexSlot,
    no_products: bool,
}

/// Checks the inputs and gets the run's shared index from `cache`: the first node of a run
/// builds it while the others asking wait, the others reuse it. With a backtest, the
/// backtest's calibration (an index of the purchases up to the cut-off, also shared) is built
/// on a second thread at the same time: the two indexes are the recommend nodes' largest work.
/// Each build takes a core of its own ([`compute_here`]); a node that only waits for them
/// need not hold one, and lets go of its transactions as soon as they are built, not when a
/// core is free for its ranking (at 10M lines the transactions are half a gigabyte, and six
/// recommend nodes take turns on two cores).
pub(crate) fn prepare(
    mut t: RecommendInputs,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<Prepared, NodeError> {
    let (customer_columns, slot) = std::thread::scope(|scope| {
        if cfg.backtest_days > 0 {
            scope.spawn(|| super::backtest::prepare(&t, cfg, cache));
        }
        indexed(&t, cfg, cache)
    })?;
    // Both indexes are built (the scope waited for the calibration's): the transactions are
    // not read again.
    let no_products = no_products::has_no_products(&t.transactions);
    t.transactions = RecordBatch::new_empty(t.transactions.schema());
    Ok(Prepared {
        t,
        customer_columns,
        slot,
        no_products,
    })
}

/// The recommendations of [`prepare`]d inputs.
pub(crate) fn rank_prepared(
    p: Prepared,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<Output, NodeError> {
    let shared = p
        .slot
        .as_ref()
        .as_ref()
        .map_err(|e| NodeError::msg(e.clone()))?;
    ranked(&p.t, p.customer_columns, shared, p.no_products, cfg, cache)
}

/// A customers table's columns.
struct CustomerColumns {
    id: TextColumn,
    segment: TextColumn,
    favourite: Option<TextColumn>,
    top: Option<TextColumn>,
    rows: usize,
}

type IndexSlot = Arc<Result<SharedIndex, String>>;

/// The input columns checked (in the order their errors are reported), and the run's index.
fn indexed(
    t: &RecommendInputs,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<(Vec<CustomerColumns>, IndexSlot), NodeError> {
    CatalogColumns::new(&t.catalog)?;
    let mut customer_columns = Vec::new();
    for batch in &t.customers {
        customer_columns.push(CustomerColumns {
            id: text_column(batch, "customer_id")?
                .ok_or_else(|| missing_column(batch, "customer_id", "the customer key"))?,
            segment: text_column(batch, "segment")?
                .ok_or_else(|| missing_column(batch, "segment", "the customer's segment"))?,
            favourite: text_column(batch, "favourite_category")?,
            top: text_column(batch, "top_category")?,
            rows: batch.num_rows(),
        });
    }
    let slot = cache.get_or_compute_from(&t.index_inputs, IndexKey::new(t, cfg), || {
        compute_here(|| {
            SharedIndex::build(
                &t.catalog,
                &t.transactions,
                cfg.analysis_date,
                cfg.recent_days,
                Orders::Ignored,
            )
            .map_err(|e| e.to_string())
        })
    });
    Ok((customer_columns, slot))
}

fn ranked(
    t: &RecommendInputs,
    customer_columns: Vec<CustomerColumns>,
    shared: &SharedIndex,
    no_products: bool,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<Output, NodeError> {
    use std::fmt::Write as _;

    let products = &shared.products;
    let categories = &shared.categories;

    let affinity_columns = match (&t.affinity, cfg.strategy) {
        (Some(aff), Strategy::CrossSell) => Some((
            text_column(aff, "product_id")?
                .ok_or_else(|| missing_column(aff, "product_id", "the item of a pair"))?,
            text_column(aff, "other_product_id")?
                .ok_or_else(|| missing_column(aff, "other_product_id", "the partner"))?,
            f64_column(aff, "count")?,
            f64_column(aff, "confidence")?,
            f64_column(aff, "lift")?
                .ok_or_else(|| missing_column(aff, "lift", "the co-purchase lift"))?,
            aff.num_rows(),
        )),
        _ => None,
    };

    // --- Customers ---------------------------------------------------------------------------
    struct Customer<'a> {
        id: &'a str,
        segment: &'a str,
        categories: [Option<u32>; 2],
    }
    // A category no item has holds no candidates: known ones only.
    let category = |col: &Option<TextColumn>, i: usize| {
        col.as_ref()
            .and_then(|c| c.get(i))
            .and_then(|s| categories.get(s))
    };
    let customer_rows: usize = customer_columns.iter().map(|c| c.rows).sum();
    let mut customers: Vec<Customer<'_>> = Vec::with_capacity(customer_rows);
    let mut customer_ids = Ids {
        map: StrMap::with_capacity(customer_rows),
        names: Vec::with_capacity(customer_rows),
    };
    let mut duplicate_customers = 0u64;
    // Each customer's number among the buyers of the transactions.
    let mut buyer_of: Vec<Option<u32>> = Vec::with_capacity(customer_rows);
    for cols in &customer_columns {
        for i in 0..cols.rows {
            let Some(id) = cols.id.get(i) else { continue };
            if !customer_ids.intern(id).1 {
                duplicate_customers += 1;
                continue;
            }
            buyer_of.push(shared.buyers.get(id));
            let favourite = category(&cols.favourite, i);
            let top = category(&cols.top, i).filter(|t| Some(*t) != favourite);
            customers.push(Customer {
                id,
                segment: cols.segment.get(i).unwrap_or(""),
                categories: [favourite, top],
            });
        }
    }
    // --- Affinity ----------------------------------------------------------------------------
    let mut pairs: Vec<Pair> = Vec::new();
    if let Some((a_col, b_col, count, confidence, lift, rows)) = &affinity_columns {
        let value = |col: &Option<arrow_array::Float64Array>, i: usize| {
            col.as_ref()
                .filter(|c| c.is_valid(i))
                .map_or(f64::NAN, |c| c.value(i))
        };
        for i in 0..*rows {
            let (Some(a), Some(b)) = (a_col.get(i), b_col.get(i)) else {
                continue;
            };
            if !lift.is_valid(i) || !lift.value(i).is_finite() {
                continue;
            }
            // A seed the branch never bought and a partner outside the catalog cannot matter.
            let (Some(a), Some(b)) = (products.ids.get(a), products.ids.get(b)) else {
                continue;
            };
            pairs.push(Pair {
                seed: a,
                partner: b,
                count: value(count, i),
                confidence: value(confidence, i),
                lift: lift.value(i),
            });
        }
    }
    let missing_from_catalog = (shared.products.ids.len() - shared.catalog_items) as u64;
    let members: Vec<Member> = customers
        .iter()
        .zip(&buyer_of)
        .map(|(c, &buyer)| Member {
            buyer,
            categories: c.categories,
        })
        .collect();

    // --- Per customer ------------------------------------------------------------------------
    let mut out = OutBuilders::new(
        customers.len() * cfg.top_k,
        products.ids.len(),
        categories.len(),
    );
    let (mut with_recs, mut fallback_rows) = (0u64, 0u64);
    rank(shared, &members, &pairs, cfg, |c, picks, _| {
        let customer = &customers[c];
        if !picks.is_empty() {
            with_recs += 1;
        }
        fallback_rows += picks.iter().filter(|p| p.fallback).count() as u64;
        for (rank, pick) in picks.iter().enumerate() {
            let p = pick.item as usize;
            let category = products.category[p].map(|c| (c, &*categories.names[c as usize]));
            out.customer(c, customer.id, customer.segment);
            out.rank.append_value(rank as i64 + 1);
            out.product(p, &products.ids.names[p], products.display_name(pick.item));
            out.category(category);
            let category = category.map(|(_, name)| name);
            out.score.append_value(pick.score);
            let buf = &mut out.reason_buf;
            buf.clear();
            let _ = match (pick.reason, category) {
                (Reason::BoughtWith(seed), _) => {
                    write!(buf, "often bought with {}", products.display_name(seed))
                }
                (Reason::StepUp, Some(c)) => write!(buf, "a step up in {c}"),
                (Reason::StepUp, None) => write!(buf, "a step up"),
                (Reason::Trending, Some(c)) => write!(buf, "trending in {c}"),
                (Reason::Trending, None) => write!(buf, "trending now"),
                (Reason::Bestseller, Some(c)) => write!(buf, "bestseller in {c}"),
                (Reason::Bestseller, None) => write!(buf, "bestseller"),
                (Reason::Due(days), _) => {
                    write!(
                        buf,
                        "due again (bought every ~{})",
                        flow_engine::plural::plural(days.round().max(0.0) as u64, "day")
                    )
                }
            };
            out.reason.append(&out.reason_buf);
            out.strategy.append(if pick.fallback {
                Strategy::Bestsellers.as_str()
            } else {
                cfg.strategy.as_str()
            });
        }
    });

    let table = out.finish()?;
    let backtest = (cfg.backtest_days > 0).then(|| {
        let ids: Vec<&str> = customers.iter().map(|c| c.id).collect();
        super::backtest::backtest(shared, &ids, t, cfg, cache)
    });
    let rows = table.num_rows() as u64;
    let mut output = Output::table(table);
    if no_products {
        tracing::info!("{}", no_products::MESSAGE);
        output = output.with_meta(no_products::META_KEY, no_products::MESSAGE);
    }
    if let Some(backtest) = backtest {
        output = output.with_meta("backtest", backtest);
    }
    Ok(output
        .with_meta("strategy", cfg.strategy.as_str())
        .with_meta("customers", customers.len() as u64)
        .with_meta("customers_with_recommendations", with_recs)
        .with_meta(
            "customers_without_recommendations",
            customers.len() as u64 - with_recs,
        )
        .with_meta("recommendations", rows)
        .with_meta("fallback_recommendations", fallback_rows)
        .with_meta("analysis_date", day_string(shared.end))
        .with_meta("catalog_items", shared.catalog_items as u64)
        .with_meta("out_of_stock_items", shared.out_of_stock)
        .with_meta("missing_from_catalog_items", missing_from_catalog)
        .with_meta("duplicate_catalog_rows", shared.duplicate_catalog_rows)
        .with_meta("duplicate_customers", duplicate_customers)
        .with_meta("transactions_after_analysis_date", shared.rows_after)
        .with_meta("refund_rows_ignored", shared.refund_rows)
        .with_meta("incomplete_transaction_rows", shared.incomplete_rows))
}
