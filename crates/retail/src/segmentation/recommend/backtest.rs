//! The node's backtest: hide the last `backtest_days` of purchases, recommend from the rest with
//! every strategy and two baselines, and score the lists on what the segment's customers then
//! bought ([`flow_analytics::recs_eval`]).
//!
//! The calibration side (an index of the data up to the cut-off, its co-purchase pairs, the
//! baselines' item lists) depends on the transactions, the catalog and the cut-off only, so it
//! is built once per run and shared by the run's recommend nodes through the run cache.
//! Nothing after the cut-off reaches it: cross-sell's pairs are computed from the calibration
//! orders (with the analytics the affinity node uses), never taken from the affinity input.

use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::index::{Orders, SharedIndex};
use super::rank::{Member, Pair, rank};
use super::{RecommendConfig, RecommendInputs, Strategy};
use crate::segmentation::day_string;
use flow_analytics::affinity::{CoPurchaseOptions, co_purchase};
use flow_analytics::recs_eval::{self, CoOccurrence, Metrics, Purchase, Target};
use flow_engine::run_cache::RunCache;

/// Days of purchases before the cut-off the popularity baseline counts.
pub(crate) const POPULARITY_DAYS: i32 = 90;
/// Fewer scored customers than this: a note instead of figures.
pub(crate) const MIN_CUSTOMERS: usize = 30;
/// A larger segment is backtested on a fixed random sample of about this many customers:
/// enough for figures within about a percentage point, at a cost that does not grow with the
/// segment.
pub(crate) const SAMPLE_CUSTOMERS: usize = 5_000;
/// The affinity node's default options: cross-sell's calibration pairs are what that node
/// would have produced on the calibration data.
const PAIR_OPTIONS: CoPurchaseOptions = CoPurchaseOptions {
    top_k: 20,
    min_count: 3,
    max_basket_items: 50,
};

/// The calibration side of a run's backtest.
pub(super) struct Calibration {
    pub(super) index: SharedIndex,
    cutoff: i32,
    /// The index's `(order, item)` lines, until [`Calibration::derived`] takes them.
    order_items: Mutex<Vec<(u32, u32)>>,
    /// What the baselines need, derived by the first backtest: by then the recommend nodes
    /// have let go of the transactions the indexes were built from, which would otherwise be
    /// held beside these (hundreds of megabytes each at 10M lines).
    derived: OnceLock<Result<Derived, String>>,
}

/// The calibration's baselines.
pub(super) struct Derived {
    /// Available items by distinct buyers in the [`POPULARITY_DAYS`] up to the cut-off.
    popular: Vec<u32>,
    co_occurrence: CoOccurrence,
    pub(super) pairs: Vec<Pair>,
}

#[derive(Debug, PartialEq, Eq)]
struct CalibrationKey {
    catalog: String,
    transactions: String,
    cutoff: i32,
    recent_days: i32,
}

impl Calibration {
    pub(super) fn build(
        t: &RecommendInputs,
        cutoff: i32,
        recent_days: i32,
    ) -> Result<Self, String> {
        let mut index = SharedIndex::build(
            &t.catalog,
            &t.transactions,
            Some(cutoff),
            recent_days,
            Orders::Numbered,
        )
        .map_err(|e| e.to_string())?;
        let order_items = Mutex::new(std::mem::take(&mut index.order_items));
        Ok(Calibration {
            index,
            cutoff,
            order_items,
            derived: OnceLock::new(),
        })
    }

    /// The baselines, derived on first use (concurrent callers wait for the first).
    pub(super) fn derived(&self) -> Result<&Derived, String> {
        let derived = self.derived.get_or_init(|| {
            let order_items =
                std::mem::take(&mut *self.order_items.lock().unwrap_or_else(|e| e.into_inner()));
            let index = &self.index;
            let pairs = calibration_pairs(index, order_items)?;
            let purchases: Vec<Purchase> = index
                .lines
                .iter()
                .map(|l| Purchase {
                    customer: l.cust,
                    item: l.item,
                    day: l.day,
                })
                .collect();
            let available = &index.products.available;
            let popular = recs_eval::popularity(&purchases, self.cutoff, POPULARITY_DAYS)
                .into_iter()
                .filter(|&p| available[p as usize])
                .collect();
            let histories = recs_eval::histories(&purchases, self.cutoff);
            // A copy of every line: gone before the co-occurrence count, the largest part.
            drop(purchases);
            let co_occurrence = CoOccurrence::fit(
                histories.iter().map(|(_, h)| h.as_slice()),
                index.products.ids.len(),
            );
            Ok(Derived {
                popular,
                co_occurrence,
                pairs,
            })
        });
        derived.as_ref().map_err(Clone::clone)
    }
}

