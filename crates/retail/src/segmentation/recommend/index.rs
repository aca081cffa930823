//! The segment-independent index of a run: the catalog and the transactions indexed once and
//! shared by the run's recommend nodes through the run cache.

use std::sync::OnceLock;

use arrow_array::{Array, RecordBatch};

use super::super::{FirstRows, TextColumn, date_column, f64_column, missing_column, text_column};
use super::RecommendConfig;
use super::RecommendInputs;
use super::ids::{OwnedIds, Products};
use super::strategies::median;
use crate::str_map::StrMap;
use flow_engine::node::NodeError;

/// One purchase line of a customer of the input branch (32 bytes: an index holds one per
/// transaction row).
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    pub(super) cust: u32,
    pub(super) item: u32,
    pub(super) day: i32,
    /// The category, [`NO_CATEGORY`] for none (see [`Line::category`]).
    category: u32,
    pub(super) spend: f64,
    pub(super) units: f64,
}

/// A line's `category` when it has none.
const NO_CATEGORY: u32 = u32::MAX;

impl Line {
    pub(super) fn category(&self) -> Option<u32> {
        (self.category != NO_CATEGORY).then_some(self.category)
    }

    /// The same line as customer `cust`'s.
    pub(super) fn of(&self, cust: u32) -> Line {
        Line { cust, ..*self }
    }
}

/// The half-life of a purchase's weight in the popularity of its item.
pub(super) const POP_HALF_LIFE_DAYS: f64 = 60.0;
/// The largest trend factor (a rise from nothing is not infinitely hot).
pub(super) const MAX_TREND: f64 = 3.0;

/// Items by popularity.
pub(super) struct Popular {
    pub(super) by_category: Vec<Vec<u32>>,
    pub(super) overall: Vec<u32>,
    /// Per category: the popularity of its products (available or not).
    pub(super) category_pop: Vec<f64>,
    pub(super) total: f64,
}

/// Rising items by popularity × trend.
pub(super) struct Rising {
    pub(super) by_category: Vec<Vec<u32>>,
    pub(super) overall: Vec<u32>,
    /// Per product: the trend factor (0: not rising).
    pub(super) trend: Vec<f64>,
}

/// The analysis date: the one given, else the latest transaction date.
fn end_date(dates: &arrow_array::Date32Array, analysis_date: Option<i32>) -> i32 {
    match analysis_date {
        Some(d) => d,
        None => (0..dates.len())
            .filter(|&i| dates.is_valid(i))
            .map(|i| dates.value(i))
            .max()
            .unwrap_or(0),
    }
}

/// Per key of a dictionary-encoded column, the index its value was given: a value is looked
/// up once, not once per row.
struct ByKey(Vec<u32>);

impl ByKey {
    fn new<'c>(column: impl Into<Option<&'c TextColumn>>) -> Self {
        ByKey(vec![
            u32::MAX;
            column.into().map_or(0, TextColumn::dict_len)
        ])
    }

    /// The index of row `i`'s value (not null): `index()` the first time its key is seen, or
    /// every time for a column that is not a dictionary.
    #[inline]
    fn index(&mut self, column: &TextColumn, i: usize, index: impl FnOnce() -> u32) -> u32 {
        match column.dict_key(i) {
            Some(k) => {
                if self.0[k] == u32::MAX {
                    self.0[k] = index();
                }
                self.0[k]
            }
            None => index(),
        }
    }
}

/// Whether an index numbers its lines' orders: only the backtest's co-purchase pairs read them,
/// and naming every order of a large export takes a hash table of millions of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Orders {
    Numbered,
    Ignored,
}

/// The buyer of a transaction row the index leaves out.
const SKIPPED: u32 = u32::MAX;

/// The catalog's columns.
pub(super) struct CatalogColumns {
    pub(super) id: TextColumn,
    pub(super) name: Option<TextColumn>,
    pub(super) category: Option<TextColumn>,
    pub(super) price: Option<arrow_array::Float64Array>,
    pub(super) stock: arrow_array::Float64Array,
}

