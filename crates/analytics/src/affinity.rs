//! Product affinity: per-customer category affinity and item-to-item co-purchase statistics.
//!
//! # Category affinity index
//! `index(c, k) = (spend of customer c in category k / total spend of c)
//!              / (spend of all customers in k / total spend of all) × 100`;
//! 100 means "as much as the average customer", 200 twice as much.
//!
//! # Item-to-item co-purchase (market basket over distinct orders)
//! In the spirit of Linden, Smith & York (2003), "Amazon.com Recommendations: Item-to-Item
//! Collaborative Filtering", *IEEE Internet Computing* 7(1): for every pair of items bought in the
//! same order, over `N` distinct orders,
//!
//! ```text
//! support(A,B)    = orders with A and B / N
//! confidence(A→B) = orders with A and B / orders with A
//! lift(A,B)       = support(A,B) / (P(A) P(B)) = n_AB N / (n_A n_B)
//! cosine(A,B)     = n_AB / sqrt(n_A n_B)      (cosine of the binary order vectors)
//! ```
//!
//! Each item keeps its top-K partners by lift (descending), ties broken by the partner's item id
//! (ascending), among pairs seen in at least `min_count` orders.
//!
//! Huge baskets: an order with more than `max_basket_items` distinct items adds `k(k-1)/2`
//! pairs (a 1,000-item wholesale order alone would add ~500k), so such orders count towards `N`
//! and the per-item order counts but contribute no pairs; their number is reported in
//! [`CoPurchase::oversized_orders`].
//!
//! Cost: sorting the `(order, item)` lines once and the generated pair keys once:
//! O(L log L + P log P) for L lines and P pairs; memory O(L + P).

use super::{AnalyticsError, AnalyticsResult};

/// Spend of a customer in a category (one sales line; lines may repeat and come in any order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CategorySpend {
    /// Customer id.
    pub customer: u32,
    /// Category id.
    pub category: u32,
    /// Amount (finite; refunds may be negative).
    pub amount: f64,
}

/// The affinity of one customer for one category.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CategoryAffinity {
    /// Customer id.
    pub customer: u32,
    /// Category id.
    pub category: u32,
    /// The customer's net spend in the category.
    pub spend: f64,
    /// The customer's share of their own spend in the category (0-1 for non-negative spend).
    pub share: f64,
    /// Affinity index (100 = average).
    pub index: f64,
}

/// Category affinity index for every (customer, category) with spend, sorted by customer then
/// category.
///
/// Customers whose total spend is not positive and categories whose overall spend is not
/// positive get no entries (their shares are meaningless).
/// Errors with `NonFinite` when an amount is not finite.
pub fn category_affinity(lines: &[CategorySpend]) -> AnalyticsResult<Vec<CategoryAffinity>> {
    let mut out = Vec::new();
    for_each_category_affinity(lines, |cell| out.push(cell))?;
    Ok(out)
}

/// [`category_affinity`], each entry handed to `each` in order instead of collected (a table
/// of ten million lines has millions of entries).
pub fn for_each_category_affinity(
    lines: &[CategorySpend],
    mut each: impl FnMut(CategoryAffinity),
) -> AnalyticsResult<()> {
    let mut keyed: Vec<(u64, f64)> = Vec::with_capacity(lines.len());
    for l in lines {
        if !l.amount.is_finite() {
            return Err(AnalyticsError::NonFinite(format!(
                "amount {} of customer {} in category {}",
                l.amount, l.customer, l.category
            )));
        }
        keyed.push((
            (u64::from(l.customer) << 32) | u64::from(l.category),
            l.amount,
        ));
    }
    keyed.sort_unstable_by_key(|k| k.0);
    // Cells of (customer << 32 | category, spend), merged in place.
    merge_runs(&mut keyed);
    let cells = keyed;
    let customer_of = |cell: &(u64, f64)| (cell.0 >> 32) as u32;
    let category_of = |cell: &(u64, f64)| cell.0 as u32;
    let mut category_total: Vec<(u32, f64)> = cells.iter().map(|c| (category_of(c), c.1)).collect();
    category_total.sort_unstable_by_key(|c| c.0);
    merge_runs(&mut category_total);
    let grand_total: f64 = category_total.iter().map(|c| c.1).sum();
    if grand_total <= 0.0 {
        return Ok(());
    }
    for same_customer in cells.chunk_by(|a, b| customer_of(a) == customer_of(b)) {
        let total: f64 = same_customer.iter().map(|c| c.1).sum();
        if total <= 0.0 {
            continue;
        }
        for cell in same_customer {
            let category = category_of(cell);
            let i = category_total.partition_point(|c| c.0 < category);
            let overall_share = category_total[i].1 / grand_total;
            if overall_share <= 0.0 {
                continue;
            }
            let spend = cell.1;
            let share = spend / total;
            each(CategoryAffinity {
                customer: customer_of(cell),
                category,
                spend,
                share,
                index: share / overall_share * 100.0,
            });
        }
    }
    Ok(())
}