/// Co-purchase pairs of the index's orders (its `order_items`), numbered as the affinity node
/// numbers products (by product id), so ties break the same way.
fn calibration_pairs(index: &SharedIndex, mut lines: Vec<(u32, u32)>) -> Result<Vec<Pair>, String> {
    for line in &mut lines {
        line.1 = index.id_rank[line.1 as usize];
    }
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let mut item_of = vec![0u32; index.id_rank.len()];
    for (item, &r) in index.id_rank.iter().enumerate() {
        item_of[r as usize] = item as u32;
    }
    let result = co_purchase(&lines, &PAIR_OPTIONS).map_err(|e| e.to_string())?;
    let mut pairs = Vec::new();
    for item in &result.items {
        for p in &item.partners {
            pairs.push(Pair {
                seed: item_of[item.item as usize],
                partner: item_of[p.item as usize],
                count: f64::from(p.count),
                confidence: p.confidence,
                lift: p.lift,
            });
        }
    }
    Ok(pairs)
}

/// The `backtest` metadata of one node, for the customers `ids` of its segment (`full`: the
/// index of the node's own analysis date). Never fails: what stops it is said in `note`.
/// The run's calibration for the cut-off `cutoff`, built once and shared by the recommend nodes.
fn calibration(
    t: &RecommendInputs,
    cfg: &RecommendConfig,
    cutoff: i32,
    cache: &RunCache,
) -> std::sync::Arc<Result<Calibration, String>> {
    let [catalog, transactions] = t.index_inputs.clone();
    let key = CalibrationKey {
        catalog,
        transactions,
        cutoff,
        recent_days: cfg.recent_days,
    };
    cache.get_or_compute_from(&t.index_inputs, key, || {
        flow_engine::node::compute_here(|| Calibration::build(t, cutoff, cfg.recent_days))
    })
}

/// Builds (or waits for) the calibration [`backtest`] will ask for, from the analysis date the
/// run's index will have, so that it can be built before that index is. Problems are left for
/// the index to report.
pub(super) fn prepare(t: &RecommendInputs, cfg: &RecommendConfig, cache: &RunCache) {
    if let Ok(Some(end)) = SharedIndex::end_of(&t.transactions, cfg.analysis_date) {
        calibration(t, cfg, end - cfg.backtest_days, cache);
    }
}

