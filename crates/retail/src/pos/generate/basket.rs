//! One order's basket: distinct products from the customer's favourite categories, the
//! season's categories and complements of what is already in the basket, with quantities and
//! promotions. A natural order and a campaign's extra order draw it the same way, each from its
//! own random stream.

use flow_analytics::rng::Rng;

use super::catalog::CatalogModel;
use super::customers::CustomerState;
use super::vocabulary::CATEGORIES;

/// What a customer's baskets depend on (copied out of [`CustomerState`] so the state's own
/// random stream can be borrowed at the same time).
#[derive(Clone, Copy)]
pub(super) struct Taste {
    pub(super) basket: f32,
    pub(super) prefs: [u8; 3],
    pub(super) premium: bool,
}

impl Taste {
    pub(super) fn of(state: &CustomerState) -> Taste {
        Taste {
            basket: state.basket,
            prefs: state.prefs,
            premium: state.premium,
        }
    }
}

/// Draws the basket of an order in month `month` (0-11) into `basket` as (product, quantity).
pub(super) fn draw_basket(
    rng: &mut Rng,
    taste: Taste,
    model: &CatalogModel,
    season_max: &[f64],
    month: usize,
    basket: &mut Vec<(u32, i64)>,
) {
    let k = (1 + rng.poisson((f64::from(taste.basket) - 1.0).max(0.0))).min(6) as usize;
    basket.clear();
    let mut attempts = 0;
    while basket.len() < k && attempts < 4 * k + 8 {
        attempts += 1;
        let complement = if !basket.is_empty() && rng.chance(0.35) {
            let from = basket[rng.below(basket.len() as u64) as usize].0;
            let comps = model
                .products
                .get(from as usize)
                .map_or([from; 2], |p| p.complements);
            let c = comps[rng.below(2) as usize];
            // Complements follow the season too (no camping chairs with the mulled tea).
            let cat = model
                .products
                .get(c as usize)
                .map_or(0, |p| p.category as usize);
            let in_season = rng.f64() * season_max[month] < CATEGORIES[cat].season[month];
            in_season.then_some(c)
        } else {
            None
        };
        let product = if let Some(c) = complement {
            c
        } else {
            let mut cat = 0;
            for _ in 0..16 {
                let u = rng.f64();
                cat = if u < 0.45 {
                    taste.prefs[0] as usize
                } else if u < 0.65 {
                    taste.prefs[1] as usize
                } else if u < 0.8 {
                    taste.prefs[2] as usize
                } else {
                    model.draw_category(rng)
                };
                if rng.f64() * season_max[month] < CATEGORIES[cat].season[month] {
                    break;
                }
            }
            match model
                .tables
                .get(cat)
                .and_then(|t| t.draw(rng, taste.premium))
            {
                Some(p) => p,
                None => continue,
            }
        };
        if basket.iter().any(|&(p, _)| p == product) {
            continue;
        }
        let consumable = model
            .products
            .get(product as usize)
            .is_some_and(|p| CATEGORIES[p.category as usize].consumable);
        let u = rng.f64();
        let qty = if consumable {
            if u < 0.75 {
                1
            } else if u < 0.95 {
                2
            } else {
                3
            }
        } else if u < 0.93 {
            1
        } else {
            2
        };
        basket.push((product, qty));
    }
}

/// A line's unit price and amount in cents: 8% of lines carry a 10-25% promotion.
pub(super) fn price_line(
    rng: &mut Rng,
    model: &CatalogModel,
    product: u32,
    qty: i64,
) -> (i64, i64) {
    let unit = model
        .products
        .get(product as usize)
        .map_or(99, |p| i64::from(p.price_cents));
    let mut amount = unit * qty;
    if rng.chance(0.08) {
        let pct = 10 + rng.below(16) as i64;
        amount = amount * (100 - pct) / 100;
    }
    (unit, amount)
}