/// Merges each run of equal keys into its first entry, the amounts added in order.
fn merge_runs<K: PartialEq>(sorted: &mut Vec<(K, f64)>) {
    sorted.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
}

/// Options of [`co_purchase`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoPurchaseOptions {
    /// Partners kept per item (default 20).
    pub top_k: usize,
    /// Minimum number of orders containing both items (default 2).
    pub min_count: u32,
    /// Orders with more distinct items than this contribute no pairs (default 50).
    pub max_basket_items: usize,
}

impl Default for CoPurchaseOptions {
    fn default() -> Self {
        CoPurchaseOptions {
            top_k: 20,
            min_count: 2,
            max_basket_items: 50,
        }
    }
}

/// An item frequently bought together with another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partner {
    /// The partner item id.
    pub item: u32,
    /// Orders containing both items.
    pub count: u32,
    /// `count / N`.
    pub support: f64,
    /// `count / orders with the query item` (confidence of query → partner).
    pub confidence: f64,
    /// `support / (P(query) P(partner))`.
    pub lift: f64,
    /// `count / sqrt(orders with query × orders with partner)`.
    pub cosine: f64,
}

/// Co-purchase partners of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPartners {
    /// Item id.
    pub item: u32,
    /// Number of distinct orders containing the item.
    pub orders: u32,
    /// Top partners by lift (descending, ties by item id ascending); may be empty.
    pub partners: Vec<Partner>,
}

/// Result of [`co_purchase`].
#[derive(Debug, Clone, PartialEq)]
pub struct CoPurchase {
    /// Number of distinct orders `N`.
    pub orders: u32,
    /// Orders that exceeded `max_basket_items` and contributed no pairs.
    pub oversized_orders: u32,
    /// Every item that appears in some order, sorted by item id.
    pub items: Vec<ItemPartners>,
}

