//! Product catalog CSV: product id, name, category, price, stock (column names mappable).
//!
//! Decisions:
//! - `product_id` is required; `name`, `category`, `price`, `stock` are used when present (or
//!   must exist when mapped explicitly), like the optional columns of [`super::csv_mapped`].
//! - A repeated product id is a bad row ("duplicate product id `P1` (first at line 3)"), counted
//!   in `duplicates` too; the first occurrence wins.
//! - `price` goes through [`super::money`]; a negative price is a bad row. `stock` must be a
//!   whole number (`12`, `12.0`, `1,200`); negative stock (oversold) is kept and means out of
//!   stock. An empty stock is unknown, which [`Product::in_stock`] treats as available.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::model::{BadRow, ParseReport, PosError};
use super::money::{DecimalSeparator, parse_money, parse_number};
use super::table::{Delimiter, Row, TableReader};

/// Which header column holds what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogColumns {
    /// Product id (required). Default `product_id`.
    pub product_id: String,
    /// Product name. Default: `name` if present.
    pub name: Option<String>,
    /// Category. Default: `category` if present.
    pub category: Option<String>,
    /// Unit price. Default: `price` if present.
    pub price: Option<String>,
    /// Units in stock. Default: `stock` if present.
    pub stock: Option<String>,
}

impl Default for CatalogColumns {
    fn default() -> Self {
        CatalogColumns {
            product_id: "product_id".into(),
            name: None,
            category: None,
            price: None,
            stock: None,
        }
    }
}

/// Options of the catalog file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogOptions {
    /// The column mapping.
    pub columns: CatalogColumns,
    /// Field separator (default `,`).
    pub delimiter: Delimiter,
    /// Decimal separator of prices (default `.`).
    pub decimal: DecimalSeparator,
}

/// One catalog product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// 1-based line in the catalog file.
    pub line: u64,
    /// The key line items refer to.
    pub product_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Current unit price.
    pub price: Option<f64>,
    /// Units in stock; `None` when unknown.
    pub stock: Option<i64>,
}

impl Product {
    /// Whether the product can be recommended: stock unknown or above zero.
    pub fn in_stock(&self) -> bool {
        self.stock.is_none_or(|s| s > 0)
    }
}

/// A parsed catalog.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// Products in file order, without duplicates.
    pub products: Vec<Product>,
    /// Counts and bad rows (`items` = products kept).
    pub report: ParseReport,
}

impl Catalog {
    /// Product index by id.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.product_id.as_str(), i))
            .collect()
    }
}

/// Parses a catalog CSV.
pub fn parse_catalog<R: Read>(reader: R, opts: &CatalogOptions) -> Result<Catalog, PosError> {
    let mut table = TableReader::new(reader, opts.delimiter)?;
    let m = &opts.columns;
    let mut c = table.columns();
    let id_col = c.require(&m.product_id, "product id");
    let name_col = c.optional(m.name.as_deref(), "name", "product name");
    let cat_col = c.optional(m.category.as_deref(), "category", "category");
    let price_col = c.optional(m.price.as_deref(), "price", "price");
    let stock_col = c.optional(m.stock.as_deref(), "stock", "stock");
    c.finish()?;
    let header = table.header().to_vec();
    let col = |i: usize| header.get(i).map_or("?", String::as_str);
    let mut report = ParseReport::default();
    let mut products = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Some(row) = table.next_row(&mut report)? {
        let line = row.line;
        let parsed = (|| -> Result<Product, BadRow> {
            let id = row.get(id_col);
            if id.is_empty() {
                return Err(BadRow::in_column(line, col(id_col), "empty"));
            }
            let price = match price_col.and_then(|i| row.opt(Some(i)).map(|v| (i, v))) {
                Some((i, v)) => {
                    let p = parse_money(v, opts.decimal)
                        .map_err(|e| BadRow::in_column(line, col(i), e))?
                        .value;
                    if p < 0.0 {
                        return Err(BadRow::in_column(
                            line,
                            col(i),
                            format!("`{v}` is negative"),
                        ));
                    }
                    Some(p)
                }
                None => None,
            };
            let stock = match stock_col.and_then(|i| row.opt(Some(i)).map(|v| (i, v))) {
                Some((i, v)) => Some(whole(&row, v, opts.decimal, col(i))?),
                None => None,
            };
            Ok(Product {
                line,
                product_id: id.to_string(),
                name: row.opt(name_col).map(str::to_string),
                category: row.opt(cat_col).map(str::to_string),
                price,
                stock,
            })
        })();
        match parsed {
            Ok(p) => {
                if let Some(first) = seen.get(&p.product_id) {
                    report.duplicates += 1;
                    report.push_bad(BadRow::in_column(
                        line,
                        col(id_col),
                        format!(
                            "duplicate product id `{}` (first at line {first})",
                            p.product_id
                        ),
                    ));
                    continue;
                }
                seen.insert(p.product_id.clone(), line);
                report.items += 1;
                products.push(p);
            }
            Err(bad) => report.push_bad(bad),
        }
    }
    Ok(Catalog { products, report })
}

