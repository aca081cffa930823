//! `ListCatalog` (`GET /v2/catalog/list?types=ITEM,CATEGORY`), paged by `cursor`: the products.
//!
//! One product per item variation (its id is what orders name in `catalog_object_id`): name =
//! the item's name, plus the variation's name when the item has several variations; category =
//! the name of the item's category (`item_data.categories[0]`, else the older
//! `item_data.category_id`); price = the variation's `price_money` in major units (none for
//! variable-priced variations). Deleted objects (`is_deleted`) are left out. Square has
//! inventory counts in a separate API: `stock` is left unknown.

use std::collections::HashMap;

use super::client::{Client, Method, SquareError};
use super::json::Node;
use super::mapping::money;
use super::money::major;

const ENDPOINT: &str = "GET /v2/catalog/list";

/// One sellable product (an item variation).
#[derive(Debug, Clone, PartialEq)]
pub struct SquareProduct {
    pub product_id: String,
    pub name: String,
    pub category: Option<String>,
    pub price: Option<f64>,
}

/// Every item variation of the catalog.
pub fn list(client: &Client) -> Result<Vec<SquareProduct>, SquareError> {
    let mut categories: HashMap<String, String> = HashMap::new();
    // (variation id, name, category id, price): categories may come after their items.
    let mut variations: Vec<(String, String, Option<String>, Option<f64>)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("types", "ITEM,CATEGORY")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let answer = client.call(Method::Get, ENDPOINT, "/v2/catalog/list", &q, None)?;
        let root = Node::root(ENDPOINT, &answer);
        for obj in root.list("objects")? {
            if obj.opt_bool("is_deleted")? == Some(true) {
                continue;
            }
            match obj.str("type")? {
                "CATEGORY" => {
                    let name = obj.req("category_data")?.str("name")?.to_string();
                    categories.insert(obj.str("id")?.to_string(), name);
                }
                "ITEM" => {
                    let data = obj.req("item_data")?;
                    let item_name = data.str("name")?;
                    let category = match data.list("categories")?.first() {
                        Some(c) => Some(c.str("id")?.to_string()),
                        None => data.opt_str("category_id")?.map(str::to_string),
                    };
                    let vars = data.list("variations")?;
                    let several = vars.len() > 1;
                    for v in &vars {
                        if v.opt_bool("is_deleted")? == Some(true) {
                            continue;
                        }
                        let vd = v.req("item_variation_data")?;
                        let name = match vd.opt_str("name")? {
                            Some(n) if several && !n.is_empty() => format!("{item_name} ({n})"),
                            _ => item_name.to_string(),
                        };
                        let price = money(&vd, "price_money")?.map(|(a, c)| major(a, &c));
                        variations.push((v.str("id")?.to_string(), name, category.clone(), price));
                    }
                }
                _ => {}
            }
        }
        match root.cursor()? {
            Some(next) if Some(&next) == cursor.as_ref() => {
                return Err(root.malformed("cursor", "repeats the cursor just sent"));
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(variations
        .into_iter()
        .map(|(product_id, name, cat, price)| SquareProduct {
            product_id,
            name,
            category: cat.and_then(|c| categories.get(&c).cloned()),
            price,
        })
        .collect())
}