impl CatalogColumns {
    pub(super) fn new(catalog: &RecordBatch) -> Result<Self, NodeError> {
        Ok(CatalogColumns {
            id: text_column(catalog, "product_id")?.ok_or_else(|| {
                missing_column(catalog, "product_id", "the catalog's product key")
            })?,
            name: match text_column(catalog, "name")? {
                Some(c) => Some(c),
                None => text_column(catalog, "product_name")?,
            },
            category: text_column(catalog, "category")?,
            price: f64_column(catalog, "price")?,
            stock: f64_column(catalog, "stock")?
                .ok_or_else(|| missing_column(catalog, "stock", "inventory availability"))?,
        })
    }
}

/// The segment-independent part of a run: the catalog and the transactions indexed once, for
/// every recommend node of the run (kept in the run's cache under an [`IndexKey`]). Built from
/// the catalog and the transactions with the `analysis_date` and `recent_days` of the key,
/// nothing else.
pub(super) struct SharedIndex {
    /// Catalog categories, then the ones seen only in transactions.
    pub(super) categories: OwnedIds,
    pub(super) category_rank: Vec<u32>,
    pub(super) products: Products,
    /// Position of each product id in sorted order.
    pub(super) id_rank: Vec<u32>,
    pub(super) catalog_items: usize,
    pub(super) out_of_stock: u64,
    pub(super) duplicate_catalog_rows: u64,
    pub(super) end: i32,
    pub(super) rows_after: u64,
    pub(super) refund_rows: u64,
    pub(super) incomplete_rows: u64,
    /// Every customer of the kept transaction rows, by first appearance.
    pub(super) buyers: StrMap,
    /// The kept transaction rows; `cust` indexes `buyers`. Grouped by buyer, each buyer's by
    /// (item, day), lines of one item and day in input order: a branch copies contiguous runs
    /// instead of gathering rows scattered over the whole table.
    pub(super) lines: Vec<Line>,
    /// CSR offsets per buyer into `lines`.
    pub(super) by_buyer: Vec<usize>,
    /// (order, item) of every kept row with an `order_id`, in input order, each order named
    /// by the row of its first kept line (so they ascend by first appearance); empty in an
    /// index built with [`Orders::Ignored`].
    pub(super) order_items: Vec<(u32, u32)>,
    /// Recency-weighted popularity: per line `0.5^(age / POP_HALF_LIFE_DAYS)`, age in days
    /// before the analysis date.
    pub(super) pop: Vec<f64>,
    pub(super) recent: Vec<f64>,
    pub(super) prior: Vec<f64>,
    /// Candidate lists, each built when a strategy first needs it.
    pub(super) popular: OnceLock<Popular>,
    pub(super) rising: OnceLock<Rising>,
    pub(super) interval: OnceLock<Vec<f64>>,
}

