//! Deterministic, realistic retail sample data: transactions (the [`super::csv_mapped`]
//! default layout), a product catalog and a customers file.
//!
//! Same options (seed included) = byte-identical output, on any machine with the same Rust
//! standard library math (`ln`, `exp`, `powf` come from the platform; IEEE operations are
//! exact). No external RNG crate: SplitMix64 streams, one per customer, so a customer's history
//! does not depend on the others'.
//!
//! # The model
//! - **Catalog**: 12 categories, each with three sub-brands (the third a premium brand priced
//!   about 1.8x), product names from per-category vocabularies, a log-normal price around the
//!   category median (ending in 9 cents), and stock levels (about 7% at zero: out of stock).
//! - **Popularity**: Zipf-like (weight 1 / rank^1.05) within each category; categories have
//!   their own overall popularity. Premium customers weigh premium-brand products 3x.
//! - **Co-purchase**: each product has two complements in complementary categories (coffee with
//!   bakery and kitchen, toys with electronics, ...); after the first line of a basket, each
//!   further line is, with probability 0.35, a complement of a product already in the basket.
//! - **Customers** (BG/NBD-like, Fader, Hardie & Lee 2005): each customer is acquired with a
//!   first purchase on a uniformly random day of the period; while alive they buy as a Poisson
//!   process with their own rate λ ~ Gamma(0.45, mean 1/30 per day); after each *repeat* purchase
//!   they drop out for good with their own probability p ~ Beta(1.2, 4), so many lapse. Each has
//!   three favourite categories, a mean basket size (order sizes 1-6 lines) and 20% are premium
//!   buyers.
//! - **Seasonality**: daily traffic follows a month profile (November and December peaks,
//!   January lull) and a weekday profile (Saturday busiest), via thinning of the Poisson
//!   process; category choice follows per-category month profiles (outdoor and garden in
//!   summer, toys and electronics in December, tea and coffee in winter). Times of day follow
//!   store hours (8:00-21:59, lunch and after-work peaks).
//! - **Returns**: 0.6% of orders get a return of one line 1-14 days later, written as a line
//!   with the *same order id*, negative quantity and negative amount. 8% of lines carry a
//!   10-25% promotion (amount < quantity x unit price).
//! - **Malformed rows**: `malformed_rows` extra lines, spread evenly over the period, each
//!   broken one of six ways (amount `12.3x`, impossible date `YYYY-02-30`, a missing field,
//!   quantity `two`, an empty order id, amount `N/A`). Each is an *extra* line (a corrupted copy
//!   of a real one), so dropping it loses no data.
//! - **Volume**: about 10 lines per customer over two years by default; `target_lines`
//!   rescales every purchase rate by one factor `s` (and, when `s` > 1, divides the dropout
//!   probabilities by `sqrt(s)`, since `1 + 1/p` bounds the expected purchases), found by
//!   bisection on the BG/NBD expected number of transactions `1 + (1 - exp(-λ p T)) / p` per
//!   customer, so the output has about that many lines (within a few percent; it cannot go
//!   below one order per customer, nor above about one order per customer per day).
//!
//! # Streaming
//! [`write_transactions`] writes in time order while holding only O(customers) state (a heap
//! of next-purchase times and about 50 bytes per customer: 81 MB peak for 1M customers and 10M
//! lines), so any number of lines can go to any `Write`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use chrono::{Datelike, NaiveDate};
use flow_analytics::rng::Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of customers (each buys at least once).
    pub customers: u64,
    /// Number of products in the catalog.
    pub products: u32,
    /// First day of the period.
    pub start_date: NaiveDate,
    /// Length of the period in days.
    pub days: u32,
    /// RNG seed.
    pub seed: u64,
    /// Extra malformed lines in the transactions file.
    pub malformed_rows: u32,
    /// Approximate number of transaction lines (see the module docs); `None` = natural rates.
    pub target_lines: Option<u64>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            customers: 5000,
            products: 500,
            start_date: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default(),
            days: 730,
            seed: 42,
            malformed_rows: 6,
            target_lines: None,
        }
    }
}

impl GenerateOptions {
    /// Checks the options are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.customers == 0 || self.customers > 100_000_000 {
            return Err(format!(
                "customers must be 1..=100000000, not {}",
                self.customers
            ));
        }
        if self.products == 0 || self.products > 10_000_000 {
            return Err(format!(
                "products must be 1..=10000000, not {}",
                self.products
            ));
        }
        if self.days == 0 || self.days > 36_600 {
            return Err(format!("days must be 1..=36600, not {}", self.days));
        }
        let last = self
            .start_date
            .checked_add_days(chrono::Days::new(u64::from(self.days)));
        if !(1..=9999).contains(&self.start_date.year())
            || last.is_none_or(|d| !(1..=9999).contains(&d.year()))
        {
            return Err("the period must lie within the years 1 to 9999".into());
        }
        Ok(())
    }
}

/// Counts of what [`write_transactions`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerateStats {
    /// Customers simulated.
    pub customers: u64,
    /// Orders written.
    pub orders: u64,
    /// Valid transaction lines written (sales and returns; header and malformed excluded).
    pub lines: u64,
    /// Return lines among `lines`.
    pub returns: u64,
    /// Malformed lines written.
    pub malformed: u64,
}

/// A whole generated data set in memory (for small sizes and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Transactions CSV (`order_id,customer_id,date,product_id,category,quantity,unit_price,amount`).
    pub transactions: String,
    /// Catalog CSV (`product_id,name,category,brand,price,stock`).
    pub catalog: String,
    /// Customers CSV (`customer_id,name,email,accepts_marketing`).
    pub customers: String,
    /// What the transactions contain.
    pub stats: GenerateStats,
}

/// The header of the transactions file (the `csv` format's default column names).
pub const TRANSACTIONS_HEADER: &str =
    "order_id,customer_id,date,product_id,category,quantity,unit_price,amount";

