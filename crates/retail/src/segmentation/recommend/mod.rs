//! `segmentation.recommend`: top-K products per customer of a segment branch.
//!
//! Inputs, identified by their columns (see [`super::retail_inputs`]): one or more customers
//! branches (`segment`), the transactions (`order_id`), the catalog (`stock`) and, for
//! `cross_sell`, the item affinity table (`other_product_id`).
//!
//! # Strategies
//! Every strategy ranks candidates by score (descending), ties by `product_id` (ascending), and
//! keeps `top_k`. Items missing from the catalog, out of stock (`stock <= 0`) or with unknown
//! stock are never recommended; items the customer already bought are left out unless
//! `include_purchased` (or `replenishment`).
//!
//! - `cross_sell`: items with the highest co-purchase lift with anything the customer bought
//!   (pairs with `lift >= min_lift`). Score: the highest lift over the customer's items; reason
//!   `often bought with <that item>`.
//! - `upsell`: higher-priced items in the customer's affine categories: the (up to) three
//!   categories with the largest share `s` of the customer's spend. For each, the reference price
//!   `p0` is the highest price of an item the customer bought there (catalog price, else the
//!   unit price paid); candidates are items priced above `p0`. Score `s × p0 / price`: the
//!   customer's main categories and the smaller steps first. Reason `a step up in <category>`.
//! - `seasonal`: items whose units sold in the last `recent_days` before the analysis date rose
//!   versus the `recent_days` before that. Score: the rise in standard deviations of a Poisson
//!   count, `(recent − prior) / sqrt(recent + prior)`; only rising items. Reason
//!   `trending in <category>`.
//! - `bestsellers`: the items with the most units sold (up to the analysis date) in the
//!   customer's `favourite_category` and `top_category`, then overall. Score: units sold. Reason
//!   `bestseller in <category>`. Meant for new customers.
//! - `replenishment`: items the customer bought before that are due again: the customer's own
//!   median interval between purchase days of the item when they bought it on 3 or more days,
//!   else the median over all customers' repeat purchases of the item. Due when days since the
//!   last purchase >= interval; score `days since / interval`. Reason
//!   `due again (bought every ~N days)`. Implies `include_purchased`.
//!
//! With `fallback: bestsellers`, customers left with fewer than `top_k` items get bestsellers
//! (their `strategy` column says `bestsellers`).
//!
//! Transactions: rows after the analysis date (default: the latest transaction date) and refund
//! lines (negative amount or quantity) are ignored; units are `quantity` (1 without it).
//!
//! Cost: candidate lists are built once (per category, per item, global), so a customer costs
//! O(own purchases + partners of their items + top_k), never a scan of the catalog.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;

use super::retail_inputs::{Sorted, TableKind, check_declared_inputs};
use super::{
    FastHash, TextColumn, date_column, date_param, day_string, f64_column, missing_column,
    no_products, sorted_ranks, text_column,
};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use flow_engine::run_cache::RunCache;

const NODE: &str = "segmentation.recommend";

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 9] = [
    "customer_id",
    "segment",
    "rank",
    "product_id",
    "product_name",
    "category",
    "score",
    "reason",
    "strategy",
];

const STRATEGIES: [&str; 5] = [
    "cross_sell",
    "upsell",
    "seasonal",
    "bestsellers",
    "replenishment",
];

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    CrossSell,
    Upsell,
    Seasonal,
    Bestsellers,
    Replenishment,
}

impl Strategy {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cross_sell" => Strategy::CrossSell,
            "upsell" => Strategy::Upsell,
            "seasonal" => Strategy::Seasonal,
            "bestsellers" => Strategy::Bestsellers,
            "replenishment" => Strategy::Replenishment,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Strategy::CrossSell => "cross_sell",
            Strategy::Upsell => "upsell",
            Strategy::Seasonal => "seasonal",
            Strategy::Bestsellers => "bestsellers",
            Strategy::Replenishment => "replenishment",
        }
    }
}

/// The validated parameters.
#[derive(Debug, Clone)]
pub(crate) struct RecommendConfig {
    pub(crate) strategy: Strategy,
    pub(crate) top_k: usize,
    pub(crate) include_purchased: bool,
    pub(crate) min_lift: f64,
    pub(crate) recent_days: i32,
    pub(crate) analysis_date: Option<i32>,
    pub(crate) fallback_bestsellers: bool,
}

impl RecommendConfig {
    pub(crate) fn new(strategy: Strategy) -> Self {
        RecommendConfig {
            strategy,
            top_k: 5,
            include_purchased: false,
            min_lift: 1.0,
            recent_days: 28,
            analysis_date: None,
            fallback_bestsellers: false,
        }
    }

    fn from_params(params: &Params) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let strategy = match params.str("strategy") {
            Ok(s) => Strategy::parse(s).or_else(|| {
                errors.push(ParamError::new(
                    "strategy",
                    format!("must be one of {}, got `{s}`", STRATEGIES.join(", ")),
                ));
                None
            }),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let mut cfg = RecommendConfig::new(strategy.unwrap_or(Strategy::Bestsellers));
        match params.u64_or("top_k", 5) {
            Ok(k) if (1..=1000).contains(&k) => cfg.top_k = k as usize,
            Ok(k) => errors.push(ParamError::new(
                "top_k",
                format!("must be between 1 and 1000, got {k}"),
            )),
            Err(e) => errors.push(e),
        }
        match params.bool_or("include_purchased", false) {
            Ok(b) => cfg.include_purchased = b,
            Err(e) => errors.push(e),
        }
        match params.f64_or("min_lift", 1.0) {
            Ok(v) if v.is_finite() && v >= 0.0 => cfg.min_lift = v,
            Ok(v) => errors.push(ParamError::new(
                "min_lift",
                format!("must be a number >= 0, got {v}"),
            )),
            Err(e) => errors.push(e),
        }
        match params.u64_or("recent_days", 28) {
            Ok(d) if (1..=3660).contains(&d) => cfg.recent_days = d as i32,
            Ok(d) => errors.push(ParamError::new(
                "recent_days",
                format!("must be between 1 and 3660, got {d}"),
            )),
            Err(e) => errors.push(e),
        }
        match date_param(params, "analysis_date") {
            Ok(d) => cfg.analysis_date = d,
            Err(e) => errors.push(e),
        }
        match params.str_or("fallback", "none") {
            Ok("none") => {}
            Ok("bestsellers") => cfg.fallback_bestsellers = true,
            Ok(other) => errors.push(ParamError::new(
                "fallback",
                format!("must be `none` or `bestsellers`, got `{other}`"),
            )),
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug)]
pub struct Recommend;

impl NodeType for Recommend {
    fn name(&self) -> &'static str {
        NODE
    }
    fn summary(&self) -> &'static str {
        "Top-K product recommendations per customer of a segment (cross-sell, upsell, seasonal, \
         bestsellers, replenishment), in stock only, each with a score and a reason."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "strategy",
                ParamType::String,
                "cross_sell, upsell, seasonal, bestsellers or replenishment",
            ),
            ParamSpec::with_default("top_k", ParamType::Integer, "5", "items per customer"),
            ParamSpec::with_default(
                "include_purchased",
                ParamType::Bool,
                "false",
                "also recommend items the customer already bought",
            ),
            ParamSpec::with_default(
                "min_lift",
                ParamType::Number,
                "1.0",
                "cross_sell: ignore co-purchase pairs with a lower lift",
            ),
            ParamSpec::with_default(
                "recent_days",
                ParamType::Integer,
                "28",
                "seasonal: the recent window, compared with the window before it",
            ),
            ParamSpec::optional(
                "analysis_date",
                ParamType::String,
                "YYYY-MM-DD; later transactions are ignored (default: the latest transaction date)",
            ),
            ParamSpec::with_default(
                "fallback",
                ParamType::String,
                "none",
                "none or bestsellers: fill lists shorter than top_k with bestsellers",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cfg = RecommendConfig::from_params(params)?;
        let mut errors = Vec::new();
        let mut required = vec![
            TableKind::Customers,
            TableKind::Transactions,
            TableKind::Catalog,
        ];
        if cfg.strategy == Strategy::CrossSell {
            required.push(TableKind::Affinity);
        }
        check_declared_inputs(cx, NODE, &required, &mut errors);
        if errors.is_empty() {
            Ok(Arc::new(Configured { cfg }))
        } else {
            Err(errors)
        }
    }
}

struct Configured {
    cfg: RecommendConfig,
}