impl SharedIndex {
    pub(super) fn build(
        catalog: &RecordBatch,
        tx: &RecordBatch,
        analysis_date: Option<i32>,
        recent_days: i32,
        orders_of_lines: Orders,
    ) -> Result<Self, NodeError> {
        let cat = CatalogColumns::new(catalog)?;
        let need = |name: &str, why: &str| missing_column(tx, name, why);
        let tx_customer = text_column(tx, "customer_id")?
            .ok_or_else(|| need("customer_id", "the customer key"))?;
        let tx_product =
            text_column(tx, "product_id")?.ok_or_else(|| need("product_id", "the product key"))?;
        let tx_date = date_column(tx, "date")?.ok_or_else(|| need("date", "the purchase date"))?;
        let tx_quantity = f64_column(tx, "quantity")?;
        let tx_amount = f64_column(tx, "amount")?;
        let tx_category = text_column(tx, "category")?;
        let tx_name = text_column(tx, "product_name")?;
        let tx_order = match orders_of_lines {
            Orders::Numbered => text_column(tx, "order_id")?,
            Orders::Ignored => None,
        };
        // An order is named by its first line's row: the numbers only group lines by order.
        let mut orders = tx_order.as_ref().map(FirstRows::new);

        // --- Catalog -------------------------------------------------------------------------
        let mut categories = OwnedIds::default();
        let mut products = Products::default();
        let (mut out_of_stock, mut duplicate_catalog_rows) = (0u64, 0u64);
        for i in 0..catalog.num_rows() {
            let Some(id) = cat.id.get(i) else { continue };
            let category = cat
                .category
                .as_ref()
                .and_then(|c| c.get(i))
                .map(|c| categories.intern(c).0);
            let name = cat.name.as_ref().and_then(|c| c.get(i));
            let (p, new) = products.index(id, name, category);
            if !new {
                duplicate_catalog_rows += 1;
                continue;
            }
            let p = p as usize;
            products.price[p] = cat
                .price
                .as_ref()
                .filter(|c| c.is_valid(i))
                .map_or(f64::NAN, |c| c.value(i));
            let in_stock = cat.stock.is_valid(i) && cat.stock.value(i) > 0.0;
            products.available[p] = in_stock;
            if !in_stock {
                out_of_stock += 1;
            }
        }
        let catalog_items = products.ids.len();

        // --- Transactions --------------------------------------------------------------------
        let end = end_date(&tx_date, analysis_date);
        let recent_start = end - recent_days; // exclusive
        let prior_start = recent_start - recent_days; // exclusive
        let value = |col: &Option<arrow_array::Float64Array>, i: usize| {
            col.as_ref().filter(|c| c.is_valid(i)).map(|c| c.value(i))
        };

        // First pass: which rows are kept, and each kept row's buyer (numbered by first
        // appearance), so the second pass writes every line straight to its buyer's place.
        let (mut rows_after, mut refund_rows, mut incomplete_rows) = (0u64, 0u64, 0u64);
        let mut buyers = StrMap::default();
        let mut row_buyer: Vec<u32> = Vec::with_capacity(tx.num_rows());
        let mut last_customer: Option<(&str, u32)> = None;
        // A dictionary-encoded customer column: each key's buyer, found without hashing the id.
        let mut buyer_by_key = vec![u32::MAX; tx_customer.dict_len()];
        for i in 0..tx.num_rows() {
            let (Some(c), Some(_)) = (tx_customer.get(i), tx_product.get(i)) else {
                incomplete_rows += 1;
                row_buyer.push(SKIPPED);
                continue;
            };
            if !tx_date.is_valid(i) {
                incomplete_rows += 1;
                row_buyer.push(SKIPPED);
                continue;
            }
            if tx_date.value(i) > end {
                rows_after += 1;
                row_buyer.push(SKIPPED);
                continue;
            }
            if value(&tx_quantity, i).is_some_and(|q| q < 0.0)
                || value(&tx_amount, i).is_some_and(|a| a < 0.0)
            {
                refund_rows += 1;
                row_buyer.push(SKIPPED);
                continue;
            }
            // Rows of one customer usually come together: remember the last look-up.
            let cust = match (tx_customer.dict_key(i), last_customer) {
                (Some(k), _) => {
                    if buyer_by_key[k] == u32::MAX {
                        buyer_by_key[k] = buyers.get_or_insert(c, buyers.len() as u32);
                    }
                    buyer_by_key[k]
                }
                (None, Some((last, id))) if last == c => id,
                (None, _) => {
                    let id = buyers.get_or_insert(c, buyers.len() as u32);
                    last_customer = Some((c, id));
                    id
                }
            };
            row_buyer.push(cust);
        }
        drop(buyer_by_key);
        let mut by_buyer = vec![0usize; buyers.len() + 1];
        for &b in &row_buyer {
            if b != SKIPPED {
                by_buyer[b as usize + 1] += 1;
            }
        }
        for b in 0..buyers.len() {
            by_buyer[b + 1] += by_buyer[b];
        }
        let mut next = by_buyer.clone();

        // Second pass, in input order: the products, their popularity, and the lines.
        let mut pop: Vec<f64> = Vec::new();
        let mut recent: Vec<f64> = Vec::new();
        let mut prior: Vec<f64> = Vec::new();
        let kept = by_buyer[buyers.len()];
        let mut lines = vec![
            Line {
                cust: 0,
                item: 0,
                day: 0,
                category: NO_CATEGORY,
                spend: 0.0,
                units: 0.0,
            };
            kept
        ];
        // At most one per line: sized once, not grown by doubling (tens of millions of lines).
        let mut order_items: Vec<(u32, u32)> =
            Vec::with_capacity(if orders.is_some() { kept } else { 0 });
        let mut item_keys = ByKey::new(&tx_product);
        let mut category_keys = ByKey::new(tx_category.as_ref());
        for (i, &cust) in row_buyer.iter().enumerate() {
            if cust == SKIPPED {
                continue;
            }
            let (Some(pid), day) = (tx_product.get(i), tx_date.value(i)) else {
                continue;
            };
            let quantity = value(&tx_quantity, i);
            let amount = value(&tx_amount, i);
            let category = tx_category.as_ref().and_then(|col| {
                let s = col.get(i)?;
                Some(category_keys.index(col, i, || categories.intern(s).0))
            });
            let name = tx_name.as_ref().and_then(|col| col.get(i));
            let item = item_keys.index(&tx_product, i, || products.index(pid, name, category).0);
            let p = item as usize;
            // The catalog's name and category win; the transactions fill in what it lacks.
            if products.category[p].is_none() {
                products.category[p] = category;
            }
            if products.name[p].is_none() && name.is_some() {
                products.name[p] = name.map(Into::into);
            }
            if p >= pop.len() {
                let len = products.ids.len().max(p + 1);
                pop.resize(len, 0.0);
                recent.resize(len, 0.0);
                prior.resize(len, 0.0);
            }
            let units = quantity.unwrap_or(1.0);
            pop[p] += (-f64::from(end - day) * std::f64::consts::LN_2 / POP_HALF_LIFE_DAYS).exp();
            if day > recent_start {
                recent[p] += units;
            } else if day > prior_start {
                prior[p] += units;
            }
            let price = products.price[p];
            // The lines of an order usually come together: `first` looks up only a new one.
            if let (Some(orders), Some(o)) = (&mut orders, tx_order.as_ref().and_then(|c| c.get(i)))
            {
                order_items.push((orders.first(i, o), item));
            }
            let slot = &mut next[cust as usize];
            lines[*slot] = Line {
                cust,
                item,
                day,
                category: products.category[p].or(category).unwrap_or(NO_CATEGORY),
                spend: amount.unwrap_or(if price.is_finite() {
                    price * units
                } else {
                    0.0
                }),
                units,
            };
            *slot += 1;
        }
        drop((row_buyer, next, orders));
        // Each buyer's lines by (item, day); lines of one item and day keep their input order.
        for b in 0..buyers.len() {
            lines[by_buyer[b]..by_buyer[b + 1]].sort_by_key(|l| (l.item, l.day));
        }
        let n = products.ids.len();
        pop.resize(n, 0.0);
        recent.resize(n, 0.0);
        prior.resize(n, 0.0);
        Ok(SharedIndex {
            category_rank: categories.sorted_ranks(),
            categories,
            id_rank: products.ids.sorted_ranks(),
            products,
            catalog_items,
            out_of_stock,
            duplicate_catalog_rows,
            end,
            rows_after,
            refund_rows,
            incomplete_rows,
            buyers,
            lines,
            by_buyer,
            order_items,
            pop,
            recent,
            prior,
            popular: OnceLock::new(),
            rising: OnceLock::new(),
            interval: OnceLock::new(),
        })
    }