/// Generates the three files in memory.
pub fn generate(opts: &GenerateOptions) -> io::Result<Dataset> {
    let mut tx = Vec::new();
    let stats = write_transactions(opts, &mut tx)?;
    let mut catalog = Vec::new();
    write_catalog(opts, &mut catalog)?;
    let mut customers = Vec::new();
    write_customers(opts, &mut customers)?;
    let text = |v: Vec<u8>| String::from_utf8(v).map_err(|e| io::Error::other(e.to_string()));
    Ok(Dataset {
        transactions: text(tx)?,
        catalog: text(catalog)?,
        customers: text(customers)?,
        stats,
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

// ---------------------------------------------------------------------------------------------
// Categories

struct CategoryDef {
    name: &'static str,
    brands: [&'static str; 3],
    nouns: &'static [&'static str],
    variants: &'static [&'static str],
    median_price: f64,
    popularity: f64,
    season: [f64; 12],
    complements: [usize; 2],
    consumable: bool,
}

const FLAT: [f64; 12] = [1.0; 12];

const CATEGORIES: [CategoryDef; 12] = [
    CategoryDef {
        name: "Coffee",
        brands: ["Harbor Roasters", "Summit Beans", "Origin Reserve"],
        nouns: &[
            "House Blend",
            "Espresso Roast",
            "French Roast",
            "Decaf Blend",
            "Ethiopia Yirgacheffe",
            "Colombia Supremo",
            "Cold Brew Pack",
            "Breakfast Blend",
            "Sumatra Mandheling",
            "Guatemala Antigua",
        ],
        variants: &["250g", "500g", "1kg", "Whole Bean 340g", "Ground 340g"],
        median_price: 14.0,
        popularity: 1.6,
        season: [
            1.15, 1.15, 1.05, 0.95, 0.9, 0.85, 0.85, 0.85, 0.95, 1.05, 1.1, 1.15,
        ],
        complements: [2, 4],
        consumable: true,
    },
    CategoryDef {
        name: "Tea",
        brands: ["Leaf & Ladle", "Morning Mist", "Imperial Garden"],
        nouns: &[
            "Earl Grey",
            "English Breakfast",
            "Sencha",
            "Jasmine Pearls",
            "Chamomile",
            "Peppermint",
            "Rooibos",
            "Chai Spice",
            "Oolong",
            "Darjeeling",
        ],
        variants: &["20 bags", "50 bags", "100g loose", "250g loose"],
        median_price: 9.0,
        popularity: 1.1,
        season: [
            1.25, 1.2, 1.05, 0.95, 0.85, 0.8, 0.75, 0.8, 0.95, 1.1, 1.2, 1.3,
        ],
        complements: [2, 3],
        consumable: true,
    },
    CategoryDef {
        name: "Bakery",
        brands: ["Harbor Bakery", "Golden Crust", "Maison Levain"],
        nouns: &[
            "Butter Croissant",
            "Sourdough Loaf",
            "Cinnamon Roll",
            "Blueberry Muffin",
            "Bagel",
            "Banana Bread",
            "Almond Biscotti",
            "Rye Loaf",
            "Scone",
            "Pain au Chocolat",
        ],
        variants: &["single", "2-pack", "4-pack", "large"],
        median_price: 4.5,
        popularity: 1.5,
        season: FLAT,
        complements: [0, 1],
        consumable: true,
    },
    CategoryDef {
        name: "Snacks",
        brands: ["Cocoa Coast", "Crunch Co", "Artisan Bites"],
        nouns: &[
            "Dark Chocolate 70%",
            "Milk Chocolate",
            "Sea Salt Almonds",
            "Trail Mix",
            "Granola Bar",
            "Salted Caramels",
            "Pretzel Bites",
            "Dried Mango",
            "Hazelnut Praline",
            "Oat Cookies",
        ],
        variants: &["100g", "200g", "gift tin", "6-pack"],
        median_price: 5.5,
        popularity: 1.2,
        season: [
            0.9, 1.1, 0.95, 1.0, 0.9, 0.9, 0.9, 0.9, 0.95, 1.05, 1.2, 1.6,
        ],
        complements: [0, 1],
        consumable: true,
    },
    CategoryDef {
        name: "Kitchen",
        brands: ["Kiln & Co", "Steel & Spoon", "Atelier Cuisine"],
        nouns: &[
            "Ceramic Mug",
            "Pour-Over Dripper",
            "French Press",
            "Milk Frother",
            "Burr Grinder",
            "Travel Tumbler",
            "Tea Infuser",
            "Paper Filters",
            "Espresso Cups",
            "Serving Board",
        ],
        variants: &["Blue", "Green", "Charcoal", "Sand", "Large", "Small"],
        median_price: 22.0,
        popularity: 1.0,
        season: [
            0.9, 0.85, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.95, 1.0, 1.35, 1.7,
        ],
        complements: [0, 5],
        consumable: false,
    },
    CategoryDef {
        name: "Home",
        brands: ["Nest & Nook", "Hearth Home", "Linen Loft"],
        nouns: &[
            "Scented Candle",
            "Throw Blanket",
            "Linen Napkins",
            "Table Runner",
            "Vase",
            "Picture Frame",
            "Cushion Cover",
            "Reed Diffuser",
            "Storage Basket",
            "Wall Clock",
        ],
        variants: &["Cedar", "Lavender", "Ivory", "Slate", "Small", "Large"],
        median_price: 30.0,
        popularity: 0.8,
        season: [
            0.8, 0.85, 0.9, 0.95, 0.95, 0.85, 0.85, 0.9, 1.0, 1.1, 1.4, 1.8,
        ],
        complements: [4, 8],
        consumable: false,
    },
    CategoryDef {
        name: "Apparel",
        brands: ["Northwind", "Trailhead", "Alpine Luxe"],
        nouns: &[
            "Merino Socks",
            "Beanie",
            "Fleece Jacket",
            "Rain Shell",
            "Flannel Shirt",
            "Scarf",
            "Gloves",
            "Organic Tee",
            "Hoodie",
            "Sun Hat",
        ],
        variants: &["S", "M", "L", "XL"],
        median_price: 35.0,
        popularity: 0.9,
        season: [
            1.1, 0.9, 0.95, 1.0, 0.95, 0.85, 0.85, 0.95, 1.15, 1.2, 1.3, 1.5,
        ],
        complements: [7, 9],
        consumable: false,
    },
    CategoryDef {
        name: "Outdoor",
        brands: ["Trailhead Gear", "Summit Supply", "Ridge Pro"],
        nouns: &[
            "Camping Chair",
            "Water Bottle",
            "Daypack",
            "Picnic Blanket",
            "Headlamp",
            "Cooler Bag",
            "Hammock",
            "Trekking Poles",
            "Sunscreen SPF50",
            "Insect Repellent",
        ],
        variants: &["Standard", "Lite", "XL", "Family"],
        median_price: 40.0,
        popularity: 0.8,
        season: [0.45, 0.5, 0.7, 1.0, 1.4, 1.9, 2.0, 1.8, 1.1, 0.7, 0.55, 0.7],
        complements: [6, 11],
        consumable: false,
    },
    CategoryDef {
        name: "Garden",
        brands: ["Green Thumb", "Bloom & Root", "Terra Fine"],
        nouns: &[
            "Herb Seed Kit",
            "Terracotta Pot",
            "Watering Can",
            "Pruning Shears",
            "Potting Mix",
            "Garden Gloves",
            "Plant Food",
            "Raised Bed Kit",
            "Bird Feeder",
            "Seed Collection",
        ],
        variants: &["Small", "Medium", "Large", "Set of 3"],
        median_price: 18.0,
        popularity: 0.7,
        season: [0.4, 0.5, 1.0, 1.8, 2.0, 1.8, 1.4, 1.0, 0.7, 0.5, 0.4, 0.5],
        complements: [5, 7],
        consumable: false,
    },
    CategoryDef {
        name: "Beauty",
        brands: ["Pure Glow", "Botanica", "Lumiere"],
        nouns: &[
            "Hand Cream",
            "Lip Balm",
            "Face Serum",
            "Body Lotion",
            "Bath Salts",
            "Shampoo Bar",
            "Soap Trio",
            "Facial Mist",
            "Body Oil",
            "Clay Mask",
        ],
        variants: &["30ml", "50ml", "100ml", "travel size"],
        median_price: 16.0,
        popularity: 0.9,
        season: [
            0.9, 1.1, 0.95, 0.95, 1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.2, 1.6,
        ],
        complements: [6, 5],
        consumable: true,
    },
    CategoryDef {
        name: "Toys & Games",
        brands: ["Playful Pines", "Brainy Box", "Heirloom Toys"],
        nouns: &[
            "Wooden Puzzle",
            "Board Game",
            "Card Game",
            "Plush Bear",
            "Building Blocks",
            "Kite",
            "Jigsaw 1000pc",
            "Marble Run",
            "Art Set",
            "Yo-Yo",
        ],
        variants: &["Classic", "Deluxe", "Junior", "Travel"],
        median_price: 25.0,
        popularity: 0.6,
        season: [
            0.55, 0.55, 0.6, 0.65, 0.65, 0.75, 0.8, 0.8, 0.75, 0.9, 1.8, 3.2,
        ],
        complements: [11, 3],
        consumable: false,
    },
    CategoryDef {
        name: "Electronics",
        brands: ["Voltline", "Pulse Audio", "Aurora Tech"],
        nouns: &[
            "Wireless Earbuds",
            "Bluetooth Speaker",
            "Power Bank",
            "Charging Cable",
            "Smart Bulb",
            "Phone Stand",
            "Desk Lamp",
            "Headphones",
            "Batteries AA",
            "E-Reader Cover",
        ],
        variants: &["Black", "White", "Pro", "Mini"],
        median_price: 45.0,
        popularity: 0.6,
        season: [
            0.7, 0.65, 0.7, 0.7, 0.7, 0.75, 0.8, 0.9, 0.9, 0.95, 2.0, 2.4,
        ],
        complements: [10, 7],
        consumable: false,
    },
];

/// Month traffic profile (Jan..Dec) and weekday profile (Mon..Sun).
const MONTH_TRAFFIC: [f64; 12] = [
    0.78, 0.8, 0.9, 0.95, 1.0, 1.0, 0.97, 0.97, 0.95, 1.0, 1.25, 1.6,
];
const WEEKDAY_TRAFFIC: [f64; 7] = [0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.05];
/// Relative shoppers per hour from 8:00 to 21:00.
const HOURS: [f64; 14] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 9.0, 7.0, 6.0, 7.0, 9.0, 8.0, 6.0, 4.0, 2.0,
];

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Katherine",
    "Margaret",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Claude",
    "Shafi",
    "Tim",
    "Sophie",
    "Ken",
    "Joan",
    "John",
    "Mary",
    "James",
    "Elena",
    "Omar",
    "Priya",
    "Wei",
    "Yuki",
    "Carlos",
    "Fatima",
    "Lars",
    "Ingrid",
    "Mateo",
    "Aisha",
    "Noah",
    "Olivia",
    "Liam",
    "Emma",
    "Lucas",
    "Mia",
    "Hugo",
    "Chloe",
    "Ravi",
    "Anya",
    "Tomas",
    "Zara",
    "Felix",
    "Nora",
    "Kofi",
    "Lena",
    "Diego",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Johnson",
    "Hamilton",
    "Torvalds",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Shannon",
    "Goldwasser",
    "Berners-Lee",
    "Wilson",
    "Thompson",
    "Clarke",
    "McCarthy",
    "Garcia",
    "Nguyen",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Kowalski",
    "Haddad",
    "Silva",
    "Andersen",
    "Patel",
    "Kim",
    "Moreau",
    "Novak",
    "Costa",
    "Murphy",
    "Jensen",
    "Fischer",
    "Mensah",
    "Ortiz",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "inbox.example.org",
];

