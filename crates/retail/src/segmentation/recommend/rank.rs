//! Ranking a list of customers against an index: the customers' purchase lines, the candidate
//! lists and each customer's picks. The node's output and its backtest both rank through here.

use super::index::{Line, SharedIndex};
use super::strategies::{Bought, Candidates, Pick, Ranker, Scratch, median};
use super::{RecommendConfig, Strategy};

/// Cross-sell: pseudo-orders added to a seed's orders when shrinking the confidence of its
/// pairs, so a pair seen in 3 of 4 orders does not outrank one seen in 300 of 600.
pub(super) const PAIR_SHRINK_ORDERS: f64 = 20.0;

/// A customer to rank for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    /// The customer's number among the index's buyers (`None`: no purchases).
    pub(super) buyer: Option<u32>,
    /// The customer table's `favourite_category` and `top_category` (distinct).
    pub(super) categories: [Option<u32>; 2],
}

/// A co-purchase pair: `partner` bought in the same orders as `seed`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pair {
    pub(super) seed: u32,
    pub(super) partner: u32,
    /// Orders with both.
    pub(super) count: f64,
    /// `count / orders with seed`.
    pub(super) confidence: f64,
    pub(super) lift: f64,
}

/// Ranks every member with `cfg` (its strategy and fallback); `emit(member, picks, bought)`
/// sees each member's picks, best first, and the items they bought.
pub(super) fn rank(
    shared: &SharedIndex,
    members: &[Member],
    pairs: &[Pair],
    cfg: &RecommendConfig,
    mut emit: impl FnMut(usize, &[Pick], &[Bought]),
) {
    let products = &shared.products;
    let n = products.ids.len();
    let id_rank = &shared.id_rank;
    let lines = member_lines(shared, members);

    // --- Candidate lists, built once ---------------------------------------------------------
    // Every strategy scores by personalised popularity; bestsellers also fill lists.
    let popular = shared.popular();
    let mut cand = Candidates {
        pop: &shared.pop,
        category_pop: &popular.category_pop,
        total_pop: popular.total,
        best_by_category: &popular.by_category,
        best_overall: &popular.overall,
        ..Candidates::default()
    };
    if cfg.strategy == Strategy::Seasonal {
        let rising = shared.rising();
        cand.rising_by_category = &rising.by_category;
        cand.rising_overall = &rising.overall;
        cand.trend = &rising.trend;
    }
    let mut partner_offsets: Vec<usize> = Vec::new();
    let mut partners: Vec<(u32, f64)> = Vec::new();
    if cfg.strategy == Strategy::CrossSell {
        // (seed, partner, evidence): confidence shrunk by support, count / (n_seed + β).
        let mut pairs: Vec<(u32, u32, f64)> = pairs
            .iter()
            .filter(|p| p.lift.is_finite() && p.lift >= cfg.min_lift)
            .filter(|p| p.seed != p.partner && products.available[p.partner as usize])
            .map(|p| {
                let seed_orders = p.count / p.confidence;
                let e = p.count / (seed_orders + PAIR_SHRINK_ORDERS);
                (
                    p.seed,
                    p.partner,
                    if e.is_finite() && e > 0.0 { e } else { 0.0 },
                )
            })
            .collect();
        pairs.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0)
                .then(id_rank[x.1 as usize].cmp(&id_rank[y.1 as usize]))
                .then(y.2.total_cmp(&x.2))
        });
        // A pair listed twice keeps its stronger evidence (sorted first).
        pairs.dedup_by_key(|x| (x.0, x.1));
        partner_offsets = vec![0usize; n + 1];
        for &(a, _, _) in &pairs {
            partner_offsets[a as usize + 1] += 1;
        }
        for i in 0..n {
            partner_offsets[i + 1] += partner_offsets[i];
        }
        partners = pairs.iter().map(|&(_, b, e)| (b, e)).collect();
    }
    cand.partner_offsets = &partner_offsets;
    cand.partners = &partners;
    if cfg.strategy == Strategy::Replenishment {
        cand.interval = shared.interval();
    }

    let ranker = Ranker {
        cand: &cand,
        price: &products.price,
        category: &products.category,
        available: &products.available,
        id_rank,
        category_rank: &shared.category_rank,
        top_k: cfg.top_k,
        exclude_bought: !cfg.include_purchased,
        end: shared.end,
    };

    // --- Per customer ------------------------------------------------------------------------
    let mut line_at = 0usize;
    let mut scratch = Scratch::new(n, shared.categories.len());
    let mut bought: Vec<Bought> = Vec::new();
    let mut picks: Vec<Pick> = Vec::new();
    let mut day_gaps: Vec<f64> = Vec::new();
    for (c, member) in members.iter().enumerate() {
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
            let mut days = 1.0;
            day_gaps.clear();
            while k < mine.len() && mine[k].item == item {
                let l = mine[k];
                spend += l.spend;
                if l.units > 0.0 {
                    max_unit = f64::max(max_unit, l.spend / l.units);
                }
                if k > j && l.day != mine[k - 1].day {
                    day_gaps.push(f64::from(l.day - mine[k - 1].day));
                    days += 1.0;
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
                category: mine[j].category(),
                lines: (k - j) as f64,
                days,
            });
            scratch.bought[item as usize] = scratch.stamp;
            j = k;
        }

        picks.clear();
        let prof = ranker.profile(&bought, &member.categories, &mut scratch);
        let s = &mut scratch;
        match cfg.strategy {
            Strategy::CrossSell => ranker.cross_sell(&bought, &prof, s, &mut picks),
            Strategy::Upsell => ranker.upsell(&bought, &prof, s, &mut picks),
            Strategy::Seasonal => ranker.seasonal(&prof, s, &mut picks),
            Strategy::Bestsellers => ranker.bestsellers(&prof, s, &mut picks, false),
            Strategy::Replenishment => ranker.replenishment(&bought, &mut picks),
        }
        if cfg.fallback_bestsellers && picks.len() < cfg.top_k {
            ranker.bestsellers(&prof, s, &mut picks, true);
        }
        emit(c, &picks, &bought);
    }
}

/// The members' purchase lines by (member, item, day); `cust` is the member's position. Each
/// buyer's lines come sorted: they are gathered in the members' order.
fn member_lines(shared: &SharedIndex, members: &[Member]) -> Vec<Line> {
    let offsets = &shared.by_buyer;
    let range = |b: u32| offsets[b as usize]..offsets[b as usize + 1];
    let total = members
        .iter()
        .filter_map(|m| m.buyer)
        .map(|b| range(b).len())
        .sum();
    let mut lines = Vec::with_capacity(total);
    for (cust, m) in members.iter().enumerate() {
        let Some(b) = m.buyer else { continue };
        lines.extend(shared.lines[range(b)].iter().map(|l| l.of(cust as u32)));
    }
    lines
}
