//! The product catalog: products per category, names, prices, stock, Zipf-like popularity and
//! complements; written as the catalog CSV.

use std::io::{self, Write};

use flow_analytics::rng::Rng;

use super::vocabulary::CATEGORIES;
use super::{GenerateOptions, id_width, invalid};

pub(super) struct ProductModel {
    pub(super) category: u8,
    brand: u8,
    name: String,
    pub(super) price_cents: u32,
    stock: i32,
    pub(super) complements: [u32; 2],
}

pub(super) struct CatTable {
    products: Vec<u32>,
    cum: Vec<f64>,
    cum_premium: Vec<f64>,
}

impl CatTable {
    pub(super) fn draw(&self, rng: &mut Rng, premium: bool) -> Option<u32> {
        let cum = if premium {
            &self.cum_premium
        } else {
            &self.cum
        };
        let total = *cum.last()?;
        let x = rng.f64() * total;
        let i = cum
            .partition_point(|&c| c <= x)
            .min(self.products.len().saturating_sub(1));
        self.products.get(i).copied()
    }
}

pub(super) struct CatalogModel {
    pub(super) products: Vec<ProductModel>,
    pub(super) tables: Vec<CatTable>,
    /// Cumulative category popularity over the used categories.
    cat_cum: Vec<f64>,
}

impl CatalogModel {
    pub(super) fn n_categories(&self) -> usize {
        self.tables.len()
    }

    pub(super) fn draw_category(&self, rng: &mut Rng) -> usize {
        let total = self.cat_cum.last().copied().unwrap_or(1.0);
        let x = rng.f64() * total;
        self.cat_cum
            .partition_point(|&c| c <= x)
            .min(self.n_categories().saturating_sub(1))
    }
}

pub(super) fn build_catalog(opts: &GenerateOptions) -> CatalogModel {
    let mut rng = Rng::stream(opts.seed, 100, 0);
    let n = opts.products as usize;
    let n_cat = n.min(CATEGORIES.len());
    // Products per category by popularity (largest remainder), at least one each.
    let pop_total: f64 = CATEGORIES[..n_cat].iter().map(|c| c.popularity).sum();
    let mut counts: Vec<usize> = vec![1; n_cat];
    let spare = n - n_cat;
    let shares: Vec<f64> = CATEGORIES[..n_cat]
        .iter()
        .map(|c| c.popularity / pop_total * spare as f64)
        .collect();
    let mut given = 0;
    for (count, share) in counts.iter_mut().zip(&shares) {
        *count += share.floor() as usize;
        given += share.floor() as usize;
    }
    let mut order: Vec<usize> = (0..n_cat).collect();
    order.sort_by(|&a, &b| {
        let fa = shares[a] - shares[a].floor();
        let fb = shares[b] - shares[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for &c in order.iter().cycle().take(spare - given) {
        counts[c] += 1;
    }
    // Shuffle the category of each product id.
    let mut cats: Vec<u8> = Vec::with_capacity(n);
    for (c, &k) in counts.iter().enumerate() {
        cats.extend(std::iter::repeat_n(c as u8, k));
    }
    for i in (1..cats.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        cats.swap(i, j);
    }
    let mut products = Vec::with_capacity(n);
    let mut tables: Vec<CatTable> = (0..n_cat)
        .map(|_| CatTable {
            products: Vec::new(),
            cum: Vec::new(),
            cum_premium: Vec::new(),
        })
        .collect();
    for (id, &c) in cats.iter().enumerate() {
        let def = &CATEGORIES[c as usize];
        let r = rng.f64();
        let brand: u8 = if r < 0.4 {
            0
        } else if r < 0.75 {
            1
        } else {
            2
        };
        let name = format!(
            "{} {} {}",
            def.brands[brand as usize],
            rng.pick(def.nouns),
            rng.pick(def.variants)
        );
        let premium = if brand == 2 { 1.8 } else { 1.0 };
        let price = def.median_price * (0.35 * rng.normal()).exp() * premium;
        let cents = ((price * 100.0).round() as u32).clamp(99, 999_999);
        let price_cents = (cents / 10) * 10 + 9;
        let stock = if rng.chance(0.07) {
            0
        } else if rng.chance(0.04) {
            1 + rng.below(3) as i32
        } else {
            ((0.8 * rng.normal() + 3.3).exp().round() as i32).clamp(1, 2000)
        };
        let table = &mut tables[c as usize];
        let rank = table.products.len() as f64;
        let w = 1.0 / (rank + 1.0).powf(1.05);
        let wp = w * if brand == 2 { 3.0 } else { 1.0 };
        let prev = table.cum.last().copied().unwrap_or(0.0);
        let prev_p = table.cum_premium.last().copied().unwrap_or(0.0);
        table.products.push(id as u32);
        table.cum.push(prev + w);
        table.cum_premium.push(prev_p + wp);
        products.push(ProductModel {
            category: c,
            brand,
            name,
            price_cents,
            stock,
            complements: [id as u32; 2],
        });
    }
    // Complements: popular products of the complementary categories.
    for (id, product) in products.iter_mut().enumerate() {
        let c = product.category as usize;
        let mut comps = [id as u32; 2];
        for (k, slot) in comps.iter_mut().enumerate() {
            let target = CATEGORIES[c].complements[k];
            let target = if target < n_cat {
                target
            } else {
                rng.below(n_cat as u64) as usize
            };
            for _ in 0..4 {
                if let Some(p) = tables[target].draw(&mut rng, false)
                    && p as usize != id
                {
                    *slot = p;
                    break;
                }
            }
        }
        product.complements = comps;
    }
    let mut cat_cum = Vec::with_capacity(n_cat);
    let mut acc = 0.0;
    for def in &CATEGORIES[..n_cat] {
        acc += def.popularity;
        cat_cum.push(acc);
    }
    CatalogModel {
        products,
        tables,
        cat_cum,
    }
}

/// Writes the catalog CSV (`product_id,name,category,brand,price,stock`).
pub fn write_catalog<W: Write>(opts: &GenerateOptions, w: W) -> io::Result<()> {
    opts.validate().map_err(invalid)?;
    let model = build_catalog(opts);
    let width = id_width(u64::from(opts.products), 4);
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["product_id", "name", "category", "brand", "price", "stock"])?;
    for (id, p) in model.products.iter().enumerate() {
        let def = &CATEGORIES[p.category as usize];
        out.write_record([
            format!("P{:0width$}", id + 1),
            p.name.clone(),
            def.name.to_string(),
            def.brands[p.brand as usize].to_string(),
            format!("{}.{:02}", p.price_cents / 100, p.price_cents % 100),
            p.stock.to_string(),
        ])?;
    }
    out.flush()?;
    Ok(())
}