// ---------------------------------------------------------------------------------------------
// Catalog model

struct ProductModel {
    category: u8,
    brand: u8,
    name: String,
    price_cents: u32,
    stock: i32,
    complements: [u32; 2],
}

struct CatTable {
    products: Vec<u32>,
    cum: Vec<f64>,
    cum_premium: Vec<f64>,
}

impl CatTable {
    fn draw(&self, rng: &mut Rng, premium: bool) -> Option<u32> {
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

struct CatalogModel {
    products: Vec<ProductModel>,
    tables: Vec<CatTable>,
    /// Cumulative category popularity over the used categories.
    cat_cum: Vec<f64>,
}

impl CatalogModel {
    fn n_categories(&self) -> usize {
        self.tables.len()
    }

    fn draw_category(&self, rng: &mut Rng) -> usize {
        let total = self.cat_cum.last().copied().unwrap_or(1.0);
        let x = rng.f64() * total;
        self.cat_cum
            .partition_point(|&c| c <= x)
            .min(self.n_categories().saturating_sub(1))
    }
}

fn build_catalog(opts: &GenerateOptions) -> CatalogModel {
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

fn id_width(n: u64, min: usize) -> usize {
    let mut w = 1;
    let mut v = n;
    while v >= 10 {
        v /= 10;
        w += 1;
    }
    w.max(min)
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

// ---------------------------------------------------------------------------------------------
// Customers

/// Per-customer purchase state (32 bytes, plus 16 in the heap).
struct CustomerState {
    rng: Rng,
    lambda: f32,
    dropout: f32,
    basket: f32,
    prefs: [u8; 3],
    premium: bool,
    purchases: u32,
}

const BASE_RATE: f64 = 1.0 / 30.0;
const RATE_SHAPE: f64 = 0.45;

/// Draws a customer's parameters and acquisition time (seconds from the start).
fn new_customer(
    opts: &GenerateOptions,
    model: &CatalogModel,
    i: u64,
    hours_cum: &[f64],
) -> (CustomerState, u64) {
    let mut rng = Rng::stream(opts.seed, 1, i);
    let day = rng.below(u64::from(opts.days));
    let tod = time_of_day(&mut rng, hours_cum);
    let lambda = rng
        .gamma(RATE_SHAPE, BASE_RATE / RATE_SHAPE)
        .clamp(1e-5, 2.0);
    let dropout = rng.beta(1.2, 4.0).clamp(0.005, 0.95);
    let basket = 1.0 + rng.gamma(2.0, 0.65);
    let mut prefs = [0u8; 3];
    for slot in &mut prefs {
        *slot = model.draw_category(&mut rng) as u8;
    }
    let premium = rng.chance(0.2);
    let state = CustomerState {
        rng,
        lambda: lambda as f32,
        dropout: dropout as f32,
        basket: basket as f32,
        prefs,
        premium,
        purchases: 0,
    };
    (state, day * 86_400 + tod)
}

fn time_of_day(rng: &mut Rng, hours_cum: &[f64]) -> u64 {
    let total = hours_cum.last().copied().unwrap_or(1.0);
    let x = rng.f64() * total;
    let h = hours_cum
        .partition_point(|&c| c <= x)
        .min(hours_cum.len().saturating_sub(1)) as u64;
    (8 + h) * 3600 + rng.below(3600)
}

/// Writes the customers CSV (`customer_id,name,email,accepts_marketing`); about 12% have no
/// email and 58% accept marketing.
pub fn write_customers<W: Write>(opts: &GenerateOptions, w: W) -> io::Result<()> {
    opts.validate().map_err(invalid)?;
    let width = id_width(opts.customers, 5);
    let mut out = io::BufWriter::new(w);
    writeln!(out, "customer_id,name,email,accepts_marketing")?;
    for i in 0..opts.customers {
        let mut rng = Rng::stream(opts.seed, 2, i);
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let email = if rng.chance(0.12) {
            String::new()
        } else {
            format!(
                "{}.{}{}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                i + 1,
                rng.pick(DOMAINS)
            )
        };
        let accepts = if rng.chance(0.58) { "yes" } else { "no" };
        writeln!(out, "C{:0width$},{first} {last},{email},{accepts}", i + 1)?;
    }
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// Expected transactions of one customer: the first purchase plus the BG/NBD expected repeat
/// purchases `(1 - exp(-λ p T)) / p` over `t_days`.
fn expected_orders(lambda: f64, p: f64, t_days: f64) -> f64 {
    1.0 + (1.0 - (-lambda * p * t_days).exp()) / p
}

/// Expected lines of an order with basket mean `mu`: `min(6, 1 + Poisson(mu - 1))`.
fn expected_lines(mu: f64) -> f64 {
    let m = (mu - 1.0).max(0.0);
    let mut pj = (-m).exp();
    let mut e = 0.0;
    let mut below = 0.0;
    for j in 0..5 {
        e += (1.0 + j as f64) * pj;
        below += pj;
        pj *= m / (j as f64 + 1.0);
    }
    e + 6.0 * (1.0 - below).max(0.0)
}

/// The rate scale giving about `target` lines.
fn calibrate(target: f64, params: &[(f64, f64, f64, f64)]) -> f64 {
    // At most one purchase a day is simulated, so a daily rate λ acts like 1 - exp(-λ).
    let total = |s: f64| -> f64 {
        params
            .iter()
            .map(|&(l, p, t, e)| {
                e * expected_orders(1.0 - (-(l * s).min(2.0)).exp(), scaled_dropout(p, s), t)
            })
            .sum()
    };
    let (mut lo, mut hi) = (-12.0f64, 8.0f64);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if total(mid.exp()) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// Dropout probability under a rate scale: scaling up also makes customers stay longer (else
/// the expected number of purchases is bounded by `1 + 1/p` whatever the rate).
fn scaled_dropout(p: f64, scale: f64) -> f64 {
    if scale > 1.0 {
        (p / scale.sqrt()).max(0.0005)
    } else {
        p
    }
}

struct Day {
    text: [u8; 11],
    month: usize,
    factor: f64,
}

struct ReturnEvent {
    order: u64,
    customer: u32,
    product: u32,
    unit_cents: i64,
}

struct Writer<'a, W: Write> {
    out: W,
    buf: Vec<u8>,
    cust_width: usize,
    prod_width: usize,
    model: &'a CatalogModel,
}

impl<W: Write> Writer<'_, W> {
    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        order: u64,
        customer: u32,
        day: &Day,
        tod: u64,
        product: u32,
        qty: i64,
        unit_cents: i64,
        amount_cents: i64,
    ) {
        let b = &mut self.buf;
        b.push(b'O');
        push_padded(b, order, 8);
        b.extend_from_slice(b",C");
        push_padded(b, u64::from(customer) + 1, self.cust_width);
        b.push(b',');
        b.extend_from_slice(&day.text);
        push_padded(b, tod / 3600, 2);
        b.push(b':');
        push_padded(b, (tod / 60) % 60, 2);
        b.push(b':');
        push_padded(b, tod % 60, 2);
        b.extend_from_slice(b",P");
        push_padded(b, u64::from(product) + 1, self.prod_width);
        b.push(b',');
        let cat = self
            .model
            .products
            .get(product as usize)
            .map_or(0, |p| p.category as usize);
        push_field(b, CATEGORIES[cat].name);
        b.push(b',');
        push_int(b, qty);
        b.push(b',');
        push_cents(b, unit_cents);
        b.push(b',');
        push_cents(b, amount_cents);
        b.push(b'\n');
    }
}

fn push_padded(b: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut x = v;
    loop {
        digits[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    for _ in n..width {
        b.push(b'0');
    }
    b.extend(digits[..n].iter().rev());
}

fn push_int(b: &mut Vec<u8>, v: i64) {
    if v < 0 {
        b.push(b'-');
    }
    push_padded(b, v.unsigned_abs(), 1);
}

fn push_cents(b: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        b.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_padded(b, c / 100, 1);
    b.push(b'.');
    push_padded(b, c % 100, 2);
}

fn push_field(b: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"']) {
        b.push(b'"');
        b.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
}

/// Writes the transactions CSV in time order, streaming (see the module docs).
pub fn write_transactions<W: Write>(opts: &GenerateOptions, w: W) -> io::Result<GenerateStats> {
    opts.validate().map_err(invalid)?;
    let model = build_catalog(opts);
    let days_n = opts.days as usize;
    let end = u64::from(opts.days) * 86_400;

    // Day table: date text, month, traffic factor normalized to mean 1 over the period.
    let mut days = Vec::with_capacity(days_n);
    let mut date = opts.start_date;
    for _ in 0..days_n {
        let mut text = [b' '; 11];
        let s = date.format("%Y-%m-%d").to_string();
        for (slot, byte) in text.iter_mut().zip(s.bytes()) {
            *slot = byte;
        }
        let month = date.month0() as usize;
        let weekday = date.weekday().num_days_from_monday() as usize;
        days.push(Day {
            text,
            month,
            factor: MONTH_TRAFFIC[month] * WEEKDAY_TRAFFIC[weekday],
        });
        date = date.succ_opt().unwrap_or(date);
    }
    let mean_factor = days.iter().map(|d| d.factor).sum::<f64>() / days_n as f64;
    for d in &mut days {
        d.factor /= mean_factor;
    }
    let max_factor = days.iter().map(|d| d.factor).fold(0.0, f64::max);
    let season_max: Vec<f64> = (0..12)
        .map(|m| {
            CATEGORIES[..model.n_categories()]
                .iter()
                .map(|c| c.season[m])
                .fold(0.0, f64::max)
        })
        .collect();
    let mut hours_cum = Vec::with_capacity(HOURS.len());
    let mut acc = 0.0;
    for h in HOURS {
        acc += h;
        hours_cum.push(acc);
    }

    // Customers and their first purchases.
    let n_cust = opts.customers as usize;
    let mut customers = Vec::with_capacity(n_cust);
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::with_capacity(n_cust);
    let mut calib = Vec::new();
    // Mean traffic factor from each day to the end: a customer acquired in November sees
    // mostly peak season, which the calibration must account for.
    let mut mean_from = vec![1.0; days_n];
    let mut acc_f = 0.0;
    for d in (0..days_n).rev() {
        acc_f += days[d].factor;
        mean_from[d] = acc_f / (days_n - d) as f64;
    }
    for i in 0..opts.customers {
        let (state, first) = new_customer(opts, &model, i, &hours_cum);
        if opts.target_lines.is_some() {
            let t_days = (end.saturating_sub(first)) as f64 / 86_400.0;
            let season = mean_from
                .get((first / 86_400) as usize)
                .copied()
                .unwrap_or(1.0);
            calib.push((
                f64::from(state.lambda) * season,
                f64::from(state.dropout),
                t_days,
                expected_lines(f64::from(state.basket)),
            ));
        }
        customers.push(state);
        heap.push(Reverse((first, i as u32)));
    }
    if let Some(target) = opts.target_lines {
        let scale = calibrate(target as f64, &calib);
        for c in &mut customers {
            c.lambda = (f64::from(c.lambda) * scale).min(2.0) as f32;
            c.dropout = scaled_dropout(f64::from(c.dropout), scale) as f32;
        }
        drop(calib);
    }

    let mut writer = Writer {
        out: w,
        buf: Vec::with_capacity(1 << 17),
        cust_width: id_width(opts.customers, 5),
        prod_width: id_width(u64::from(opts.products), 4),
        model: &model,
    };
    writer.buf.extend_from_slice(TRANSACTIONS_HEADER.as_bytes());
    writer.buf.push(b'\n');

    let mut stats = GenerateStats {
        customers: opts.customers,
        ..GenerateStats::default()
    };
    let mut returns: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut return_events: Vec<ReturnEvent> = Vec::new();
    let malformed_total = u64::from(opts.malformed_rows);
    let malformed_at = |k: u64| -> u64 {
        let at =
            (2 * u128::from(k) + 1) * u128::from(end) / (2 * u128::from(malformed_total.max(1)));
        u64::try_from(at).unwrap_or(u64::MAX)
    };
    let mut basket: Vec<(u32, i64)> = Vec::with_capacity(8);

    loop {
        let next_purchase = heap.peek().map(|Reverse((t, _))| *t).filter(|&t| t < end);
        let next_return = returns
            .peek()
            .map(|Reverse((t, _))| *t)
            .filter(|&t| t < end);
        let now = match (next_purchase, next_return) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        let day_idx = (now / 86_400) as usize;
        let tod = now % 86_400;
        let Some(day) = days.get(day_idx) else { break };

        if next_return == Some(now) && next_purchase.is_none_or(|t| t > now) {
            let Some(Reverse((_, idx))) = returns.pop() else {
                break;
            };
            if let Some(ev) = return_events.get(idx as usize) {
                writer.line(
                    ev.order,
                    ev.customer,
                    day,
                    tod,
                    ev.product,
                    -1,
                    ev.unit_cents,
                    -ev.unit_cents,
                );
                stats.lines += 1;
                stats.returns += 1;
            }
            writer.flush_if_full()?;
            continue;
        }
        let Some(Reverse((_, ci))) = heap.pop() else {
            break;
        };
        let Some(state) = customers.get_mut(ci as usize) else {
            continue;
        };
        stats.orders += 1;
        let order = stats.orders;
        state.purchases += 1;

        // Basket: k distinct products.
        let rng = &mut state.rng;
        let k = (1 + rng.poisson((f64::from(state.basket) - 1.0).max(0.0))).min(6) as usize;
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
                let in_season =
                    rng.f64() * season_max[day.month] < CATEGORIES[cat].season[day.month];
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
                        state.prefs[0] as usize
                    } else if u < 0.65 {
                        state.prefs[1] as usize
                    } else if u < 0.8 {
                        state.prefs[2] as usize
                    } else {
                        model.draw_category(rng)
                    };
                    if rng.f64() * season_max[day.month] < CATEGORIES[cat].season[day.month] {
                        break;
                    }
                }
                match model
                    .tables
                    .get(cat)
                    .and_then(|t| t.draw(rng, state.premium))
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

        // Malformed lines due before this order.
        while stats.malformed < malformed_total && malformed_at(stats.malformed) <= now {
            if let Some(&(product, qty)) = basket.first() {
                let kind = stats.malformed % 6;
                write_malformed(&mut writer, kind, order, ci, day, tod, product, qty);
                stats.malformed += 1;
            } else {
                break;
            }
        }

        for &(product, qty) in &basket {
            let unit = model
                .products
                .get(product as usize)
                .map_or(99, |p| i64::from(p.price_cents));
            let mut amount = unit * qty;
            if rng.chance(0.08) {
                let pct = 10 + rng.below(16) as i64;
                amount = amount * (100 - pct) / 100;
            }
            writer.line(order, ci, day, tod, product, qty, unit, amount);
            stats.lines += 1;
        }
        if !basket.is_empty() && rng.chance(0.006) {
            let (product, qty) = basket[rng.below(basket.len() as u64) as usize];
            let unit = model
                .products
                .get(product as usize)
                .map_or(99, |p| i64::from(p.price_cents));
            let later = now - tod + (1 + rng.below(14)) * 86_400 + time_of_day(rng, &hours_cum);
            if later < end && qty > 0 {
                return_events.push(ReturnEvent {
                    order,
                    customer: ci,
                    product,
                    unit_cents: unit,
                });
                returns.push(Reverse((later, return_events.len() as u64 - 1)));
            }
        }
        writer.flush_if_full()?;

        // Next purchase: drop out after a repeat purchase with probability p; else the next
        // arrival of a Poisson process thinned by the day factor; never twice the same day.
        if state.purchases > 1 && rng.chance(f64::from(state.dropout)) {
            continue;
        }
        let rate = f64::from(state.lambda) * max_factor / 86_400.0;
        let mut t = now as f64;
        let next = loop {
            t += rng.exp(rate);
            if t >= end as f64 {
                break None;
            }
            let d = (t / 86_400.0) as usize;
            let Some(day) = days.get(d) else { break None };
            if rng.f64() * max_factor < day.factor {
                break Some(d as u64);
            }
        };
        if let Some(d) = next {
            // Never twice the same day (and never back in time).
            let d = d.max(day_idx as u64 + 1);
            let t = d * 86_400 + time_of_day(rng, &hours_cum);
            if t < end {
                heap.push(Reverse((t, ci)));
            }
        }
    }
    // Malformed lines not yet due (a period with few orders at its end).
    while stats.malformed < malformed_total {
        let day = days.last().map_or_else(
            || Day {
                text: *b"2000-01-01 ",
                month: 0,
                factor: 1.0,
            },
            |d| Day {
                text: d.text,
                month: d.month,
                factor: d.factor,
            },
        );
        let kind = stats.malformed % 6;
        write_malformed(
            &mut writer,
            kind,
            stats.orders + 1,
            0,
            &day,
            20 * 3600,
            0,
            1,
        );
        stats.malformed += 1;
    }
    writer.out.write_all(&writer.buf)?;
    writer.out.flush()?;
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn write_malformed<W: Write>(
    w: &mut Writer<W>,
    kind: u64,
    order: u64,
    customer: u32,
    day: &Day,
    tod: u64,
    product: u32,
    qty: i64,
) {
    let start = w.buf.len();
    let unit = w
        .model
        .products
        .get(product as usize)
        .map_or(99, |p| i64::from(p.price_cents));
    w.line(order, customer, day, tod, product, qty, unit, unit * qty);
    let mut line: Vec<u8> = w.buf.split_off(start);
    line.pop(); // newline
    let mut fields: Vec<Vec<u8>> = line.split(|&b| b == b',').map(<[u8]>::to_vec).collect();
    // The category may be quoted with a comma inside; the tests' categories have none.
    let last = fields.len().saturating_sub(1);
    match kind {
        0 => fields[last] = b"12.3x".to_vec(),
        1 => {
            if let Some(f) = fields.get_mut(2) {
                let year: Vec<u8> = f.iter().take(4).copied().collect();
                let mut v = year;
                v.extend_from_slice(b"-02-30 12:00:00");
                *f = v;
            }
        }
        2 => {
            if fields.len() > 4 {
                fields.remove(4);
            }
        }
        3 => {
            if let Some(f) = fields.get_mut(5) {
                *f = b"two".to_vec();
            }
        }
        4 => fields[0] = Vec::new(),
        _ => fields[last] = b"N/A".to_vec(),
    }
    w.buf.extend_from_slice(&fields.join(&b','));
    w.buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::super::catalog::{CatalogOptions, parse_catalog};
    use super::super::csv_mapped::{CsvOptions, parse_with};
    use super::super::customers::{CustomersOptions, parse_customers};
    use super::super::model::LineItem;
    use super::*;

    fn small() -> GenerateOptions {
        GenerateOptions {
            customers: 400,
            products: 120,
            seed: 7,
            ..GenerateOptions::default()
        }
    }

    fn items(text: &str) -> (Vec<LineItem>, super::super::model::ParseReport) {
        let mut items = Vec::new();
        let out = parse_with(text.as_bytes(), &CsvOptions::default(), &mut |i| {
            items.push(i.clone())
        })
        .unwrap();
        (items, out.report)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(&small()).unwrap();
        let b = generate(&small()).unwrap();
        assert_eq!(a, b);
        let c = generate(&GenerateOptions { seed: 8, ..small() }).unwrap();
        assert_ne!(a.transactions, c.transactions);
        assert_ne!(a.catalog, c.catalog);
        assert_ne!(a.customers, c.customers);
    }

    #[test]
    fn streaming_matches_in_memory_and_small_writes() {
        struct Chunky(Vec<u8>);
        impl Write for Chunky {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(7);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Chunky(Vec::new());
        let stats = write_transactions(&small(), &mut sink).unwrap();
        let whole = generate(&small()).unwrap();
        assert_eq!(String::from_utf8(sink.0).unwrap(), whole.transactions);
        assert_eq!(stats, whole.stats);
    }

    #[test]
    fn output_parses_with_exactly_the_malformed_rows_bad() {
        let opts = GenerateOptions {
            malformed_rows: 12,
            ..small()
        };
        let data = generate(&opts).unwrap();
        let (items, report) = items(&data.transactions);
        assert_eq!(report.bad_row_count, 12, "{:?}", report.bad_rows);
        assert_eq!(report.rows_without_customer, 0);
        assert_eq!(items.len() as u64, data.stats.lines);
        assert_eq!(data.stats.malformed, 12);
        // All six kinds of damage show up.
        let reasons: Vec<String> = report.bad_rows.iter().map(|b| b.reason.clone()).collect();
        for needle in [
            "12.3x",
            "-02-30",
            "fields but the header",
            "`two`",
            "order_id`: empty",
            "N/A",
        ] {
            assert!(
                reasons.iter().any(|r| r.contains(needle)),
                "{needle}: {reasons:?}"
            );
        }
        // Catalog and customers parse cleanly and cover every id.
        let catalog = parse_catalog(data.catalog.as_bytes(), &CatalogOptions::default()).unwrap();
        assert_eq!(catalog.report.bad_row_count, 0);
        assert_eq!(catalog.products.len(), 120);
        let customers =
            parse_customers(data.customers.as_bytes(), &CustomersOptions::default()).unwrap();
        assert_eq!(customers.report.bad_row_count, 0);
        assert_eq!(customers.customers.len(), 400);
        let pids: HashSet<&str> = catalog
            .products
            .iter()
            .map(|p| p.product_id.as_str())
            .collect();
        let cids: HashSet<&str> = customers
            .customers
            .iter()
            .map(|c| c.customer_id.as_str())
            .collect();
        assert!(items.iter().all(|i| pids.contains(i.product_id.as_str())));
        assert!(items.iter().all(|i| cids.contains(i.customer_id.as_str())));
        // Every customer bought at least once; items are in time order and inside the period.
        let buyers: HashSet<&str> = items.iter().map(|i| i.customer_id.as_str()).collect();
        assert_eq!(buyers.len(), 400);
        assert!(items.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let first = opts.start_date.and_hms_opt(0, 0, 0).unwrap();
        let last = first + chrono::Duration::days(i64::from(opts.days));
        assert!(
            items
                .iter()
                .all(|i| i.timestamp >= first && i.timestamp < last)
        );
        // Categories in the transactions match the catalog.
        let cat_of: HashMap<&str, &str> = catalog
            .products
            .iter()
            .map(|p| (p.product_id.as_str(), p.category.as_deref().unwrap_or("")))
            .collect();
        assert!(
            items
                .iter()
                .all(|i| i.category.as_deref() == cat_of.get(i.product_id.as_str()).copied())
        );
    }

    /// Statistics of a mid-sized data set shared by the realism tests.
    fn realistic() -> (Dataset, Vec<LineItem>) {
        let opts = GenerateOptions {
            customers: 3000,
            products: 400,
            seed: 11,
            malformed_rows: 0,
            ..GenerateOptions::default()
        };
        let data = generate(&opts).unwrap();
        let (items, report) = items(&data.transactions);
        assert_eq!(report.bad_row_count, 0);
        (data, items)
    }

    #[test]
    fn realism_orders_baskets_returns_and_promotions() {
        let (data, items) = realistic();
        let mut orders: HashMap<&str, Vec<&LineItem>> = HashMap::new();
        for i in items.iter().filter(|i| i.quantity > 0.0) {
            orders.entry(i.order_id.as_str()).or_default().push(i);
        }
        assert_eq!(orders.len() as u64, data.stats.orders);
        assert!(orders.values().all(|o| (1..=6).contains(&o.len())));
        let mean = items.iter().filter(|i| i.quantity > 0.0).count() as f64 / orders.len() as f64;
        assert!((1.8..=3.2).contains(&mean), "mean basket {mean}");
        assert!(orders.values().any(|o| o.len() == 6));
        // Lines per customer around 10 by default.
        let per_customer = data.stats.lines as f64 / 3000.0;
        assert!((6.0..=16.0).contains(&per_customer), "{per_customer}");
        // Returns are negative and reuse a sold order id.
        let returns: Vec<&LineItem> = items.iter().filter(|i| i.amount < 0.0).collect();
        assert_eq!(returns.len() as u64, data.stats.returns);
        assert!(!returns.is_empty());
        assert!(
            returns
                .iter()
                .all(|r| r.quantity < 0.0 && orders.contains_key(r.order_id.as_str()))
        );
        // Promotions: some amounts below quantity x unit price, none above.
        let promo = items
            .iter()
            .filter(|i| {
                i.amount > 0.0 && i.amount < i.quantity * i.unit_price.unwrap_or(0.0) - 1e-9
            })
            .count();
        let share = promo as f64 / items.len() as f64;
        assert!((0.04..=0.12).contains(&share), "promo share {share}");
        assert!(
            items
                .iter()
                .all(|i| i.amount <= i.quantity.max(0.0) * i.unit_price.unwrap_or(0.0) + 1e-9)
        );
    }

    #[test]
    fn realism_heterogeneous_customers_who_lapse() {
        let (_, items) = realistic();
        let mut by_customer: HashMap<
            &str,
            (HashSet<&str>, chrono::NaiveDateTime, chrono::NaiveDateTime),
        > = HashMap::new();
        for i in items.iter().filter(|i| i.quantity > 0.0) {
            let e = by_customer.entry(i.customer_id.as_str()).or_insert((
                HashSet::new(),
                i.timestamp,
                i.timestamp,
            ));
            e.0.insert(i.order_id.as_str());
            e.1 = e.1.min(i.timestamp);
            e.2 = e.2.max(i.timestamp);
        }
        let n = by_customer.len() as f64;
        let one_timers = by_customer.values().filter(|c| c.0.len() == 1).count() as f64 / n;
        let heavy = by_customer.values().filter(|c| c.0.len() >= 10).count() as f64 / n;
        assert!(
            one_timers > 0.2 && one_timers < 0.6,
            "one-time buyers {one_timers}"
        );
        assert!(heavy > 0.03, "heavy buyers {heavy}");
        // Lapsed: acquired in the first year, bought again, but nothing in the last 180 days.
        let end = NaiveDate::from_ymd_opt(2025, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let early: Vec<_> = by_customer
            .values()
            .filter(|c| c.0.len() >= 2 && (end - c.1).num_days() > 365)
            .collect();
        let lapsed = early
            .iter()
            .filter(|c| (end - c.2).num_days() > 180)
            .count() as f64
            / early.len() as f64;
        assert!(lapsed > 0.15 && lapsed < 0.9, "lapsed share {lapsed}");
    }

    #[test]
    fn realism_popularity_seasonality_and_co_purchase() {
        let (data, items) = realistic();
        let sales: Vec<&LineItem> = items.iter().filter(|i| i.quantity > 0.0).collect();
        // Zipf-like popularity: the top 10% of products take well over 10% of the lines.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for i in &sales {
            *counts.entry(i.product_id.as_str()).or_default() += 1;
        }
        let mut c: Vec<usize> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = c.iter().take(40).sum();
        let share = top as f64 / sales.len() as f64;
        assert!(share > 0.35, "top-10% share {share}");
        // December is busier than February (per day).
        let per_day = |m: u32| {
            let n = sales.iter().filter(|i| i.timestamp.month() == m).count() as f64;
            n / if m == 2 { 28.5 } else { 31.0 }
        };
        assert!(
            per_day(12) > 1.4 * per_day(2),
            "dec {} feb {}",
            per_day(12),
            per_day(2)
        );
        // Outdoor sells in summer; toys in December.
        let share_in = |cat: &str, months: &[u32]| {
            let in_months: Vec<&&LineItem> = sales
                .iter()
                .filter(|i| months.contains(&i.timestamp.month()))
                .collect();
            in_months
                .iter()
                .filter(|i| i.category.as_deref() == Some(cat))
                .count() as f64
                / in_months.len() as f64
        };
        assert!(share_in("Outdoor", &[6, 7, 8]) > 2.0 * share_in("Outdoor", &[12, 1, 2]));
        assert!(share_in("Toys & Games", &[12]) > 2.0 * share_in("Toys & Games", &[3, 4, 5]));
        // Complements are bought together: lift of (product, complement) pairs well above 1.
        let model = build_catalog(&GenerateOptions {
            customers: 3000,
            products: 400,
            seed: 11,
            ..GenerateOptions::default()
        });
        let mut order_sets: HashMap<&str, HashSet<&str>> = HashMap::new();
        for i in &sales {
            order_sets
                .entry(i.order_id.as_str())
                .or_default()
                .insert(i.product_id.as_str());
        }
        let n_orders = order_sets.len() as f64;
        let mut top_products: Vec<(&str, usize)> = counts.iter().map(|(k, v)| (*k, *v)).collect();
        top_products.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut lifts = Vec::new();
        for (pid, n_a) in top_products.iter().take(20) {
            let idx: usize = pid[1..].parse::<usize>().unwrap() - 1;
            for comp in model.products[idx].complements {
                let cid = format!("P{:04}", comp + 1);
                let n_b = counts.get(cid.as_str()).copied().unwrap_or(0);
                let both = order_sets
                    .values()
                    .filter(|s| s.contains(pid) && s.contains(cid.as_str()))
                    .count();
                if n_b > 0 && both > 0 {
                    lifts.push(both as f64 * n_orders / (*n_a as f64 * n_b as f64));
                }
            }
        }
        lifts.sort_by(f64::total_cmp);
        let median = lifts[lifts.len() / 2];
        assert!(
            median > 3.0,
            "median complement lift {median} over {} pairs",
            lifts.len()
        );
        assert!(data.stats.orders > 0);
    }

    #[test]
    fn catalog_and_customer_files_are_realistic() {
        let opts = GenerateOptions {
            customers: 2000,
            products: 600,
            ..GenerateOptions::default()
        };
        let data = generate(&GenerateOptions {
            target_lines: Some(1000),
            ..opts.clone()
        })
        .unwrap();
        let catalog = parse_catalog(data.catalog.as_bytes(), &CatalogOptions::default()).unwrap();
        let out_of_stock = catalog.products.iter().filter(|p| !p.in_stock()).count() as f64 / 600.0;
        assert!((0.03..=0.12).contains(&out_of_stock), "{out_of_stock}");
        let cats: HashSet<&str> = catalog
            .products
            .iter()
            .filter_map(|p| p.category.as_deref())
            .collect();
        assert_eq!(cats.len(), 12);
        assert!(
            catalog
                .products
                .iter()
                .all(|p| p.price.is_some_and(|x| x > 0.5))
        );
        let customers =
            parse_customers(data.customers.as_bytes(), &CustomersOptions::default()).unwrap();
        let no_email = customers
            .customers
            .iter()
            .filter(|c| c.email.is_none())
            .count() as f64
            / 2000.0;
        let accepts = customers
            .customers
            .iter()
            .filter(|c| c.accepts_marketing == Some(true))
            .count() as f64
            / 2000.0;
        assert!((0.07..=0.17).contains(&no_email), "{no_email}");
        assert!((0.5..=0.66).contains(&accepts), "{accepts}");
        // Few products: categories are still all usable.
        let tiny = generate(&GenerateOptions {
            customers: 20,
            products: 3,
            ..GenerateOptions::default()
        })
        .unwrap();
        let (items, report) = items(&tiny.transactions);
        assert_eq!(report.bad_row_count, 6);
        assert!(!items.is_empty());
    }

    #[test]
    fn target_lines_is_approximately_met() {
        for target in [5_000u64, 40_000] {
            let opts = GenerateOptions {
                customers: 1000,
                products: 200,
                target_lines: Some(target),
                malformed_rows: 0,
                ..GenerateOptions::default()
            };
            let mut sink = io::sink();
            let stats = write_transactions(&opts, &mut sink).unwrap();
            let ratio = stats.lines as f64 / target as f64;
            assert!(
                (0.9..=1.1).contains(&ratio),
                "target {target}: {} lines",
                stats.lines
            );
        }
        // Below one order per customer the minimum is what you get.
        let opts = GenerateOptions {
            customers: 1000,
            target_lines: Some(10),
            ..GenerateOptions::default()
        };
        let stats = write_transactions(&opts, io::sink()).unwrap();
        assert!(
            stats.orders >= 1000 && stats.orders < 1100,
            "{}",
            stats.orders
        );
    }

    #[test]
    fn invalid_options_are_errors_not_panics() {
        for opts in [
            GenerateOptions {
                customers: 0,
                ..GenerateOptions::default()
            },
            GenerateOptions {
                products: 0,
                ..GenerateOptions::default()
            },
            GenerateOptions {
                days: 0,
                ..GenerateOptions::default()
            },
            GenerateOptions {
                start_date: NaiveDate::MAX,
                ..GenerateOptions::default()
            },
            GenerateOptions {
                start_date: NaiveDate::from_ymd_opt(9999, 12, 1).unwrap(),
                ..GenerateOptions::default()
            },
        ] {
            let err = generate(&opts).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
        // One day, one customer, one product works.
        let one = GenerateOptions {
            customers: 1,
            products: 1,
            days: 1,
            malformed_rows: 2,
            ..GenerateOptions::default()
        };
        let data = generate(&one).unwrap();
        let (items, report) = items(&data.transactions);
        assert_eq!(report.bad_row_count, 2);
        assert!(!items.is_empty());
    }

    #[test]
    fn rng_distributions_have_the_right_moments() {
        let mut rng = Rng::stream(1, 2, 3);
        let n = 200_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        let g = mean(&mut || rng.gamma(0.9, 2.0));
        assert!((g - 1.8).abs() < 0.03, "gamma mean {g}");
        let g = mean(&mut || rng.gamma(3.0, 0.5));
        assert!((g - 1.5).abs() < 0.02, "gamma mean {g}");
        let b = mean(&mut || rng.beta(1.2, 4.0));
        assert!((b - 1.2 / 5.2).abs() < 0.005, "beta mean {b}");
        let e = mean(&mut || rng.exp(4.0));
        assert!((e - 0.25).abs() < 0.005, "exp mean {e}");
        let p = mean(&mut || f64::from(rng.poisson(1.5)));
        assert!((p - 1.5).abs() < 0.02, "poisson mean {p}");
        let z = mean(&mut || rng.normal());
        assert!(z.abs() < 0.01, "normal mean {z}");
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }

    #[test]
    fn expected_lines_matches_simulation() {
        let mut rng = Rng::stream(5, 5, 5);
        for mu in [1.0, 1.7, 2.6, 4.0] {
            let n = 100_000;
            let sim = (0..n)
                .map(|_| (1 + rng.poisson(mu - 1.0)).min(6) as f64)
                .sum::<f64>()
                / n as f64;
            assert!(
                (sim - expected_lines(mu)).abs() < 0.02,
                "mu {mu}: {sim} vs {}",
                expected_lines(mu)
            );
        }
    }
}