    /// The analysis date an index of `tx` has (`Ok(None)`: `tx` has no dates to index).
    pub(super) fn end_of(
        tx: &RecordBatch,
        analysis_date: Option<i32>,
    ) -> Result<Option<i32>, NodeError> {
        Ok(date_column(tx, "date")?.map(|dates| end_date(&dates, analysis_date)))
    }

    /// Best first: higher score, then lower product id.
    pub(super) fn order(&self, a: &(u32, f64), b: &(u32, f64)) -> std::cmp::Ordering {
        b.1.total_cmp(&a.1)
            .then(self.id_rank[a.0 as usize].cmp(&self.id_rank[b.0 as usize]))
    }

    /// Per category and overall: available items with sales, most popular first.
    pub(super) fn popular(&self) -> &Popular {
        self.popular.get_or_init(|| {
            let products = &self.products;
            let mut category_pop = vec![0.0; self.categories.len()];
            let mut total = 0.0;
            for (p, &v) in self.pop.iter().enumerate() {
                total += v;
                if let Some(c) = products.category[p] {
                    category_pop[c as usize] += v;
                }
            }
            let (by_category, overall) = self.ranked(|p| {
                (products.available[p as usize] && self.pop[p as usize] > 0.0)
                    .then(|| self.pop[p as usize])
            });
            Popular {
                by_category,
                overall,
                category_pop,
                total,
            }
        })
    }