fn whole(row: &Row, v: &str, decimal: DecimalSeparator, name: &str) -> Result<i64, BadRow> {
    let n = parse_number(v, decimal).map_err(|e| BadRow::in_column(row.line, name, e))?;
    if n.fract() != 0.0 || n.abs() > 9.0e15 {
        return Err(BadRow::in_column(
            row.line,
            name,
            format!("`{v}` is not a whole number"),
        ));
    }
    Ok(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/catalog.csv");

    #[test]
    fn fixture_products_duplicates_and_bad_rows() {
        let c = parse_catalog(FIXTURE.as_bytes(), &CatalogOptions::default()).unwrap();
        let reasons: Vec<String> = c.report.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 6: column `price`: `4,5O` is not a number (unexpected `O`)",
                "line 9: column `product_id`: duplicate product id `P022` (first at line 3)",
                "line 11: column `stock`: `2.5` is not a whole number",
                "line 14: column `product_id`: empty",
                "line 15: column `price`: `-3.00` is negative",
            ]
        );
        assert_eq!(c.report.duplicates, 1);
        assert_eq!(c.report.rows_read, 16);
        assert_eq!(c.products.len(), 11);
        assert_eq!(c.report.items, 11);
        let idx = c.index();
        let p = &c.products[idx["P010"]];
        assert_eq!(p.name.as_deref(), Some("House Blend Beans 1kg"));
        assert_eq!(p.category.as_deref(), Some("Coffee"));
        assert_eq!((p.price, p.stock), (Some(32.0), Some(40)));
        assert!(p.in_stock());
        // The duplicate did not replace the first P022.
        assert_eq!(c.products[idx["P022"]].line, 3);
        assert_eq!(c.products[idx["P022"]].price, Some(3.25));
        // Quoted name with a comma, grouped price, `$` price.
        assert_eq!(
            c.products[idx["P070"]].name.as_deref(),
            Some("Planter, Large")
        );
        assert_eq!(c.products[idx["P070"]].price, Some(1299.0));
        assert_eq!(c.products[idx["P100"]].price, Some(18.0));
        // Zero, negative and unknown stock.
        assert!(!c.products[idx["P031"]].in_stock());
        assert!(!c.products[idx["P060"]].in_stock());
        assert_eq!(c.products[idx["P070"]].stock, None);
        assert!(c.products[idx["P070"]].in_stock());
        // Grouped stock.
        assert_eq!(c.products[idx["P080"]].stock, Some(1200));
    }

    #[test]
    fn mapped_columns_with_semicolons() {
        let text = "SKU;Bezeichnung;Warengruppe;Preis;Bestand\nA1;Tasse;Küche;12,50;3\n";
        let opts = CatalogOptions {
            columns: CatalogColumns {
                product_id: "SKU".into(),
                name: Some("Bezeichnung".into()),
                category: Some("Warengruppe".into()),
                price: Some("Preis".into()),
                stock: Some("Bestand".into()),
            },
            delimiter: Delimiter::Semicolon,
            decimal: DecimalSeparator::Comma,
        };
        let c = parse_catalog(text.as_bytes(), &opts).unwrap();
        assert_eq!(c.products[0].price, Some(12.5));
        assert_eq!(c.products[0].category.as_deref(), Some("Küche"));
        let opts = CatalogOptions {
            columns: CatalogColumns {
                stock: Some("Lager".into()),
                ..opts.columns
            },
            ..opts
        };
        let err = parse_catalog(text.as_bytes(), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("column `Lager` (for stock) is not in the header"),
            "{err}"
        );
    }

    #[test]
    fn id_only_catalog_is_fine() {
        let c = parse_catalog("product_id\nA\nB\n".as_bytes(), &CatalogOptions::default()).unwrap();
        assert_eq!(c.products.len(), 2);
        assert!(c.products.iter().all(Product::in_stock));
    }
}