/// The input tables of one run.
#[derive(Debug, Clone)]
pub(crate) struct RecommendInputs {
    pub(crate) customers: Vec<RecordBatch>,
    pub(crate) transactions: RecordBatch,
    pub(crate) catalog: RecordBatch,
    pub(crate) affinity: Option<RecordBatch>,
    /// The inputs (their `needs` names) the catalog and the transactions come from: within a
    /// run they name the same tables for every node, so they key the run's shared index.
    pub(crate) index_inputs: [String; 2],
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(OUTPUT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let sorted = Sorted::new(&inputs);
        let customers: Vec<RecordBatch> = sorted
            .all(TableKind::Customers)
            .into_iter()
            .cloned()
            .collect();
        // An empty segment (the node's rule let it run anyway) recommends nothing.
        let customers = if customers.is_empty() {
            vec![super::classify::no_customers()]
        } else {
            customers
        };
        let tables = RecommendInputs {
            customers,
            transactions: sorted.require(TableKind::Transactions, NODE)?.clone(),
            catalog: sorted.require(TableKind::Catalog, NODE)?.clone(),
            affinity: match self.cfg.strategy {
                Strategy::CrossSell => Some(sorted.require(TableKind::Affinity, NODE)?.clone()),
                _ => sorted.first(TableKind::Affinity).cloned(),
            },
            index_inputs: [TableKind::Catalog, TableKind::Transactions].map(|kind| {
                let first = sorted.tables.iter().find(|(k, _, _)| *k == kind);
                first.map(|(_, input, _)| input.name()).unwrap_or_default()
            }),
        };
        let cfg = self.cfg.clone();
        let cache = ctx.run_cache.clone();
        flow_engine::node::spawn_blocking(move || recommend(&tables, &cfg, &cache))
            .await
            .map_err(|e| NodeError::msg(format!("recommendation computation stopped: {e}")))?
    }
}

/// Strings to `u32`, ids of up to 15 bytes packed into the key itself: a look-up in a map of
/// a million customers then neither follows a pointer to the key's bytes nor calls `memcmp`
/// (both cache misses that grow with the map).
#[derive(Default)]
struct StrMap {
    short: HashMap<u128, u32, FastHash>,
    long: HashMap<Box<str>, u32, FastHash>,
}

impl StrMap {
    fn with_capacity(n: usize) -> Self {
        StrMap {
            short: HashMap::with_capacity_and_hasher(n, FastHash),
            long: HashMap::default(),
        }
    }

    /// The bytes and the length in one integer; `None` above 15 bytes.
    #[inline]
    fn pack(s: &str) -> Option<u128> {
        let b = s.as_bytes();
        if b.len() > 15 {
            return None;
        }
        let mut buf = [0u8; 16];
        buf[..b.len()].copy_from_slice(b);
        buf[15] = b.len() as u8;
        Some(u128::from_le_bytes(buf))
    }

    #[inline]
    fn get(&self, s: &str) -> Option<u32> {
        match Self::pack(s) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(s).copied(),
        }
    }

    /// The value of `s`, inserting `next` when absent.
    #[inline]
    fn get_or_insert(&mut self, s: &str, next: u32) -> u32 {
        match Self::pack(s) {
            Some(k) => *self.short.entry(k).or_insert(next),
            None => match self.long.get(s) {
                Some(&v) => v,
                None => {
                    self.long.insert(s.into(), next);
                    next
                }
            },
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }
}

/// Strings to dense indices in first-seen order, with look-up without insertion.
#[derive(Default)]
struct Ids<'a> {
    map: StrMap,
    names: Vec<&'a str>,
}

impl<'a> Ids<'a> {
    /// The index of `s` and whether it is new.
    fn intern(&mut self, s: &'a str) -> (u32, bool) {
        let next = self.names.len() as u32;
        let id = self.map.get_or_insert(s, next);
        if id == next {
            self.names.push(s);
        }
        (id, id == next)
    }
}

/// [`Ids`] owning its strings, for the index shared across the nodes of a run.
#[derive(Default)]
struct OwnedIds {
    map: StrMap,
    names: Vec<Box<str>>,
}

impl OwnedIds {
    /// The index of `s` and whether it is new.
    fn intern(&mut self, s: &str) -> (u32, bool) {
        let next = self.names.len() as u32;
        let id = self.map.get_or_insert(s, next);
        if id == next {
            self.names.push(s.into());
        }
        (id, id == next)
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s)
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    /// The position of each string in sorted order.
    fn sorted_ranks(&self) -> Vec<u32> {
        let names: Vec<&str> = self.names.iter().map(|s| &**s).collect();
        sorted_ranks(&names).1
    }
}

/// Products by dense index: catalog items first, then ids seen only in transactions (never
/// recommended, but they seed cross-sell and name the reason).
#[derive(Default)]
struct Products {
    ids: OwnedIds,
    name: Vec<Option<Box<str>>>,
    category: Vec<Option<u32>>,
    /// Catalog price; NaN when unknown.
    price: Vec<f64>,
    /// In the catalog with stock > 0.
    available: Vec<bool>,
}

impl Products {
    /// The index of `id` and whether it is new (added as not in the catalog).
    fn index(&mut self, id: &str, name: Option<&str>, category: Option<u32>) -> (u32, bool) {
        let (p, new) = self.ids.intern(id);
        if new {
            self.name.push(name.map(Into::into));
            self.category.push(category);
            self.price.push(f64::NAN);
            self.available.push(false);
        }
        (p, new)
    }

    fn display_name(&self, p: u32) -> &str {
        self.name[p as usize]
            .as_deref()
            .unwrap_or(&self.ids.names[p as usize])
    }
}

/// Why an item is recommended.
#[derive(Debug, Clone, Copy)]
enum Reason {
    BoughtWith(u32),
    StepUp,
    Trending,
    Bestseller,
    Due(f64),
}

#[derive(Debug, Clone, Copy)]
struct Pick {
    item: u32,
    score: f64,
    reason: Reason,
    fallback: bool,
}

/// One product a customer bought (up to the analysis date).
#[derive(Debug, Clone, Copy)]
struct Bought {
    item: u32,
    last_day: i32,
    /// The customer's own median interval between purchase days (NaN below 3 days).
    own_interval: f64,
    spend: f64,
    /// Reference price: catalog price, else the highest unit price paid.
    price: f64,
    category: Option<u32>,
}

/// One purchase line of a customer of the input branch.
#[derive(Debug, Clone, Copy)]
struct Line {
    cust: u32,
    item: u32,
    day: i32,
    spend: f64,
    units: f64,
    category: Option<u32>,
}

/// Candidate lists built once per run (most of them shared by the run's nodes).
#[derive(Default)]
struct Candidates<'r> {
    /// Per category: available items with sales, best first.
    best_by_category: &'r [Vec<u32>],
    best_overall: &'r [u32],
    /// Units sold per product.
    units: &'r [f64],
    /// Rising items with their trend score, best first.
    trending: &'r [(u32, f64)],
    /// Per category: available priced items by price ascending.
    by_price: &'r [Vec<u32>],
    /// Cross-sell partners per product (best lift first): CSR offsets into `partners`.
    partner_offsets: &'r [usize],
    partners: &'r [(u32, f64)],
    /// Median repurchase interval per product over all customers (NaN when unknown).
    interval: &'r [f64],
}

/// Per-customer scratch space, reset by stamping with the customer's number.
struct Scratch {
    stamp: u32,
    bought: Vec<u32>,
    chosen: Vec<u32>,
    heap: BinaryHeap<Head>,
}

/// The next partner of one of the customer's items, for the cross-sell merge: the heap's
/// greatest is the highest lift, then the lowest partner id, then the lowest seed id.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    lift: u64,
    partner: Reverse<u32>,
    seed: Reverse<u32>,
    pos: usize,
    end: usize,
    seed_item: u32,
}

/// An order-preserving integer key of a lift (>= 0).
fn lift_key(lift: f64) -> u64 {
    if lift > 0.0 { lift.to_bits() } else { 0 }
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            stamp: 0,
            bought: vec![0; n],
            chosen: vec![0; n],
            heap: BinaryHeap::new(),
        }
    }

    fn is_bought(&self, p: u32) -> bool {
        self.bought[p as usize] == self.stamp
    }

    fn is_chosen(&self, p: u32) -> bool {
        self.chosen[p as usize] == self.stamp
    }

    fn choose(&mut self, p: u32) {
        self.chosen[p as usize] = self.stamp;
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// What the per-customer strategies share.
struct Ranker<'r> {
    cand: &'r Candidates<'r>,
    price: &'r [f64],
    available: &'r [bool],
    /// Position of each product id in sorted order (the tie-break).
    id_rank: &'r [u32],
    /// Position of each category name in sorted order.
    category_rank: &'r [u32],
    top_k: usize,
    exclude_bought: bool,
    end: i32,
}