/// Item-to-item co-purchase statistics over distinct orders from `(order id, item id)` lines.
///
/// Lines may repeat (quantities, several lines of the same item) and come in any order.
/// Errors with `InvalidInput` when `top_k == 0` or `max_basket_items < 2`.
pub fn co_purchase(
    lines: &[(u32, u32)],
    options: &CoPurchaseOptions,
) -> AnalyticsResult<CoPurchase> {
    if options.top_k == 0 || options.max_basket_items < 2 {
        return Err(AnalyticsError::InvalidInput(format!(
            "co_purchase needs top_k >= 1 and max_basket_items >= 2, got {} and {}",
            options.top_k, options.max_basket_items
        )));
    }
    let mut keys: Vec<u64> = lines
        .iter()
        .map(|&(o, i)| (u64::from(o) << 32) | u64::from(i))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // Dense item indices.
    let mut item_ids: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
    item_ids.sort_unstable();
    let mut item_orders: Vec<u32> = Vec::new();
    {
        let mut unique: Vec<u32> = Vec::new();
        for &id in &item_ids {
            if unique.last() == Some(&id) {
                if let Some(c) = item_orders.last_mut() {
                    *c += 1;
                }
            } else {
                unique.push(id);
                item_orders.push(1);
            }
        }
        item_ids = unique;
    }
    let dense = |id: u32| item_ids.partition_point(|&x| x < id) as u64;
    // Pair keys (lower dense index << 32 | higher) per order. Counted first: at millions of
    // orders they are tens of millions, held once rather than in a vector grown by doubling.
    let baskets = || keys.chunk_by(|a, b| a >> 32 == b >> 32);
    let paired = |size: usize| (2..=options.max_basket_items).contains(&size);
    let expected: usize = baskets()
        .map(<[u64]>::len)
        .filter(|&size| paired(size))
        .map(|size| size * (size - 1) / 2)
        .sum();
    let mut pairs: Vec<u64> = Vec::with_capacity(expected);
    let mut basket: Vec<u64> = Vec::new();
    let (mut orders, mut oversized) = (0u32, 0u32);
    for order in baskets() {
        orders += 1;
        if order.len() > options.max_basket_items {
            oversized += 1;
        } else if paired(order.len()) {
            basket.clear();
            // Item ids ascend within an order, so dense indices ascend too.
            basket.extend(order.iter().map(|&k| dense(k as u32)));
            for i in 0..basket.len() {
                for j in i + 1..basket.len() {
                    pairs.push((basket[i] << 32) | basket[j]);
                }
            }
        }
    }
    pairs.sort_unstable();
    let n = f64::from(orders);
    let mut candidates: Vec<Vec<Partner>> = vec![Vec::new(); item_ids.len()];
    let mut i = 0;
    while i < pairs.len() {
        let key = pairs[i];
        let run = pairs[i..].iter().take_while(|&&k| k == key).count();
        i += run;
        let count = run as u32;
        if count < options.min_count {
            continue;
        }
        let (a, b) = ((key >> 32) as usize, (key & 0xFFFF_FFFF) as usize);
        let (na, nb) = (f64::from(item_orders[a]), f64::from(item_orders[b]));
        let c = f64::from(count);
        let support = c / n;
        let lift = c * n / (na * nb);
        let cosine = c / (na * nb).sqrt();
        candidates[a].push(Partner {
            item: item_ids[b],
            count,
            support,
            confidence: c / na,
            lift,
            cosine,
        });
        candidates[b].push(Partner {
            item: item_ids[a],
            count,
            support,
            confidence: c / nb,
            lift,
            cosine,
        });
    }
    let items = candidates
        .into_iter()
        .enumerate()
        .map(|(idx, mut partners)| {
            partners.sort_unstable_by(|x, y| y.lift.total_cmp(&x.lift).then(x.item.cmp(&y.item)));
            partners.truncate(options.top_k);
            ItemPartners {
                item: item_ids[idx],
                orders: item_orders[idx],
                partners,
            }
        })
        .collect();
    Ok(CoPurchase {
        orders,
        oversized_orders: oversized,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_index_by_hand() {
        let l = |customer, category, amount| CategorySpend {
            customer,
            category,
            amount,
        };
        // Overall: category 1 = 60, category 2 = 40 (60% / 40%).
        let lines = [
            l(7, 1, 30.0),
            l(7, 1, 10.0),
            l(3, 2, 30.0),
            l(3, 1, 20.0),
            l(7, 2, 10.0),
        ];
        let a = category_affinity(&lines).unwrap();
        let got: Vec<(u32, u32)> = a.iter().map(|x| (x.customer, x.category)).collect();
        assert_eq!(got, vec![(3, 1), (3, 2), (7, 1), (7, 2)]);
        // Customer 3: 20/50 = 40% in cat 1 -> 40/60*100; 60% in cat 2 -> 60/40*100.
        assert!((a[0].index - 40.0 / 60.0 * 100.0).abs() < 1e-12);
        assert!((a[1].index - 150.0).abs() < 1e-12);
        // Customer 7: 40/50 = 80% in cat 1 -> 133.3; 20% in cat 2 -> 50.
        assert!((a[2].spend - 40.0).abs() < 1e-12 && (a[2].share - 0.8).abs() < 1e-12);
        assert!((a[3].index - 50.0).abs() < 1e-12);
        // The spend-weighted mean index of a category over customers is 100.
        let w: f64 = a
            .iter()
            .filter(|x| x.category == 1)
            .map(|x| x.index * 50.0)
            .sum::<f64>();
        assert!((w / 100.0 - 100.0).abs() < 1e-9);
    }

    #[test]
    fn category_edge_cases() {
        assert!(category_affinity(&[]).unwrap().is_empty());
        let refund_only = [CategorySpend {
            customer: 1,
            category: 1,
            amount: -5.0,
        }];
        assert!(category_affinity(&refund_only).unwrap().is_empty());
        let nan = [CategorySpend {
            customer: 1,
            category: 1,
            amount: f64::NAN,
        }];
        assert!(matches!(
            category_affinity(&nan),
            Err(AnalyticsError::NonFinite(_))
        ));
    }

    #[test]
    fn co_purchase_by_hand() {
        // Orders: 1 {10, 20, 30}, 2 {10, 20}, 3 {10}, 4 {20, 30} (20 listed twice), 5 {40}
        let lines = [
            (1, 30),
            (1, 10),
            (1, 20),
            (2, 20),
            (2, 10),
            (3, 10),
            (4, 20),
            (4, 20),
            (4, 30),
            (5, 40),
        ];
        let opts = CoPurchaseOptions {
            top_k: 5,
            min_count: 1,
            max_basket_items: 10,
        };
        let r = co_purchase(&lines, &opts).unwrap();
        assert_eq!((r.orders, r.oversized_orders), (5, 0));
        let ids: Vec<(u32, u32)> = r.items.iter().map(|i| (i.item, i.orders)).collect();
        assert_eq!(ids, vec![(10, 3), (20, 3), (30, 2), (40, 1)]);
        let item10 = &r.items[0];
        // 10&20: 2 orders, lift = 2*5/(3*3) = 1.111; 10&30: 1 order, lift = 5/(3*2) = 0.833.
        assert_eq!(item10.partners.len(), 2);
        let p = item10.partners[0];
        assert_eq!((p.item, p.count), (20, 2));
        assert!((p.lift - 10.0 / 9.0).abs() < 1e-12);
        assert!((p.support - 0.4).abs() < 1e-12 && (p.confidence - 2.0 / 3.0).abs() < 1e-12);
        assert!((p.cosine - 2.0 / 3.0).abs() < 1e-12);
        // 30's partners: 20 (2 orders, lift 5*2/(2*3)=1.667) before 10 (lift 0.833).
        let item30 = &r.items[2];
        assert_eq!(
            item30.partners.iter().map(|p| p.item).collect::<Vec<_>>(),
            vec![20, 10]
        );
        assert!((item30.partners[0].confidence - 1.0).abs() < 1e-12);
        assert!(r.items[3].partners.is_empty());
        // min_count = 2 drops the single co-occurrences; top_k = 1 keeps the best.
        let strict = co_purchase(
            &lines,
            &CoPurchaseOptions {
                min_count: 2,
                top_k: 1,
                ..opts
            },
        )
        .unwrap();
        assert_eq!(strict.items[0].partners.len(), 1);
        assert_eq!(
            strict.items[2]
                .partners
                .iter()
                .map(|p| p.item)
                .collect::<Vec<_>>(),
            vec![20]
        );
        // Oversized baskets give no pairs but still count as orders.
        let capped = co_purchase(
            &lines,
            &CoPurchaseOptions {
                max_basket_items: 2,
                ..opts
            },
        )
        .unwrap();
        assert_eq!((capped.orders, capped.oversized_orders), (5, 1));
        assert_eq!(capped.items[0].partners.len(), 1);
    }

    #[test]
    fn ties_broken_by_item_id_and_symmetry() {
        // Item 1 co-occurs once with each of 9, 5, 7 (each also alone once): equal lifts.
        let lines = [
            (1, 1),
            (1, 9),
            (2, 1),
            (2, 5),
            (3, 1),
            (3, 7),
            (4, 9),
            (5, 5),
            (6, 7),
        ];
        let r = co_purchase(
            &lines,
            &CoPurchaseOptions {
                min_count: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let one = &r.items[0];
        assert_eq!(
            one.partners.iter().map(|p| p.item).collect::<Vec<_>>(),
            vec![5, 7, 9]
        );
        for item in &r.items {
            for p in &item.partners {
                let back = r.items.iter().find(|i| i.item == p.item).unwrap();
                let q = back.partners.iter().find(|q| q.item == item.item).unwrap();
                assert_eq!((p.count, p.lift, p.support), (q.count, q.lift, q.support));
            }
        }
        assert!(
            co_purchase(
                &lines,
                &CoPurchaseOptions {
                    top_k: 0,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    /// 1M lines over 5k products; run with
    /// `cargo test --release -- --ignored --nocapture co_purchase_1m_timing`.
    #[test]
    #[ignore]
    fn co_purchase_1m_timing() {
        let mut rng = crate::rng::Rng::new(1);
        let mut next = || rng.next_u64();
        let mut lines = Vec::with_capacity(1_000_000);
        let mut order = 0u32;
        while lines.len() < 1_000_000 {
            let size = 1 + next() % 10;
            for _ in 0..size {
                // Skewed popularity: square of a uniform.
                let u = (next() % 5000) as f64 / 5000.0;
                lines.push((order, (u * u * 5000.0) as u32));
            }
            order += 1;
        }
        let start = std::time::Instant::now();
        let r = co_purchase(&lines, &CoPurchaseOptions::default()).unwrap();
        println!(
            "co_purchase: {} lines, {} orders, {} items: {:?}",
            lines.len(),
            r.orders,
            r.items.len(),
            start.elapsed()
        );
        let cats: Vec<CategorySpend> = lines
            .iter()
            .map(|&(o, i)| CategorySpend {
                customer: o % 50_000,
                category: i % 40,
                amount: 1.0 + f64::from(i % 17),
            })
            .collect();
        let start = std::time::Instant::now();
        let a = category_affinity(&cats).unwrap();
        println!(
            "category_affinity: {} lines -> {} cells: {:?}",
            cats.len(),
            a.len(),
            start.elapsed()
        );
    }
}