pub(super) fn backtest(
    full: &SharedIndex,
    ids: &[&str],
    t: &RecommendInputs,
    cfg: &RecommendConfig,
    cache: &RunCache,
) -> Value {
    let days = cfg.backtest_days;
    let cutoff = full.end - days;
    let segment_customers = ids.len();
    let sampled = sample(ids, SAMPLE_CUSTOMERS);
    let ids: &[&str] = &sampled;
    let sample_note = (ids.len() < segment_customers).then(|| {
        format!(
            "scored on a fixed random sample of {} of the segment's {segment_customers} customers",
            ids.len()
        )
    });
    let head = |scored: usize, methods: Vec<Value>, note: Option<String>| {
        let mut v = json!({
            "cutoff": day_string(cutoff),
            "holdout_days": days,
            "k": cfg.top_k,
            "segment_customers": segment_customers,
            "customers": scored,
            "methods": methods,
        });
        if sample_note.is_some() {
            v["sampled_customers"] = json!(ids.len());
        }
        let note = match (note, &sample_note) {
            (Some(n), Some(s)) => Some(format!("{n}; {s}")),
            (n, s) => n.or_else(|| s.clone()),
        };
        if let Some(note) = note {
            v["note"] = Value::String(note);
        }
        v
    };
    let slot = calibration(t, cfg, cutoff, cache);
    let cal = match slot.as_ref() {
        Ok(cal) => cal,
        Err(e) => return head(0, Vec::new(), Some(format!("no backtest: {e}"))),
    };
    if cal.index.lines.is_empty() {
        let note = format!(
            "no backtest: no purchases on or before the cut-off ({days} days before the analysis date)"
        );
        return head(0, Vec::new(), Some(note));
    }
    let baselines = match cal.derived() {
        Ok(d) => d,
        Err(e) => return head(0, Vec::new(), Some(format!("no backtest: {e}"))),
    };

    // The segment's purchases up to the analysis date, customers numbered by position in `ids`.
    let mut member_of = vec![u32::MAX; full.buyers.len()];
    for (m, id) in ids.iter().enumerate() {
        if let Some(b) = full.buyers.get(id) {
            member_of[b as usize] = m as u32;
        }
    }
    let purchases: Vec<Purchase> = full
        .lines
        .iter()
        .filter(|l| member_of[l.cust as usize] != u32::MAX)
        .map(|l| Purchase {
            customer: member_of[l.cust as usize],
            item: l.item,
            day: l.day,
        })
        .collect();
    let new_items = recs_eval::split(&purchases, cutoff, days, Target::NewItems);
    let repeats = recs_eval::split(&purchases, cutoff, days, Target::Repurchases);
    if new_items.customers.len() < MIN_CUSTOMERS {
        let note = format!(
            "too few customers to score: {} of the segment bought before the cut-off and \
             something new after it (at least {MIN_CUSTOMERS} needed)",
            new_items.customers.len()
        );
        return head(new_items.customers.len(), Vec::new(), Some(note));
    }

    let members = |scored: &[u32]| -> Vec<Member> {
        scored
            .iter()
            .map(|&m| Member {
                buyer: cal.index.buyers.get(ids[m as usize]),
                categories: [None, None],
            })
            .collect()
    };
    let new_members = members(&new_items.customers);
    let repeat_members = members(&repeats.customers);
    let k = cfg.top_k;
    let mut methods = Vec::new();
    let mut order: Vec<Strategy> = vec![cfg.strategy];
    order.extend(Strategy::ALL.iter().copied().filter(|&s| s != cfg.strategy));
    for s in order {
        let mut c = cfg.clone();
        c.strategy = s;
        let (set, members) = match s {
            Strategy::Replenishment => (&repeats, &repeat_members),
            _ => (&new_items, &new_members),
        };
        let mut lists = vec![Vec::new(); members.len()];
        rank(&cal.index, members, &baselines.pairs, &c, |m, picks, _| {
            lists[m] = picks.iter().map(|p| p.item).collect();
        });
        let mut label = s.as_str().to_string();
        if cfg.fallback_bestsellers && s != Strategy::Bestsellers {
            label.push_str(" (fallback: bestsellers)");
        }
        if s == Strategy::Replenishment {
            label.push_str(", scored on repeat purchases");
        }
        let m = recs_eval::evaluate(&set.relevant, &lists, k);
        methods.push(method(
            s.as_str(),
            "strategy",
            s == cfg.strategy,
            &label,
            &m,
        ));
    }

    // Baselines, on the same customers, k and exclusions.
    let popular: Vec<Vec<u32>> = new_items
        .history
        .iter()
        .map(|h| recs_eval::top_unseen(&baselines.popular, h, k))
        .collect();
    let m = recs_eval::evaluate(&new_items.relevant, &popular, k);
    let label = format!("most popular items of the last {POPULARITY_DAYS} days");
    methods.push(method("popularity", "baseline", false, &label, &m));
    let available = &cal.index.products.available;
    let mut scratch = vec![0.0; cal.index.products.ids.len()];
    let co: Vec<Vec<u32>> = new_items
        .history
        .iter()
        .map(|h| {
            let h = calibration_items(h, full, cal);
            let allowed = |p: u32| available.get(p as usize).copied().unwrap_or(false);
            baselines
                .co_occurrence
                .recommend(&h, k, &mut scratch, allowed)
        })
        .collect();
    let m = recs_eval::evaluate(&new_items.relevant, &co, k);
    let label = "item-to-item co-occurrence (cosine over customers)";
    methods.push(method("co_occurrence", "baseline", false, label, &m));
    // Replenishment's yardstick: the customer's own items, most bought first.
    let before: Vec<Purchase> = purchases
        .iter()
        .filter(|p| p.day <= cutoff)
        .copied()
        .collect();
    let mut own_by_member = own_most_bought(&before, full, k);
    let own: Vec<Vec<u32>> = repeats
        .customers
        .iter()
        .map(|&m| {
            own_by_member
                .get_mut(m as usize)
                .map(std::mem::take)
                .unwrap_or_default()
        })
        .collect();
    let m = recs_eval::evaluate(&repeats.relevant, &own, k);
    let label = "the customer's own most bought items, scored on repeat purchases";
    methods.push(method("own_most_bought", "baseline", false, label, &m));

    let note = "replenishment and own_most_bought recommend items bought before and are scored \
                on repeat purchases (items bought before the cut-off and again after it); the \
                others on items new to the customer";
    head(new_items.customers.len(), methods, Some(note.to_string()))
}

