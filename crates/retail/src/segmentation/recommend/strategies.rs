//! The strategies: each ranks one customer's candidates from the lists built once per run.

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
    /// Purchase lines of the item.
    pub(super) lines: f64,
    /// Distinct purchase days of the item.
    pub(super) days: f64,
}

/// Candidate lists built once per run (most of them shared by the run's nodes).
#[derive(Default)]
pub(super) struct Candidates<'r> {
    /// Recency-weighted popularity per product (see [`super::index::SharedIndex::pop`]).
    pub(super) pop: &'r [f64],
    /// Per category: the popularity of its products; and of all products.
    pub(super) category_pop: &'r [f64],
    pub(super) total_pop: f64,
    /// Per category: available items with sales, most popular first.
    pub(super) best_by_category: &'r [Vec<u32>],
    pub(super) best_overall: &'r [u32],
    /// Rising items with their trend factor, per category and overall, by popularity × trend.
    pub(super) rising_by_category: &'r [Vec<u32>],
    pub(super) rising_overall: &'r [u32],
    pub(super) trend: &'r [f64],
    /// Cross-sell partners per product: CSR offsets into `partners`, `(partner, evidence)`.
    pub(super) partner_offsets: &'r [usize],
    pub(super) partners: &'r [(u32, f64)],
    /// Median repurchase interval per product over all customers (NaN when unknown).
    pub(super) interval: &'r [f64],
}

/// Pseudo-lines of the shop-wide category mix added to a customer's own category counts.
pub(super) const CATEGORY_PRIOR_LINES: f64 = 2.0;
/// How much a unit of co-purchase evidence raises cross-sell's score.
pub(super) const PARTNER_BOOST: f64 = 4.0;

/// A customer's category weights: `w(c) = (n_c + α P(c)) / (n + α)` with `n_c` their lines in
/// `c`, `α` [`CATEGORY_PRIOR_LINES`] and `P(c)` the category's share of the shop's popularity.
pub(super) struct Profile {
    /// Categories the customer bought in (or the customer table names), most lines first.
    pub(super) categories: Vec<(u32, f64)>,
    pub(super) lines: f64,
}

/// Per-customer scratch space, reset by stamping with the customer's number.
pub(super) struct Scratch {
    pub(super) stamp: u32,
    pub(super) bought: Vec<u32>,
    pub(super) chosen: Vec<u32>,
    /// Per category: the customer's lines there, valid when `category_stamp` is the stamp.
    pub(super) category_lines: Vec<f64>,
    pub(super) category_stamp: Vec<u32>,
    /// Cross-sell: evidence per product and its strongest seed.
    pub(super) evidence: Vec<(u32, f64, f64, u32)>,
}