    /// Rising items (units sold in the last `recent_days` above the `recent_days` before), per
    /// category and overall, by popularity × trend, with the trend factor
    /// `min((recent + 1) / (prior + 1), MAX_TREND)`.
    pub(super) fn rising(&self) -> &Rising {
        self.rising.get_or_init(|| {
            let trend: Vec<f64> = self
                .recent
                .iter()
                .zip(&self.prior)
                .map(|(&r, &b)| {
                    if r > b {
                        ((r + 1.0) / (b + 1.0)).min(MAX_TREND)
                    } else {
                        0.0
                    }
                })
                .collect();
            let (by_category, overall) = self.ranked(|p| {
                let p = p as usize;
                (self.products.available[p] && trend[p] > 0.0).then(|| self.pop[p] * trend[p])
            });
            Rising {
                by_category,
                overall,
                trend,
            }
        })
    }

    /// The catalog items `score` keeps, best first, per category and overall.
    fn ranked(&self, score: impl Fn(u32) -> Option<f64>) -> (Vec<Vec<u32>>, Vec<u32>) {
        let mut overall: Vec<(u32, f64)> = (0..self.catalog_items as u32)
            .filter_map(|p| score(p).map(|v| (p, v)))
            .collect();
        overall.sort_unstable_by(|a, b| self.order(a, b));
        let mut by_category = vec![Vec::new(); self.categories.len()];
        for &(p, _) in &overall {
            if let Some(c) = self.products.category[p as usize] {
                by_category[c as usize].push(p);
            }
        }
        (by_category, overall.into_iter().map(|(p, _)| p).collect())
    }

    /// Median repurchase interval per product over all customers (NaN when unknown).
    pub(super) fn interval(&self) -> &[f64] {
        self.interval.get_or_init(|| {
            let mut all_buys: Vec<(u32, u32, i32)> =
                self.lines.iter().map(|l| (l.item, l.cust, l.day)).collect();
            all_buys.sort_unstable();
            all_buys.dedup();
            let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); self.products.ids.len()];
            for w in all_buys.windows(2) {
                let (a, b) = (w[0], w[1]);
                if a.0 == b.0 && a.1 == b.1 {
                    gaps[a.0 as usize].push(f64::from(b.2 - a.2));
                }
            }
            gaps.iter_mut().map(|g| median(g)).collect()
        })
    }
}

/// What a [`SharedIndex`] is built from within a run: the inputs the catalog and the
/// transactions come from, and the parameters the index depends on.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct IndexKey {
    pub(super) catalog: String,
    pub(super) transactions: String,
    pub(super) analysis_date: Option<i32>,
    pub(super) recent_days: i32,
}

impl IndexKey {
    pub(super) fn new(t: &RecommendInputs, cfg: &RecommendConfig) -> Self {
        let [catalog, transactions] = t.index_inputs.clone();
        IndexKey {
            catalog,
            transactions,
            analysis_date: cfg.analysis_date,
            recent_days: cfg.recent_days,
        }
    }
}