impl Ranker<'_> {
    /// Best first: higher score, then lower product id.
    fn order(&self, a: (u32, f64), b: (u32, f64)) -> std::cmp::Ordering {
        b.1.total_cmp(&a.1)
            .then(self.id_rank[a.0 as usize].cmp(&self.id_rank[b.0 as usize]))
    }

    /// Sorts `picks[from..]` best first and keeps `top_k` picks in all: a selection first, so
    /// a customer with hundreds of candidates costs linear time, not a full sort.
    fn sort_and_keep(&self, picks: &mut Vec<Pick>, from: usize) {
        let keep = self.top_k.saturating_sub(from);
        let order = |a: &Pick, b: &Pick| self.order((a.item, a.score), (b.item, b.score));
        let tail = &mut picks[from..];
        if keep == 0 {
            picks.truncate(from.min(self.top_k));
            return;
        }
        if tail.len() > keep {
            tail.select_nth_unstable_by(keep - 1, order);
            picks.truncate(from + keep);
        }
        picks[from..].sort_unstable_by(order);
    }

    fn skip(&self, s: &Scratch, p: u32) -> bool {
        (self.exclude_bought && s.is_bought(p)) || s.is_chosen(p)
    }

    /// Merges the customer's items' partner lists (each sorted by lift, then partner id) with
    /// a heap: the first time a partner comes out is at its highest lift (ties: the seed with
    /// the lowest id), in final rank order, so only about `top_k` entries are looked at.
    fn cross_sell(&self, bought: &[Bought], s: &mut Scratch, picks: &mut Vec<Pick>) {
        let offsets = &self.cand.partner_offsets;
        if offsets.is_empty() {
            return;
        }
        let partners = &self.cand.partners;
        let head = |pos: usize, end: usize, seed: u32| {
            let (p, lift) = partners[pos];
            Head {
                lift: lift_key(lift),
                partner: Reverse(self.id_rank[p as usize]),
                seed: Reverse(self.id_rank[seed as usize]),
                pos,
                end,
                seed_item: seed,
            }
        };
        s.heap.clear();
        for b in bought {
            let (lo, hi) = (offsets[b.item as usize], offsets[b.item as usize + 1]);
            if lo < hi {
                s.heap.push(head(lo, hi, b.item));
            }
        }
        while picks.len() < self.top_k {
            let Some(top) = s.heap.pop() else { break };
            let (p, lift) = partners[top.pos];
            if top.pos + 1 < top.end {
                s.heap.push(head(top.pos + 1, top.end, top.seed_item));
            }
            if self.skip(s, p) {
                continue;
            }
            s.choose(p);
            picks.push(Pick {
                item: p,
                score: lift,
                reason: Reason::BoughtWith(top.seed_item),
                fallback: false,
            });
        }
    }

    fn upsell(&self, bought: &[Bought], s: &mut Scratch, picks: &mut Vec<Pick>) {
        // (category, spend, reference price)
        let mut cats: Vec<(u32, f64, f64)> = Vec::new();
        let mut total = 0.0;
        for b in bought {
            let Some(c) = b.category else { continue };
            let spend = b.spend.max(0.0);
            total += spend;
            match cats.iter_mut().find(|x| x.0 == c) {
                Some(x) => {
                    x.1 += spend;
                    if b.price.is_finite() {
                        x.2 = if x.2.is_finite() {
                            x.2.max(b.price)
                        } else {
                            b.price
                        };
                    }
                }
                None => cats.push((c, spend, b.price)),
            }
        }
        if total <= 0.0 {
            return;
        }
        cats.retain(|x| x.1 > 0.0 && x.2.is_finite());
        cats.sort_unstable_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.category_rank[a.0 as usize].cmp(&self.category_rank[b.0 as usize]))
        });
        cats.truncate(3);
        let from = picks.len();
        for &(c, spend, reference) in &cats {
            let share = spend / total;
            let list = &self.cand.by_price[c as usize];
            let start = list.partition_point(|&p| self.price[p as usize] <= reference);
            let mut taken = 0;
            for &p in &list[start..] {
                if taken == self.top_k {
                    break;
                }
                if self.skip(s, p) {
                    continue;
                }
                picks.push(Pick {
                    item: p,
                    score: share * reference / self.price[p as usize],
                    reason: Reason::StepUp,
                    fallback: false,
                });
                taken += 1;
            }
        }
        self.sort_and_keep(picks, from);
    }

    fn seasonal(&self, s: &mut Scratch, picks: &mut Vec<Pick>) {
        for &(p, score) in self.cand.trending {
            if picks.len() >= self.top_k {
                break;
            }
            if self.skip(s, p) {
                continue;
            }
            picks.push(Pick {
                item: p,
                score,
                reason: Reason::Trending,
                fallback: false,
            });
        }
    }

    /// Bestsellers of the customer's categories (merged by units sold), then overall, until
    /// `top_k` picks.
    fn bestsellers(
        &self,
        categories: &[Option<u32>; 2],
        s: &mut Scratch,
        picks: &mut Vec<Pick>,
        fallback: bool,
    ) {
        for p in picks.iter() {
            s.choose(p.item);
        }
        let need = self.top_k.saturating_sub(picks.len());
        if need == 0 {
            return;
        }
        let from = picks.len();
        for c in categories.iter().flatten() {
            let Some(list) = self.cand.best_by_category.get(*c as usize) else {
                continue;
            };
            let mut taken = 0;
            for &p in list {
                if taken == need {
                    break;
                }
                if self.skip(s, p) {
                    continue;
                }
                s.choose(p);
                picks.push(Pick {
                    item: p,
                    score: self.cand.units[p as usize],
                    reason: Reason::Bestseller,
                    fallback,
                });
                taken += 1;
            }
        }
        self.sort_and_keep(picks, from);
        // Items cut by the truncation stay marked; they are not needed again.
        for &p in self.cand.best_overall {
            if picks.len() >= self.top_k {
                break;
            }
            if self.skip(s, p) {
                continue;
            }
            s.choose(p);
            picks.push(Pick {
                item: p,
                score: self.cand.units[p as usize],
                reason: Reason::Bestseller,
                fallback,
            });
        }
    }

    fn replenishment(&self, bought: &[Bought], picks: &mut Vec<Pick>) {
        let from = picks.len();
        for b in bought {
            if !self.available[b.item as usize] {
                continue;
            }
            let interval = if b.own_interval.is_finite() {
                b.own_interval
            } else {
                self.cand.interval[b.item as usize]
            };
            if !(interval.is_finite() && interval > 0.0) {
                continue;
            }
            let ratio = f64::from(self.end - b.last_day) / interval;
            if ratio >= 1.0 {
                picks.push(Pick {
                    item: b.item,
                    score: ratio,
                    reason: Reason::Due(interval),
                    fallback: false,
                });
            }
        }
        self.sort_and_keep(picks, from);
    }
}

/// The output table, row by row.
struct OutBuilders {
    customer_id: StringBuilder,
    segment: StringBuilder,
    rank: Int64Builder,
    product_id: StringBuilder,
    product_name: StringBuilder,
    category: StringBuilder,
    score: Float64Builder,
    reason: StringBuilder,
    strategy: StringBuilder,
    reason_buf: String,
}

impl OutBuilders {
    fn new(rows: usize) -> Self {
        let text = || StringBuilder::with_capacity(rows, rows * 12);
        OutBuilders {
            customer_id: text(),
            segment: text(),
            rank: Int64Builder::with_capacity(rows),
            product_id: text(),
            product_name: text(),
            category: text(),
            score: Float64Builder::with_capacity(rows),
            reason: StringBuilder::with_capacity(rows, rows * 24),
            strategy: text(),
            reason_buf: String::new(),
        }
    }