impl Scratch {
    pub(super) fn new(n: usize, categories: usize) -> Self {
        Scratch {
            stamp: 0,
            bought: vec![0; n],
            chosen: vec![0; n],
            category_lines: vec![0.0; categories],
            category_stamp: vec![0; categories],
            evidence: vec![(0, 0.0, 0.0, 0); n],
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
    /// Category per product.
    pub(super) category: &'r [Option<u32>],
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

    /// The customer's category weights into `s` (see [`Profile`]).
    pub(super) fn profile(
        &self,
        bought: &[Bought],
        table: &[Option<u32>; 2],
        s: &mut Scratch,
    ) -> Profile {
        let mut prof = Profile {
            categories: Vec::new(),
            lines: 0.0,
        };
        let add = |c: u32, n: f64, s: &mut Scratch, prof: &mut Profile| {
            let c = c as usize;
            if s.category_stamp[c] != s.stamp {
                s.category_stamp[c] = s.stamp;
                s.category_lines[c] = 0.0;
                prof.categories.push((c as u32, 0.0));
            }
            s.category_lines[c] += n;
            prof.lines += n;
        };
        for b in bought {
            if let Some(c) = b.category {
                add(c, b.lines, s, &mut prof);
            }
        }
        // Without history, the customer table's categories stand in for it.
        if prof.lines == 0.0 {
            for c in table.iter().flatten() {
                add(*c, 1.0, s, &mut prof);
            }
        }
        for x in &mut prof.categories {
            x.1 = s.category_lines[x.0 as usize];
        }
        prof.categories.sort_unstable_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.category_rank[a.0 as usize].cmp(&self.category_rank[b.0 as usize]))
        });
        prof
    }

    /// Personalised popularity: `w(c) × pop(i) / pop(c)`, `c` the item's category (an item
    /// without one counts as a category the customer never bought in).
    pub(super) fn personal(&self, prof: &Profile, s: &Scratch, p: u32) -> f64 {
        let cand = self.cand;
        let total = cand.total_pop.max(f64::MIN_POSITIVE);
        let prior = CATEGORY_PRIOR_LINES / (prof.lines + CATEGORY_PRIOR_LINES);
        let pop = cand.pop[p as usize];
        match self.category[p as usize] {
            Some(c) if s.category_stamp[c as usize] == s.stamp => {
                let cat_pop = cand.category_pop[c as usize].max(f64::MIN_POSITIVE);
                let own = s.category_lines[c as usize] / (prof.lines + CATEGORY_PRIOR_LINES);
                (own + prior * cat_pop / total) * pop / cat_pop
            }
            _ => prior * pop / total,
        }
    }

    /// The `need` best items by `score` among the first `need` unskipped items of each of the
    /// customer's categories' lists and of the overall list: exact when the score orders each
    /// list as it is sorted (within a category a customer's weight is one constant).
    #[allow(clippy::too_many_arguments)]
    fn pick_from_lists(
        &self,
        prof: &Profile,
        by_category: &[Vec<u32>],
        overall: &[u32],
        s: &mut Scratch,
        picks: &mut Vec<Pick>,
        score: impl Fn(&Scratch, u32) -> f64,
        reason: Reason,
        fallback: bool,
    ) {
        let need = self.top_k.saturating_sub(picks.len());
        if need == 0 {
            return;
        }
        let from = picks.len();
        let lists = prof
            .categories
            .iter()
            .filter_map(|&(c, _)| by_category.get(c as usize))
            .map(|l| l.as_slice())
            .chain(std::iter::once(overall));
        for list in lists {
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
                    score: score(s, p),
                    reason,
                    fallback,
                });
                taken += 1;
            }
        }
        self.sort_and_keep(picks, from);
    }

    /// Partners of the customer's items: evidence `Σ` over their items of the co-purchase
    /// confidence shrunk by support, the score personalised popularity × (1 + boost ×
    /// evidence); the reason names the item with the strongest evidence.
    pub(super) fn cross_sell(
        &self,
        bought: &[Bought],
        prof: &Profile,
        s: &mut Scratch,
        picks: &mut Vec<Pick>,
    ) {
        let offsets = &self.cand.partner_offsets;
        if offsets.is_empty() {
            return;
        }
        let from = picks.len();
        let mut touched: Vec<u32> = Vec::new();
        for b in bought {
            let (lo, hi) = (offsets[b.item as usize], offsets[b.item as usize + 1]);
            for &(p, e) in &self.cand.partners[lo..hi] {
                if self.skip(s, p) {
                    continue;
                }
                let slot = &mut s.evidence[p as usize];
                if slot.0 != s.stamp {
                    *slot = (s.stamp, 0.0, f64::NEG_INFINITY, b.item);
                    touched.push(p);
                }
                slot.1 += e;
                let better = e > slot.2
                    || (e == slot.2
                        && self.id_rank[b.item as usize] < self.id_rank[slot.3 as usize]);
                if better {
                    slot.2 = e;
                    slot.3 = b.item;
                }
            }
        }
        for p in touched {
            let (_, evidence, _, seed) = s.evidence[p as usize];
            picks.push(Pick {
                item: p,
                score: self.personal(prof, s, p) * (1.0 + PARTNER_BOOST * evidence),
                reason: Reason::BoughtWith(seed),
                fallback: false,
            });
        }
        self.sort_and_keep(picks, from);
        for p in &picks[from..] {
            s.chosen[p.item as usize] = s.stamp;
        }
    }

    /// Items priced above what the customer pays on average (spend-weighted) in each category
    /// they bought in, by personalised popularity.
    pub(super) fn upsell(
        &self,
        bought: &[Bought],
        prof: &Profile,
        s: &mut Scratch,
        picks: &mut Vec<Pick>,
    ) {
        // (category, spend, spend-weighted price)
        let mut cats: Vec<(u32, f64, f64)> = Vec::new();
        for b in bought {
            let Some(c) = b.category else { continue };
            if !(b.price.is_finite() && b.spend > 0.0) {
                continue;
            }
            match cats.iter_mut().find(|x| x.0 == c) {
                Some(x) => {
                    x.1 += b.spend;
                    x.2 += b.spend * b.price;
                }
                None => cats.push((c, b.spend, b.spend * b.price)),
            }
        }
        cats.sort_unstable_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.category_rank[a.0 as usize].cmp(&self.category_rank[b.0 as usize]))
        });
        let from = picks.len();
        for &(c, spend, weighted) in &cats {
            let reference = weighted / spend;
            let Some(list) = self.cand.best_by_category.get(c as usize) else {
                continue;
            };
            let mut taken = 0;
            for &p in list {
                if taken == self.top_k {
                    break;
                }
                if self.price[p as usize] <= reference || self.skip(s, p) {
                    continue;
                }
                s.choose(p);
                picks.push(Pick {
                    item: p,
                    score: self.personal(prof, s, p),
                    reason: Reason::StepUp,
                    fallback: false,
                });
                taken += 1;
            }
        }
        self.sort_and_keep(picks, from);
    }

    /// Rising items, in the customer's categories first: personalised popularity × trend.
    pub(super) fn seasonal(&self, prof: &Profile, s: &mut Scratch, picks: &mut Vec<Pick>) {
        let cand = self.cand;
        self.pick_from_lists(
            prof,
            cand.rising_by_category,
            cand.rising_overall,
            s,
            picks,
            |s, p| self.personal(prof, s, p) * cand.trend[p as usize],
            Reason::Trending,
            false,
        );
    }

    /// The customer's categories' bestsellers and the shop's, by personalised popularity.
    pub(super) fn bestsellers(
        &self,
        prof: &Profile,
        s: &mut Scratch,
        picks: &mut Vec<Pick>,
        fallback: bool,
    ) {
        for p in picks.iter() {
            s.choose(p.item);
        }
        let cand = self.cand;
        self.pick_from_lists(
            prof,
            cand.best_by_category,
            cand.best_overall,
            s,
            picks,
            |s, p| self.personal(prof, s, p),
            Reason::Bestseller,
            fallback,
        );
    }

    /// The customer's items with a known repurchase interval, by purchase days × due factor
    /// `(1 + min(days since / interval, 1)) / 2`: the regular ones first, the due before the
    /// just bought.
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
            picks.push(Pick {
                item: b.item,
                score: b.days * (1.0 + ratio.min(1.0)) / 2.0,
                reason: Reason::Due(interval),
                fallback: false,
            });
        }
        self.sort_and_keep(picks, from);
    }
}
