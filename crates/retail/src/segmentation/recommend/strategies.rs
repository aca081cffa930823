//! The strategies: each ranks one customer's candidates from the lists built once per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Why an item is recommended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reason {
    BoughtWith(u32),
    StepUp,
    Trending,
    Bestseller,
    Due(f64),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Pick {
    pub(super) item: u32,
    pub(super) score: f64,
    pub(super) reason: Reason,
    pub(super) fallback: bool,
}

/// One product a customer bought (up to the analysis date).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bought {
    pub(super) item: u32,
    pub(super) last_day: i32,
    /// The customer's own median interval between purchase days (NaN below 3 days).
    pub(super) own_interval: f64,
    pub(super) spend: f64,
    /// Reference price: catalog price, else the highest unit price paid.
    pub(super) price: f64,
    pub(super) category: Option<u32>,
}

/// Candidate lists built once per run (most of them shared by the run's nodes).
#[derive(Default)]
pub(super) struct Candidates<'r> {
    /// Per category: available items with sales, best first.
    pub(super) best_by_category: &'r [Vec<u32>],
    pub(super) best_overall: &'r [u32],
    /// Units sold per product.
    pub(super) units: &'r [f64],
    /// Rising items with their trend score, best first.
    pub(super) trending: &'r [(u32, f64)],
    /// Per category: available priced items by price ascending.
    pub(super) by_price: &'r [Vec<u32>],
    /// Cross-sell partners per product (best lift first): CSR offsets into `partners`.
    pub(super) partner_offsets: &'r [usize],
    pub(super) partners: &'r [(u32, f64)],
    /// Median repurchase interval per product over all customers (NaN when unknown).
    pub(super) interval: &'r [f64],
}

/// Per-customer scratch space, reset by stamping with the customer's number.
pub(super) struct Scratch {
    pub(super) stamp: u32,
    pub(super) bought: Vec<u32>,
    pub(super) chosen: Vec<u32>,
    pub(super) heap: BinaryHeap<Head>,
}

/// The next partner of one of the customer's items, for the cross-sell merge: the heap's
/// greatest is the highest lift, then the lowest partner id, then the lowest seed id.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Head {
    pub(super) lift: u64,
    pub(super) partner: Reverse<u32>,
    pub(super) seed: Reverse<u32>,
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) seed_item: u32,
}

/// An order-preserving integer key of a lift (>= 0).
pub(super) fn lift_key(lift: f64) -> u64 {
    if lift > 0.0 { lift.to_bits() } else { 0 }
}

impl Scratch {
    pub(super) fn new(n: usize) -> Self {
        Scratch {
            stamp: 0,
            bought: vec![0; n],
            chosen: vec![0; n],
            heap: BinaryHeap::new(),
        }
    }

    pub(super) fn is_bought(&self, p: u32) -> bool {
        self.bought[p as usize] == self.stamp
    }

    pub(super) fn is_chosen(&self, p: u32) -> bool {
        self.chosen[p as usize] == self.stamp
    }

    pub(super) fn choose(&mut self, p: u32) {
        self.chosen[p as usize] = self.stamp;
    }
}

pub(super) fn median(values: &mut [f64]) -> f64 {
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
pub(super) struct Ranker<'r> {
    pub(super) cand: &'r Candidates<'r>,
    pub(super) price: &'r [f64],
    pub(super) available: &'r [bool],
    /// Position of each product id in sorted order (the tie-break).
    pub(super) id_rank: &'r [u32],
    /// Position of each category name in sorted order.
    pub(super) category_rank: &'r [u32],
    pub(super) top_k: usize,
    pub(super) exclude_bought: bool,
    pub(super) end: i32,
}

impl Ranker<'_> {
    /// Best first: higher score, then lower product id.
    pub(super) fn order(&self, a: (u32, f64), b: (u32, f64)) -> std::cmp::Ordering {
        b.1.total_cmp(&a.1)
            .then(self.id_rank[a.0 as usize].cmp(&self.id_rank[b.0 as usize]))
    }

    /// Sorts `picks[from..]` best first and keeps `top_k` picks in all: a selection first, so
    /// a customer with hundreds of candidates costs linear time, not a full sort.
    pub(super) fn sort_and_keep(&self, picks: &mut Vec<Pick>, from: usize) {
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

    pub(super) fn skip(&self, s: &Scratch, p: u32) -> bool {
        (self.exclude_bought && s.is_bought(p)) || s.is_chosen(p)
    }

    /// Merges the customer's items' partner lists (each sorted by lift, then partner id) with
    /// a heap: the first time a partner comes out is at its highest lift (ties: the seed with
    /// the lowest id), in final rank order, so only about `top_k` entries are looked at.
    pub(super) fn cross_sell(&self, bought: &[Bought], s: &mut Scratch, picks: &mut Vec<Pick>) {
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

    pub(super) fn upsell(&self, bought: &[Bought], s: &mut Scratch, picks: &mut Vec<Pick>) {
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

    pub(super) fn seasonal(&self, s: &mut Scratch, picks: &mut Vec<Pick>) {
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
    pub(super) fn bestsellers(
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

    pub(super) fn replenishment(&self, bought: &[Bought], picks: &mut Vec<Pick>) {
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