    fn finish(mut self) -> Result<RecordBatch, NodeError> {
        let columns: Vec<(&str, DataType, bool, ArrayRef)> = vec![
            (
                "customer_id",
                DataType::Utf8,
                false,
                Arc::new(self.customer_id.finish()),
            ),
            (
                "segment",
                DataType::Utf8,
                false,
                Arc::new(self.segment.finish()),
            ),
            ("rank", DataType::Int64, false, Arc::new(self.rank.finish())),
            (
                "product_id",
                DataType::Utf8,
                false,
                Arc::new(self.product_id.finish()),
            ),
            (
                "product_name",
                DataType::Utf8,
                false,
                Arc::new(self.product_name.finish()),
            ),
            (
                "category",
                DataType::Utf8,
                true,
                Arc::new(self.category.finish()),
            ),
            (
                "score",
                DataType::Float64,
                false,
                Arc::new(self.score.finish()),
            ),
            (
                "reason",
                DataType::Utf8,
                false,
                Arc::new(self.reason.finish()),
            ),
            (
                "strategy",
                DataType::Utf8,
                false,
                Arc::new(self.strategy.finish()),
            ),
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

/// The catalog's columns.
struct CatalogColumns {
    id: TextColumn,
    name: Option<TextColumn>,
    category: Option<TextColumn>,
    price: Option<arrow_array::Float64Array>,
    stock: arrow_array::Float64Array,
}

impl CatalogColumns {
    fn new(catalog: &RecordBatch) -> Result<Self, NodeError> {
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
struct SharedIndex {
    /// Catalog categories, then the ones seen only in transactions.
    categories: OwnedIds,
    category_rank: Vec<u32>,
    products: Products,
    /// Position of each product id in sorted order.
    id_rank: Vec<u32>,
    catalog_items: usize,
    out_of_stock: u64,
    duplicate_catalog_rows: u64,
    end: i32,
    rows_after: u64,
    refund_rows: u64,
    incomplete_rows: u64,
    /// Every customer of the kept transaction rows, by first appearance.
    buyers: StrMap,
    /// The kept transaction rows; `cust` indexes `buyers`. Grouped by buyer, each buyer's by
    /// (item, day), when `by_buyer` is set (a branch then copies contiguous runs instead of
    /// gathering rows scattered over the whole table), else in input order.
    lines: Vec<Line>,
    /// CSR offsets per buyer into `lines` when grouped; `None` when rows with the same buyer,
    /// item and day differ, as the order among them (the unstable sort's) then matters for
    /// sums, so `lines` keeps the input order.
    by_buyer: Option<Vec<usize>>,
    units: Vec<f64>,
    recent: Vec<f64>,
    prior: Vec<f64>,
    /// Candidate lists, each built when a strategy first needs it.
    bestsellers: OnceLock<(Vec<Vec<u32>>, Vec<u32>)>,
    trending: OnceLock<Vec<(u32, f64)>>,
    by_price: OnceLock<Vec<Vec<u32>>>,
    interval: OnceLock<Vec<f64>>,
}

impl SharedIndex {
    fn build(
        catalog: &RecordBatch,
        tx: &RecordBatch,
        analysis_date: Option<i32>,
        recent_days: i32,
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
        let end = match analysis_date {
            Some(d) => d,
            None => (0..tx.num_rows())
                .filter(|&i| tx_date.is_valid(i))
                .map(|i| tx_date.value(i))
                .max()
                .unwrap_or(0),
        };
        let recent_start = end - recent_days; // exclusive
        let prior_start = recent_start - recent_days; // exclusive
        let value = |col: &Option<arrow_array::Float64Array>, i: usize| {
            col.as_ref().filter(|c| c.is_valid(i)).map(|c| c.value(i))
        };

        let mut units_sold: Vec<f64> = Vec::new();
        let mut recent: Vec<f64> = Vec::new();
        let mut prior: Vec<f64> = Vec::new();
        let mut lines: Vec<Line> = Vec::with_capacity(tx.num_rows());
        let mut buyers = StrMap::default();
        let (mut rows_after, mut refund_rows, mut incomplete_rows) = (0u64, 0u64, 0u64);
        let mut last_customer: Option<(&str, u32)> = None;
        for i in 0..tx.num_rows() {
            let (Some(c), Some(pid)) = (tx_customer.get(i), tx_product.get(i)) else {
                incomplete_rows += 1;
                continue;
            };
            if !tx_date.is_valid(i) {
                incomplete_rows += 1;
                continue;
            }
            let day = tx_date.value(i);
            if day > end {
                rows_after += 1;
                continue;
            }
            let quantity = value(&tx_quantity, i);
            let amount = value(&tx_amount, i);
            if quantity.is_some_and(|q| q < 0.0) || amount.is_some_and(|a| a < 0.0) {
                refund_rows += 1;
                continue;
            }
            let category = tx_category
                .as_ref()
                .and_then(|col| col.get(i))
                .map(|s| categories.intern(s).0);
            let name = tx_name.as_ref().and_then(|col| col.get(i));
            let (item, _) = products.index(pid, name, category);
            let p = item as usize;
            // The catalog's name and category win; the transactions fill in what it lacks.
            if products.category[p].is_none() {
                products.category[p] = category;
            }
            if products.name[p].is_none() && name.is_some() {
                products.name[p] = name.map(Into::into);
            }
            if p >= units_sold.len() {
                let len = products.ids.len().max(p + 1);
                units_sold.resize(len, 0.0);
                recent.resize(len, 0.0);
                prior.resize(len, 0.0);
            }
            let units = quantity.unwrap_or(1.0);
            units_sold[p] += units;
            if day > recent_start {
                recent[p] += units;
            } else if day > prior_start {
                prior[p] += units;
            }
            // Rows of one customer usually come together: remember the last look-up.
            let cust = match last_customer {
                Some((last, id)) if last == c => id,
                _ => {
                    let id = buyers.get_or_insert(c, buyers.len() as u32);
                    last_customer = Some((c, id));
                    id
                }
            };
            let price = products.price[p];
            lines.push(Line {
                cust,
                item,
                day,
                spend: amount.unwrap_or(if price.is_finite() {
                    price * units
                } else {
                    0.0
                }),
                units,
                category: products.category[p].or(category),
            });
        }
        let by_buyer = group_by_buyer(&lines, buyers.len()).map(|(offsets, grouped)| {
            lines = grouped;
            offsets
        });
        let n = products.ids.len();
        units_sold.resize(n, 0.0);
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
            units: units_sold,
            recent,
            prior,
            bestsellers: OnceLock::new(),
            trending: OnceLock::new(),
            by_price: OnceLock::new(),
            interval: OnceLock::new(),
        })
    }

    /// Best first: higher score, then lower product id.
    fn order(&self, a: &(u32, f64), b: &(u32, f64)) -> std::cmp::Ordering {
        b.1.total_cmp(&a.1)
            .then(self.id_rank[a.0 as usize].cmp(&self.id_rank[b.0 as usize]))
    }

    /// Per category and overall: available items with sales, best first.
    fn bestsellers(&self) -> &(Vec<Vec<u32>>, Vec<u32>) {
        self.bestsellers.get_or_init(|| {
            let products = &self.products;
            let mut overall: Vec<(u32, f64)> = (0..self.catalog_items as u32)
                .filter(|&p| products.available[p as usize] && self.units[p as usize] > 0.0)
                .map(|p| (p, self.units[p as usize]))
                .collect();
            overall.sort_unstable_by(|a, b| self.order(a, b));
            let mut by_category = vec![Vec::new(); self.categories.len()];
            for &(p, _) in &overall {
                if let Some(c) = products.category[p as usize] {
                    by_category[c as usize].push(p);
                }
            }
            (by_category, overall.into_iter().map(|(p, _)| p).collect())
        })
    }

    /// Rising items with their trend score, best first.
    fn trending(&self) -> &[(u32, f64)] {
        self.trending.get_or_init(|| {
            let mut trending: Vec<(u32, f64)> = (0..self.catalog_items as u32)
                .filter(|&p| self.products.available[p as usize])
                .filter_map(|p| {
                    let (r, b) = (self.recent[p as usize], self.prior[p as usize]);
                    (r > b).then(|| (p, (r - b) / (r + b).sqrt()))
                })
                .collect();
            trending.sort_unstable_by(|a, b| self.order(a, b));
            trending
        })
    }

    /// Per category: available priced items by price ascending.
    fn by_price(&self) -> &[Vec<u32>] {
        self.by_price.get_or_init(|| {
            let products = &self.products;
            let mut by_price = vec![Vec::new(); self.categories.len()];
            for p in 0..self.catalog_items {
                let price = products.price[p];
                if products.available[p]
                    && price.is_finite()
                    && price > 0.0
                    && let Some(c) = products.category[p]
                {
                    by_price[c as usize].push(p as u32);
                }
            }
            for list in &mut by_price {
                list.sort_unstable_by(|&a, &b| {
                    products.price[a as usize]
                        .total_cmp(&products.price[b as usize])
                        .then(self.id_rank[a as usize].cmp(&self.id_rank[b as usize]))
                });
            }
            by_price
        })
    }

    /// Median repurchase interval per product over all customers (NaN when unknown).
    fn interval(&self) -> &[f64] {
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

/// The rows of `lines` grouped by buyer (with CSR offsets per buyer), each buyer's by (item,
/// day): the order sorting a branch's lines by (customer, item, day) gives, whatever the sort,
/// unless rows with equal keys differ (then `None`).
fn group_by_buyer(lines: &[Line], buyers: usize) -> Option<(Vec<usize>, Vec<Line>)> {
    u32::try_from(lines.len()).ok()?;
    let mut offsets = vec![0usize; buyers + 1];
    for l in lines {
        offsets[l.cust as usize + 1] += 1;
    }
    for b in 0..buyers {
        offsets[b + 1] += offsets[b];
    }
    // The rows themselves, not their indices: each buyer's then sort in place, contiguous.
    let mut next = offsets.clone();
    // Every slot is overwritten: the offsets partition the rows.
    let mut grouped = lines.to_vec();
    for l in lines {
        grouped[next[l.cust as usize]] = *l;
        next[l.cust as usize] += 1;
    }
    for b in 0..buyers {
        let rows = &mut grouped[offsets[b]..offsets[b + 1]];
        // Stable, as sorting the input-order row numbers by (item, day) is.
        rows.sort_by_key(|l| (l.item, l.day));
        for w in rows.windows(2) {
            let (x, y) = (&w[0], &w[1]);
            if x.item == y.item
                && x.day == y.day
                && (x.spend.to_bits() != y.spend.to_bits()
                    || x.units.to_bits() != y.units.to_bits()
                    || x.category != y.category)
            {
                return None;
            }
        }
    }
    Some((offsets, grouped))
}

/// What a [`SharedIndex`] is built from within a run: the inputs the catalog and the
/// transactions come from, and the parameters the index depends on.
#[derive(Debug, PartialEq, Eq)]
struct IndexKey {
    catalog: String,
    transactions: String,
    analysis_date: Option<i32>,
    recent_days: i32,
}

impl IndexKey {
    fn new(t: &RecommendInputs, cfg: &RecommendConfig) -> Self {
        let [catalog, transactions] = t.index_inputs.clone();
        IndexKey {
            catalog,
            transactions,
            analysis_date: cfg.analysis_date,
            recent_days: cfg.recent_days,
        }
    }
}

/// Computes the recommendations table and its metadata.
/// The segment-independent index comes from `cache`: the first node of a run builds it (while
/// others asking wait), the others reuse it.
pub(crate) fn recommend(
    t: &RecommendInputs,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Result<Output, NodeError> {
    use std::fmt::Write as _;

    // The columns first, in the order their errors are reported.
    CatalogColumns::new(&t.catalog)?;
    struct CustomerColumns {
        id: TextColumn,
        segment: TextColumn,
        favourite: Option<TextColumn>,
        top: Option<TextColumn>,
        rows: usize,
    }
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
    let slot = cache.get_or_compute(IndexKey::new(t, cfg), || {
        SharedIndex::build(
            &t.catalog,
            &t.transactions,
            cfg.analysis_date,
            cfg.recent_days,
        )
        .map_err(|e| e.to_string())
    });
    let shared = slot
        .as_ref()
        .as_ref()
        .map_err(|e| NodeError::msg(e.clone()))?;
    let products = &shared.products;
    let categories = &shared.categories;

    let affinity_columns = match (&t.affinity, cfg.strategy) {
        (Some(aff), Strategy::CrossSell) => Some((
            text_column(aff, "product_id")?
                .ok_or_else(|| missing_column(aff, "product_id", "the item of a pair"))?,
            text_column(aff, "other_product_id")?
                .ok_or_else(|| missing_column(aff, "other_product_id", "the partner"))?,
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
    // The branch's purchase lines by (customer, item, day).
    let lines: Vec<Line> = match &shared.by_buyer {
        // Each buyer's lines come sorted: gather them in the branch's order.
        Some(offsets) => {
            let range = |b: u32| offsets[b as usize]..offsets[b as usize + 1];
            let total = buyer_of.iter().flatten().map(|&b| range(b).len()).sum();
            let mut lines = Vec::with_capacity(total);
            for (cust, b) in buyer_of.iter().enumerate() {
                let Some(b) = b else { continue };
                lines.extend(shared.lines[range(*b)].iter().map(|l| Line {
                    cust: cust as u32,
                    ..*l
                }));
            }
            lines
        }
        // As the branch's lines in input order sort.
        None => {
            let mut branch_of = vec![u32::MAX; shared.buyers.len()];
            for (cust, b) in buyer_of.iter().enumerate() {
                if let Some(b) = b {
                    branch_of[*b as usize] = cust as u32;
                }
            }
            let mut lines: Vec<Line> = shared
                .lines
                .iter()
                .filter_map(|l| {
                    let cust = branch_of[l.cust as usize];
                    (cust != u32::MAX).then_some(Line { cust, ..*l })
                })
                .collect();
            lines.sort_unstable_by_key(|l| (l.cust, l.item, l.day));
            lines
        }
    };

    // --- Affinity ----------------------------------------------------------------------------
    let mut pairs: Vec<(u32, u32, f64)> = Vec::new();
    if let Some((a_col, b_col, lift, rows)) = &affinity_columns {
        for i in 0..*rows {
            let (Some(a), Some(b)) = (a_col.get(i), b_col.get(i)) else {
                continue;
            };
            if !lift.is_valid(i) || !lift.value(i).is_finite() || lift.value(i) < cfg.min_lift {
                continue;
            }
            // A seed the branch never bought and a partner outside the catalog cannot matter.
            let (Some(a), Some(b)) = (products.ids.get(a), products.ids.get(b)) else {
                continue;
            };
            if a != b && products.available[b as usize] {
                pairs.push((a, b, lift.value(i)));
            }
        }
    }

    let n = products.ids.len();
    let id_rank = &shared.id_rank;
    let missing_from_catalog = (n - shared.catalog_items) as u64;

    // --- Candidate lists, built once ---------------------------------------------------------
    let mut cand = Candidates {
        units: &shared.units,
        ..Candidates::default()
    };
    if cfg.strategy == Strategy::Bestsellers || cfg.fallback_bestsellers {
        let (by_category, overall) = shared.bestsellers();
        cand.best_by_category = by_category;
        cand.best_overall = overall;
    }
    if cfg.strategy == Strategy::Seasonal {
        cand.trending = shared.trending();
    }
    if cfg.strategy == Strategy::Upsell {
        cand.by_price = shared.by_price();
    }
    let mut partner_offsets: Vec<usize> = Vec::new();
    let mut partners: Vec<(u32, f64)> = Vec::new();
    if cfg.strategy == Strategy::CrossSell {
        pairs.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0)
                .then(y.2.total_cmp(&x.2))
                .then(id_rank[x.1 as usize].cmp(&id_rank[y.1 as usize]))
        });
        // A pair listed twice keeps its higher lift (sorted first).
        let mut seen = std::collections::HashSet::<(u32, u32), FastHash>::default();
        pairs.retain(|&(a, b, _)| seen.insert((a, b)));
        partner_offsets = vec![0usize; n + 1];
        for &(a, _, _) in &pairs {
            partner_offsets[a as usize + 1] += 1;
        }
        for i in 0..n {
            partner_offsets[i + 1] += partner_offsets[i];
        }
        partners = pairs.iter().map(|&(_, b, l)| (b, l)).collect();
    }
    cand.partner_offsets = &partner_offsets;
    cand.partners = &partners;
    if cfg.strategy == Strategy::Replenishment {
        cand.interval = shared.interval();
    }
    let end = shared.end;

    let ranker = Ranker {
        cand: &cand,
        price: &products.price,
        available: &products.available,
        id_rank,
        category_rank: &shared.category_rank,
        top_k: cfg.top_k,
        exclude_bought: !cfg.include_purchased,
        end,
    };

    // --- Per customer ------------------------------------------------------------------------
    let mut line_at = 0usize;
    let mut scratch = Scratch::new(n);
    let mut bought: Vec<Bought> = Vec::new();
    let mut picks: Vec<Pick> = Vec::new();
    let mut out = OutBuilders::new(customers.len() * cfg.top_k);
    let (mut with_recs, mut fallback_rows) = (0u64, 0u64);
    let mut day_gaps: Vec<f64> = Vec::new();
    for (c, customer) in customers.iter().enumerate() {
        scratch.stamp = c as u32 + 1;
        bought.clear();
        let start = line_at;
        while line_at < lines.len() && lines[line_at].cust == c as u32 {
            line_at += 1;
        }
        let mine = &lines[start..line_at];
        let mut j = 0;
        while j < mine.len() {
            let item = mine[j].item;
            let mut k = j;
            let (mut spend, mut max_unit) = (0.0, f64::NAN);
            day_gaps.clear();
            while k < mine.len() && mine[k].item == item {
                let l = mine[k];
                spend += l.spend;
                if l.units > 0.0 {
                    max_unit = f64::max(max_unit, l.spend / l.units);
                }
                if k > j && l.day != mine[k - 1].day {
                    day_gaps.push(f64::from(l.day - mine[k - 1].day));
                }
                k += 1;
            }
            let catalog_price = products.price[item as usize];
            bought.push(Bought {
                item,
                last_day: mine[k - 1].day,
                own_interval: if day_gaps.len() >= 2 {
                    median(&mut day_gaps)
                } else {
                    f64::NAN
                },
                spend,
                price: if catalog_price.is_finite() {
                    catalog_price
                } else {
                    max_unit
                },
                category: mine[j].category,
            });
            scratch.bought[item as usize] = scratch.stamp;
            j = k;
        }

        picks.clear();
        match cfg.strategy {
            Strategy::CrossSell => ranker.cross_sell(&bought, &mut scratch, &mut picks),
            Strategy::Upsell => ranker.upsell(&bought, &mut scratch, &mut picks),
            Strategy::Seasonal => ranker.seasonal(&mut scratch, &mut picks),
            Strategy::Bestsellers => {
                ranker.bestsellers(&customer.categories, &mut scratch, &mut picks, false)
            }
            Strategy::Replenishment => ranker.replenishment(&bought, &mut picks),
        }
        if cfg.fallback_bestsellers && picks.len() < cfg.top_k {
            let before = picks.len();
            ranker.bestsellers(&customer.categories, &mut scratch, &mut picks, true);
            fallback_rows += (picks.len() - before) as u64;
        }
        if !picks.is_empty() {
            with_recs += 1;
        }
        for (rank, pick) in picks.iter().enumerate() {
            let p = pick.item as usize;
            let category = products.category[p].map(|c| &*categories.names[c as usize]);
            out.customer_id.append_value(customer.id);
            out.segment.append_value(customer.segment);
            out.rank.append_value(rank as i64 + 1);
            out.product_id.append_value(&products.ids.names[p]);
            out.product_name
                .append_value(products.display_name(pick.item));
            out.category.append_option(category);
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
            out.reason.append_value(&out.reason_buf);
            out.strategy.append_value(if pick.fallback {
                Strategy::Bestsellers.as_str()
            } else {
                cfg.strategy.as_str()
            });
        }
    }

    let table = out.finish()?;
    let rows = table.num_rows() as u64;
    let mut output = Output::table(table);
    if no_products::has_no_products(&t.transactions) {
        tracing::info!("{}", no_products::MESSAGE);
        output = output.with_meta(no_products::META_KEY, no_products::MESSAGE);
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
        .with_meta("analysis_date", day_string(end))
        .with_meta("catalog_items", shared.catalog_items as u64)
        .with_meta("out_of_stock_items", shared.out_of_stock)
        .with_meta("missing_from_catalog_items", missing_from_catalog)
        .with_meta("duplicate_catalog_rows", shared.duplicate_catalog_rows)
        .with_meta("duplicate_customers", duplicate_customers)
        .with_meta("transactions_after_analysis_date", shared.rows_after)
        .with_meta("refund_rows_ignored", shared.refund_rows)
        .with_meta("incomplete_transaction_rows", shared.incomplete_rows))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::{Date32Array, Float64Array, Int64Array, StringArray};
    use flow_engine::data::Data;
    use flow_engine::node::Input;
    use flow_engine::run_cache::CacheStats;

    /// 2024-03-31, the analysis date of the fixtures.
    pub(crate) const D: i32 = 19813;

    fn strs(v: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    pub(crate) fn catalog() -> RecordBatch {
        batch(vec![
            (
                "product_id",
                strs(&["P1", "P2", "P3", "P4", "P5", "P6", "P7"]),
            ),
            (
                "name",
                strs(&[
                    "Tea",
                    "Coffee",
                    "Fancy Tea",
                    "Mug",
                    "Cookies",
                    "Cake",
                    "Premium Coffee",
                ]),
            ),
            (
                "category",
                strs(&[
                    "drinks", "drinks", "drinks", "kitchen", "food", "food", "drinks",
                ]),
            ),
            (
                "price",
                Arc::new(Float64Array::from(vec![
                    5.0, 8.0, 12.0, 6.0, 3.0, 9.0, 20.0,
                ])),
            ),
            // Integer stock, as a CSV read gives it; P4 is out of stock.
            (
                "stock",
                Arc::new(Int64Array::from(vec![10, 10, 3, 0, 20, 5, 2])),
            ),
        ])
    }

    pub(crate) fn transactions() -> RecordBatch {
        // (customer, order, days before D, product, quantity, amount)
        let rows: [(&str, &str, i32, &str, f64, f64); 18] = [
            ("A", "o1", 40, "P1", 1.0, 5.0),
            ("A", "o1", 40, "P2", 1.0, 8.0),
            ("A", "o2", 20, "P1", 1.0, 5.0),
            ("B", "o3", 30, "P1", 1.0, 5.0),
            ("B", "o4", 20, "P1", 1.0, 5.0),
            ("B", "o5", 10, "P1", 1.0, 5.0),
            ("B", "o6", 3, "P5", 2.0, 6.0),
            ("X", "o7", 12, "P5", 1.0, 3.0),
            ("X", "o8", 5, "P5", 3.0, 9.0),
            ("X", "o8", 5, "P6", 2.0, 18.0),
            ("X", "o9", 6, "P4", 10.0, 60.0),
            ("X", "o10", 9, "P1", 2.0, 10.0),
            ("X", "o11", 2, "P1", 1.0, 5.0),
            ("X", "o12", 1, "P2", -1.0, -8.0),
            ("X", "o13", -5, "P7", 100.0, 2000.0),
            ("X", "o14", 8, "P9", 1.0, 4.0),
            ("X", "o14", 8, "P3", 0.0, 0.0),
            ("X", "o15", 50, "P6", 0.0, 0.0),
        ];
        batch(vec![
            ("customer_id", strs(&rows.map(|r| r.0))),
            ("order_id", strs(&rows.map(|r| r.1))),
            (
                "date",
                Arc::new(Date32Array::from(rows.map(|r| D - r.2).to_vec())),
            ),
            ("product_id", strs(&rows.map(|r| r.3))),
            (
                "quantity",
                Arc::new(Float64Array::from(rows.map(|r| r.4).to_vec())),
            ),
            (
                "amount",
                Arc::new(Float64Array::from(rows.map(|r| r.5).to_vec())),
            ),
        ])
    }

    pub(crate) fn customers() -> RecordBatch {
        batch(vec![
            ("customer_id", strs(&["A", "B", "C"])),
            ("segment", strs(&["vip", "vip", "vip"])),
            (
                "favourite_category",
                Arc::new(StringArray::from(vec![
                    Some("drinks"),
                    Some("drinks"),
                    Some("food"),
                ])),
            ),
            (
                "top_category",
                Arc::new(StringArray::from(vec![None::<&str>, None, None])),
            ),
        ])
    }

    pub(crate) fn affinity() -> RecordBatch {
        let rows: [(&str, &str, f64); 8] = [
            ("P1", "P7", 3.0),
            ("P1", "P4", 5.0), // out of stock
            ("P1", "P9", 4.0), // not in the catalog
            ("P1", "P5", 3.0), // ties with P7: P5 first by id
            ("P1", "P2", 2.0),
            ("P2", "P6", 2.5),
            ("P1", "P6", 0.5), // below min_lift
            ("P5", "P3", 1.5),
        ];
        batch(vec![
            ("product_id", strs(&rows.map(|r| r.0))),
            ("other_product_id", strs(&rows.map(|r| r.1))),
            (
                "lift",
                Arc::new(Float64Array::from(rows.map(|r| r.2).to_vec())),
            ),
        ])
    }

    /// The defaults, as of the fixtures' analysis date (a later sale exists).
    fn cfg(strategy: Strategy) -> RecommendConfig {
        RecommendConfig {
            analysis_date: Some(D),
            ..RecommendConfig::new(strategy)
        }
    }

    fn inputs() -> RecommendInputs {
        RecommendInputs {
            customers: vec![customers()],
            transactions: transactions(),
            catalog: catalog(),
            affinity: Some(affinity()),
            index_inputs: ["catalog".into(), "extract".into()],
        }
    }

    #[test]
    fn transactions_without_products_give_empty_lists_that_say_why() {
        // A payments export: the same purchases with no product ids.
        let tx = transactions();
        let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; tx.num_rows()]));
        let schema = tx.schema();
        let columns: Vec<(&str, ArrayRef)> = schema
            .fields()
            .iter()
            .zip(tx.columns())
            .map(|(f, c)| {
                let c = if f.name() == "product_id" {
                    nulls.clone()
                } else {
                    c.clone()
                };
                (f.name().as_str(), c)
            })
            .collect();
        let inputs = RecommendInputs {
            transactions: batch(columns),
            // What segmentation.affinity makes of such transactions: no pairs.
            affinity: Some(affinity().slice(0, 0)),
            ..inputs()
        };
        for strategy in [
            Strategy::CrossSell,
            Strategy::Upsell,
            Strategy::Seasonal,
            Strategy::Bestsellers,
            Strategy::Replenishment,
        ] {
            let cfg = RecommendConfig {
                fallback_bestsellers: true,
                ..cfg(strategy)
            };
            let out = recommend(&inputs, &cfg, &RunCache::new()).unwrap();
            assert_eq!(out.body_table().num_rows(), 0, "{}", strategy.as_str());
            let note = out.meta["no_products"].as_str().unwrap();
            assert!(note.contains("no products"), "{note}");
        }
        let out = recommend(
            &super::tests::inputs(),
            &cfg(Strategy::Bestsellers),
            &RunCache::new(),
        )
        .unwrap();
        assert!(!out.meta.contains_key("no_products"));
    }

    /// (customer, product, reason) rows, plus the scores.
    fn run(cfg: &RecommendConfig) -> (Vec<(String, String, String)>, Vec<f64>, Output) {
        let out = recommend(&inputs(), cfg, &RunCache::new()).unwrap();
        let t = out.body_table();
        let col = |n: &str| t.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (c, p, r) = (col("customer_id"), col("product_id"), col("reason"));
        let ranks = t
            .column_by_name("rank")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        // Ranks run 1..k per customer.
        let mut expect = 0;
        for i in 0..t.num_rows() {
            expect = if i > 0 && c.value(i) == c.value(i - 1) {
                expect + 1
            } else {
                1
            };
            assert_eq!(ranks.value(i), expect);
        }
        let rows = (0..t.num_rows())
            .map(|i| {
                (
                    c.value(i).to_string(),
                    p.value(i).to_string(),
                    r.value(i).to_string(),
                )
            })
            .collect();
        let scores = t
            .column_by_name("score")
            .unwrap()
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec();
        (rows, scores, out)
    }

    trait BodyTable {
        fn body_table(&self) -> &RecordBatch;
    }
    impl BodyTable for Output {
        fn body_table(&self) -> &RecordBatch {
            match &self.body {
                flow_engine::data::Body::Data(Data::Table(t)) => t,
                _ => panic!("not a table"),
            }
        }
    }

    fn row(c: &str, p: &str, r: &str) -> (String, String, String) {
        (c.into(), p.into(), r.into())
    }

    #[test]
    fn cross_sell_ranks_by_lift_and_drops_bought_out_of_stock_and_unknown_items() {
        let base = cfg(Strategy::CrossSell);
        let (rows, scores, out) = run(&base);
        assert_eq!(
            rows,
            vec![
                row("A", "P5", "often bought with Tea"),
                row("A", "P7", "often bought with Tea"),
                row("A", "P6", "often bought with Coffee"),
                row("B", "P7", "often bought with Tea"),
                row("B", "P2", "often bought with Tea"),
                row("B", "P3", "often bought with Cookies"),
            ]
        );
        assert_eq!(scores, vec![3.0, 3.0, 2.5, 3.0, 2.0, 1.5]);
        assert_eq!(out.meta["customers_without_recommendations"], 1);
        assert_eq!(out.meta["out_of_stock_items"], 1);
        assert_eq!(out.meta["missing_from_catalog_items"], 1); // P9
        // With include_purchased, A's own Coffee comes back (lift 2 with Tea).
        let (rows, _, _) = run(&RecommendConfig {
            include_purchased: true,
            ..base.clone()
        });
        let a: Vec<&str> = rows
            .iter()
            .filter(|r| r.0 == "A")
            .map(|r| r.1.as_str())
            .collect();
        assert_eq!(a, ["P5", "P7", "P6", "P2"]);
        // top_k and min_lift.
        let (rows, _, _) = run(&RecommendConfig {
            top_k: 1,
            min_lift: 2.6,
            ..base
        });
        assert_eq!(
            rows,
            vec![
                row("A", "P5", "often bought with Tea"),
                row("B", "P7", "often bought with Tea")
            ]
        );
    }

    #[test]
    fn upsell_recommends_the_next_price_steps_in_the_customers_categories() {
        let (rows, scores, _) = run(&RecommendConfig {
            top_k: 3,
            ..cfg(Strategy::Upsell)
        });
        assert_eq!(
            rows,
            vec![
                row("A", "P3", "a step up in drinks"),
                row("A", "P7", "a step up in drinks"),
                row("B", "P2", "a step up in drinks"),
                row("B", "P3", "a step up in drinks"),
                row("B", "P7", "a step up in drinks"),
            ]
        );
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            close(scores[0], 8.0 / 12.0) && close(scores[1], 8.0 / 20.0),
            "{scores:?}"
        );
        assert!(close(scores[2], 15.0 / 21.0 * 5.0 / 8.0), "{scores:?}");
        // With room for more, B's second category (food: Cookies at 3) steps up to Cake.
        let (rows, scores, _) = run(&cfg(Strategy::Upsell));
        assert_eq!(rows.last().unwrap(), &row("B", "P6", "a step up in food"));
        assert!(close(*scores.last().unwrap(), 6.0 / 21.0 * 3.0 / 9.0));
    }

    #[test]
    fn seasonal_ranks_rising_items_of_the_recent_window() {
        let (rows, scores, _) = run(&RecommendConfig {
            recent_days: 7,
            ..cfg(Strategy::Seasonal)
        });
        // Mug rose most but is out of stock; Tea fell; B already bought Cookies.
        assert_eq!(
            rows,
            vec![
                row("A", "P5", "trending in food"),
                row("A", "P6", "trending in food"),
                row("B", "P6", "trending in food"),
                row("C", "P5", "trending in food"),
                row("C", "P6", "trending in food"),
            ]
        );
        assert!((scores[0] - 4.0 / 6f64.sqrt()).abs() < 1e-12);
        assert!((scores[1] - 2.0 / 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bestsellers_come_from_the_favourite_category_then_overall() {
        let (rows, scores, _) = run(&RecommendConfig {
            top_k: 3,
            ..cfg(Strategy::Bestsellers)
        });
        assert_eq!(
            rows,
            vec![
                // A bought both drinks bestsellers: the overall list fills in.
                row("A", "P5", "bestseller in food"),
                row("A", "P6", "bestseller in food"),
                row("B", "P2", "bestseller in drinks"),
                row("B", "P6", "bestseller in food"),
                row("C", "P5", "bestseller in food"),
                row("C", "P6", "bestseller in food"),
                row("C", "P1", "bestseller in drinks"),
            ]
        );
        assert_eq!(scores, vec![6.0, 2.0, 1.0, 2.0, 6.0, 2.0, 8.0]);
    }

    #[test]
    fn replenishment_recommends_bought_items_that_are_due() {
        let (rows, scores, _) = run(&cfg(Strategy::Replenishment));
        // A: Tea every ~10 days across customers, last 20 days ago. B: own interval 10 days,
        // last 10 days ago; Cookies (every ~7 days, bought 3 days ago) are not due yet.
        assert_eq!(
            rows,
            vec![
                row("A", "P1", "due again (bought every ~10 days)"),
                row("B", "P1", "due again (bought every ~10 days)"),
            ]
        );
        assert_eq!(scores, vec![2.0, 1.0]);
        // With the bestseller fallback every list is full, fallback rows say so.
        let cfg = RecommendConfig {
            top_k: 2,
            fallback_bestsellers: true,
            ..cfg(Strategy::Replenishment)
        };
        let out = recommend(&inputs(), &cfg, &RunCache::new()).unwrap();
        let t = out.body_table();
        assert_eq!(t.num_rows(), 6);
        let strategy = t.column_by_name("strategy").unwrap().as_string::<i32>();
        assert_eq!(strategy.value(0), "replenishment");
        assert_eq!(strategy.value(1), "bestsellers");
        assert_eq!(out.meta["fallback_recommendations"], 4);
    }

    #[test]
    fn out_of_stock_items_never_appear_and_runs_are_deterministic() {
        for strategy in STRATEGIES {
            let cfg = RecommendConfig {
                top_k: 10,
                include_purchased: true,
                fallback_bestsellers: true,
                recent_days: 7,
                ..cfg(Strategy::parse(strategy).unwrap())
            };
            let (rows, _, _) = run(&cfg);
            assert!(!rows.is_empty(), "{strategy}");
            assert!(
                rows.iter().all(|r| r.1 != "P4" && r.1 != "P9"),
                "{strategy}: {rows:?}"
            );
            // Same answer with the input rows reversed.
            let mut reversed = inputs();
            let idx = arrow_array::UInt32Array::from_iter_values((0..18u32).rev());
            reversed.transactions =
                arrow_select::take::take_record_batch(&reversed.transactions, &idx).unwrap();
            let idx = arrow_array::UInt32Array::from_iter_values((0..8u32).rev());
            reversed.affinity =
                Some(arrow_select::take::take_record_batch(&affinity(), &idx).unwrap());
            let again = recommend(&reversed, &cfg, &RunCache::new()).unwrap();
            assert_eq!(again.body_table(), run(&cfg).2.body_table(), "{strategy}");
        }
    }

    #[test]
    fn nodes_of_one_run_share_one_index_build_with_the_same_answers() {
        let body = |t: &RecommendInputs, cfg: &RecommendConfig, cache: &RunCache| {
            recommend(t, cfg, cache).unwrap().body_table().clone()
        };
        let tables = inputs();
        let strategies = STRATEGIES.map(|s| RecommendConfig {
            recent_days: 7,
            fallback_bestsellers: true,
            ..cfg(Strategy::parse(s).unwrap())
        });
        // Alone in its run, every node builds its own index.
        let alone: Vec<RecordBatch> = strategies
            .iter()
            .map(|c| {
                let cache = RunCache::new();
                let table = body(&tables, c, &cache);
                assert_eq!(cache.stats(), CacheStats { hits: 0, misses: 1 });
                table
            })
            .collect();

        // In one run the first node builds it and the others reuse it, with the same answers;
        // so does another branch over the same inputs.
        let run = RunCache::new();
        for (c, expect) in strategies.iter().zip(&alone) {
            assert_eq!(&body(&tables, c, &run), expect);
        }
        let other_branch = RecommendInputs {
            customers: vec![customers().slice(1, 2)],
            ..tables.clone()
        };
        body(&other_branch, &strategies[1], &run);
        assert_eq!(run.stats(), CacheStats { hits: 5, misses: 1 });

        // Another recent window, analysis date or transactions input: another index.
        for c in [
            RecommendConfig {
                recent_days: 8,
                ..strategies[2].clone()
            },
            RecommendConfig {
                analysis_date: Some(D - 1),
                ..strategies[2].clone()
            },
        ] {
            body(&tables, &c, &run);
        }
        let other_input = RecommendInputs {
            transactions: tables.transactions.slice(0, 17),
            index_inputs: ["catalog".into(), "older_extract".into()],
            ..tables.clone()
        };
        let sliced = body(&other_input, &strategies[0], &run);
        assert_eq!(run.stats(), CacheStats { hits: 5, misses: 4 });
        assert_eq!(sliced, body(&other_input, &strategies[0], &RunCache::new()));
    }

    #[test]
    fn an_index_that_cannot_be_built_fails_every_node_of_the_run_alike() {
        let tables = RecommendInputs {
            transactions: transactions().project(&[0, 1, 3, 4, 5]).unwrap(),
            ..inputs()
        };
        let run = RunCache::new();
        let errors: Vec<String> = [Strategy::Bestsellers, Strategy::Upsell]
            .map(|s| recommend(&tables, &cfg(s), &run).err().unwrap().to_string())
            .to_vec();
        assert!(errors[0].contains("`date`"), "{}", errors[0]);
        assert_eq!(errors[0], errors[1]);
        assert_eq!(run.stats(), CacheStats { hits: 1, misses: 1 });
    }

    #[test]
    fn lines_of_one_customer_item_and_day_keep_the_sorted_order() {
        let tx = transactions();
        let with = |row: RecordBatch| RecommendInputs {
            transactions: arrow_select::concat::concat_batches(&tx.schema(), [&tx, &row]).unwrap(),
            ..inputs()
        };
        // B bought Tea twice on one day: the same line twice, or two different ones.
        let same = with(tx.slice(5, 1));
        let different = with(batch(vec![
            ("customer_id", strs(&["B"])),
            ("order_id", strs(&["o5b"])),
            ("date", Arc::new(Date32Array::from(vec![D - 10]))),
            ("product_id", strs(&["P1"])),
            ("quantity", Arc::new(Float64Array::from(vec![2.0]))),
            ("amount", Arc::new(Float64Array::from(vec![9.0]))),
        ]));
        for (tables, grouped) in [(&same, true), (&different, false)] {
            for strategy in STRATEGIES {
                let cfg = RecommendConfig {
                    include_purchased: true,
                    ..cfg(Strategy::parse(strategy).unwrap())
                };
                let shared = SharedIndex::build(
                    &tables.catalog,
                    &tables.transactions,
                    cfg.analysis_date,
                    cfg.recent_days,
                )
                .unwrap();
                assert_eq!(shared.by_buyer.is_some(), grouped);
                let out = recommend(tables, &cfg, &RunCache::new()).unwrap();
                assert!(out.body_table().num_rows() > 0, "{strategy}");
            }
        }
        // B's upsell share counts both lines: Tea 5 + 5 + 5 + 9 in drinks, Cookies 6 in food.
        let (rows, scores, _) = {
            let out = recommend(&different, &cfg(Strategy::Upsell), &RunCache::new()).unwrap();
            let t = out.body_table().clone();
            let col = |n: &str| t.column_by_name(n).unwrap().as_string::<i32>().clone();
            let (c, p) = (col("customer_id"), col("product_id"));
            let rows: Vec<(String, String)> = (0..t.num_rows())
                .map(|i| (c.value(i).to_string(), p.value(i).to_string()))
                .collect();
            let scores = t
                .column_by_name("score")
                .unwrap()
                .as_primitive::<arrow_array::types::Float64Type>()
                .values()
                .to_vec();
            (rows, scores, out)
        };
        let b = rows.iter().position(|r| r.0 == "B").unwrap();
        assert_eq!(rows[b].1, "P2");
        assert!(
            (scores[b] - 24.0 / 30.0 * 5.0 / 8.0).abs() < 1e-12,
            "{scores:?}"
        );
    }

    fn node_inputs(tables: Vec<(&str, RecordBatch)>) -> Inputs {
        Inputs(
            tables
                .into_iter()
                .map(|(from, t)| Input {
                    from: from.into(),
                    case: None,
                    data: Data::Table(t),
                })
                .collect(),
        )
    }

    fn configure(
        yaml: &str,
        columns: &[Option<Vec<String>>],
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        let params = Params::new(value.as_object().unwrap().clone(), "/");
        let cx = ConfigureCx {
            node_id: "recommend",
            kind: NodeKind::Action,
            workflow_dir: std::path::Path::new("/"),
            input_columns: columns,
        };
        Recommend.configure(&params, &cx)
    }

    #[test]
    fn the_node_finds_its_inputs_by_their_columns_in_any_order() {
        let node = configure("strategy: cross_sell\ntop_k: 2\n", &[]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inputs = node_inputs(vec![
            ("affinity", affinity()),
            ("catalog", catalog()),
            ("classify.vip", customers()),
            ("extract", transactions()),
        ]);
        let out = rt
            .block_on(node.run(flow_engine::testing::context(), inputs))
            .unwrap();
        let t = out.body_table();
        assert_eq!(t.num_rows(), 4);
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, OUTPUT_COLUMNS);
        assert_eq!(node.output_columns(&[]).unwrap(), OUTPUT_COLUMNS);

        // No catalog: the error names the missing kind and what was received.
        let inputs = node_inputs(vec![
            ("classify.vip", customers()),
            ("extract", transactions()),
            ("affinity", affinity()),
        ]);
        let err = rt
            .block_on(node.run(flow_engine::testing::context(), inputs))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("product catalog (a `stock` column)"), "{err}");
        assert!(
            err.contains("`classify.vip` (table of 3 rows: customer_id, segment"),
            "{err}"
        );
    }

    #[test]
    fn nodes_given_one_run_cache_share_the_index_of_the_same_inputs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = flow_engine::testing::context();
        let inputs = |transactions_from: &str| {
            node_inputs(vec![
                ("classify.vip", customers()),
                (transactions_from, transactions()),
                ("catalog", catalog()),
                ("affinity", affinity()),
            ])
        };
        let seasonal = configure("strategy: seasonal\n", &[]).unwrap();
        let upsell = configure("strategy: upsell\n", &[]).unwrap();
        rt.block_on(seasonal.run(ctx.clone(), inputs("extract")))
            .unwrap();
        let shared = rt
            .block_on(upsell.run(ctx.clone(), inputs("extract")))
            .unwrap();
        assert_eq!(ctx.run_cache.stats(), CacheStats { hits: 1, misses: 1 });
        // Transactions from another node: another index, the same answer for the same data.
        let own = rt
            .block_on(upsell.run(ctx.clone(), inputs("extract_again")))
            .unwrap();
        assert_eq!(ctx.run_cache.stats(), CacheStats { hits: 1, misses: 2 });
        assert_eq!(shared.body_table(), own.body_table());
    }

    #[test]
    fn parameters_and_declared_inputs_are_checked_at_validation() {
        let errors = configure("strategy: magic\ntop_k: 0\nfallback: random\n", &[])
            .err()
            .unwrap();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.len(), 3, "{messages:?}");
        assert!(
            messages[0].contains("cross_sell, upsell, seasonal, bestsellers or replenishment")
                || messages[0].contains("must be one of")
        );
        let cols = |c: &[&str]| Some(c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let declared = [
            cols(&["customer_id", "segment"]),
            cols(&["customer_id", "order_id", "date"]),
            cols(&["product_id", "stock"]),
        ];
        let errors = configure("strategy: cross_sell\n", &declared)
            .err()
            .unwrap();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("item affinity table"),
            "{}",
            errors[0].message
        );
        assert!(configure("strategy: bestsellers\n", &declared).is_ok());
        // An input that does not declare its columns defers the check to run time.
        assert!(configure("strategy: cross_sell\n", &[declared[0].clone(), None]).is_ok());
    }
}