/// The customers to score: all of them, or when there are more than `max` a random sample of
/// about `max`, fixed by the customer ids (so the figures are reproducible and a customer is in
/// or out of the sample in every run).
fn sample<'a>(ids: &[&'a str], max: usize) -> Vec<&'a str> {
    if ids.len() <= max {
        return ids.to_vec();
    }
    let share = max as f64 / ids.len() as f64;
    ids.iter()
        .copied()
        .filter(|id| flow_analytics::holdout::draw("recommend backtest", id) < share)
        .collect()
}

fn method(name: &str, kind: &str, configured: bool, label: &str, m: &Metrics) -> Value {
    json!({
        "method": name,
        "kind": kind,
        "configured": configured,
        "label": label,
        "customers": m.customers,
        "hit_rate": m.hit_rate,
        "precision": m.precision,
        "recall": m.recall,
        "ndcg": m.ndcg,
    })
}

/// A history (numbered by the full index) in the calibration index's numbering, ascending.
/// Catalog items have the same number in both (the catalog is indexed first); other products
/// are looked up by id.
fn calibration_items(history: &[u32], full: &SharedIndex, cal: &Calibration) -> Vec<u32> {
    let mut out: Vec<u32> = history
        .iter()
        .filter_map(|&p| {
            if (p as usize) < full.catalog_items {
                Some(p)
            } else {
                cal.index
                    .products
                    .ids
                    .get(&full.products.ids.names[p as usize])
            }
        })
        .collect();
    out.sort_unstable();
    out
}

/// Per customer: their items by purchase days (most first), then the latest purchase, then
/// product id. `purchases` before the cut-off only, any order.
fn own_most_bought(purchases: &[Purchase], index: &SharedIndex, k: usize) -> Vec<Vec<u32>> {
    let mut days: Vec<(u32, u32, i32)> = purchases
        .iter()
        .map(|p| (p.customer, p.item, p.day))
        .collect();
    days.sort_unstable();
    days.dedup();
    // (customer, item, purchase days, last day)
    let mut items: Vec<(u32, u32, usize, i32)> = Vec::new();
    for (c, item, day) in days {
        match items.last_mut() {
            Some(x) if x.0 == c && x.1 == item => {
                x.2 += 1;
                x.3 = day;
            }
            _ => items.push((c, item, 1, day)),
        }
    }
    let available = &index.products.available;
    items.retain(|x| available.get(x.1 as usize).copied().unwrap_or(false));
    items.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.2.cmp(&a.2))
            .then(b.3.cmp(&a.3))
            .then(index.id_rank[a.1 as usize].cmp(&index.id_rank[b.1 as usize]))
    });
    let customers = items.last().map_or(0, |x| x.0 as usize + 1);
    let mut out = vec![Vec::new(); customers];
    for (c, item, _, _) in items {
        if out[c as usize].len() < k {
            out[c as usize].push(item);
        }
    }
    out
}

#[cfg(test)]
mod sample_tests {
    use super::sample;

    #[test]
    fn a_large_segment_is_sampled_reproducibly_a_small_one_whole() {
        let owned: Vec<String> = (0..20_000).map(|i| format!("C{i:05}")).collect();
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_eq!(sample(&ids[..500], 500), &ids[..500]);
        let a = sample(&ids, 2_000);
        // About 2,000 (binomial sd ~42), a subset in the segment's order, the same every time.
        assert!((1_800..=2_200).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, sample(&ids, 2_000));
        // The same share of a part of the segment picks the same customers there.
        let b = sample(&ids[..10_000], 1_000);
        assert!(b.iter().all(|id| a.contains(id)), "nested samples");
    }
}
