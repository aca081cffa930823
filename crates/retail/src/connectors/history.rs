//! The tables a POS connector keeps in its synced history, and their conversion from and to the
//! normalized POS model ([`LineItem`], [`Customer`]):
//!
//! | table | key | columns |
//! | --- | --- | --- |
//! | `lines` | `order_id` | customer_id, timestamp (local), utc_offset_secs, product_id, product_name, category, quantity, unit_price, amount, currency, updated_at |
//! | `customers` | `customer_id` | email, name, accepts_marketing, updated_at |
//! | `products` | `product_id` | name, category, price, stock |
//!
//! An order's lines are replaced as a group when the order changes.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampSecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampSecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;

use crate::pos::{Customer, LineItem};

pub(crate) const LINES: &str = "lines";
pub(crate) const CUSTOMERS: &str = "customers";
pub(crate) const PRODUCTS: &str = "products";

/// A product as a POS catalog describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductRow {
    pub product_id: String,
    pub name: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    /// Units in stock; `None` when the POS does not track it.
    pub stock: Option<i64>,
}

fn lines_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Second, None),
            false,
        ),
        Field::new("utc_offset_secs", DataType::Int32, true),
        Field::new("product_id", DataType::Utf8, false),
        Field::new("product_name", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("quantity", DataType::Float64, false),
        Field::new("unit_price", DataType::Float64, true),
        Field::new("amount", DataType::Float64, false),
        Field::new("currency", DataType::Utf8, true),
        Field::new("updated_at", DataType::Utf8, true),
    ]))
}

/// Builds the `lines` table a batch at a time.
#[derive(Default)]
pub(crate) struct LinesBuilder {
    order_id: StringBuilder,
    customer_id: StringBuilder,
    timestamp: TimestampSecondBuilder,
    utc_offset: Int32Builder,
    product_id: StringBuilder,
    product_name: StringBuilder,
    category: StringBuilder,
    quantity: Float64Builder,
    unit_price: Float64Builder,
    amount: Float64Builder,
    currency: StringBuilder,
    updated_at: StringBuilder,
    rows: usize,
}

impl LinesBuilder {
    pub(crate) fn push(&mut self, item: &LineItem, updated_at: &str) {
        self.order_id.append_value(&item.order_id);
        self.customer_id.append_value(&item.customer_id);
        self.timestamp
            .append_value(item.timestamp.and_utc().timestamp());
        self.utc_offset.append_option(item.utc_offset_secs);
        self.product_id.append_value(&item.product_id);
        self.product_name
            .append_option(item.product_name.as_deref());
        self.category.append_option(item.category.as_deref());
        self.quantity.append_value(item.quantity);
        self.unit_price.append_option(item.unit_price);
        self.amount.append_value(item.amount);
        self.currency.append_option(item.currency.as_deref());
        self.updated_at
            .append_option((!updated_at.is_empty()).then_some(updated_at));
        self.rows += 1;
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.utc_offset.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.product_name.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.unit_price.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.updated_at.finish()),
        ];
        RecordBatch::try_new(lines_schema(), columns).expect("columns match the schema")
    }
}

/// The line items of a `lines` table, in its row order.
pub(crate) fn line_items(batch: &RecordBatch) -> impl Iterator<Item = LineItem> + '_ {
    let s = |i: usize| batch.column(i).as_string::<i32>();
    let (order, customer, product, name, category, currency) =
        (s(0), s(1), s(4), s(5), s(6), s(10));
    let timestamp = batch.column(2).as_primitive::<TimestampSecondType>();
    let offset = batch.column(3).as_primitive::<Int32Type>();
    let quantity = batch.column(7).as_primitive::<Float64Type>();
    let unit_price = batch.column(8).as_primitive::<Float64Type>();
    let amount = batch.column(9).as_primitive::<Float64Type>();
    let opt =
        |a: &arrow_array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    (0..batch.num_rows()).map(move |i| LineItem {
        line: 0,
        order_id: order.value(i).to_string(),
        customer_id: customer.value(i).to_string(),
        timestamp: DateTime::from_timestamp(timestamp.value(i), 0)
            .unwrap_or_default()
            .naive_utc(),
        utc_offset_secs: offset.is_valid(i).then(|| offset.value(i)),
        product_id: product.value(i).to_string(),
        product_name: opt(name, i),
        category: opt(category, i),
        quantity: quantity.value(i),
        unit_price: unit_price.is_valid(i).then(|| unit_price.value(i)),
        amount: amount.value(i),
        currency: opt(currency, i),
    })
}

/// The `customers` table of `customers` (each with the time the POS last changed it).
pub(crate) fn customers_batch(customers: &[(Customer, String)]) -> RecordBatch {
    let mut id = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut consent = BooleanBuilder::new();
    let mut updated = StringBuilder::new();
    for (c, updated_at) in customers {
        id.append_value(&c.customer_id);
        email.append_option(c.email.as_deref());
        name.append_option(c.name.as_deref());
        consent.append_option(c.accepts_marketing);
        updated.append_option((!updated_at.is_empty()).then_some(updated_at.as_str()));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("accepts_marketing", DataType::Boolean, true),
        Field::new("updated_at", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(email.finish()),
        Arc::new(name.finish()),
        Arc::new(consent.finish()),
        Arc::new(updated.finish()),
    ];
    RecordBatch::try_new(schema, columns).expect("columns match the schema")
}

/// The customers of a `customers` table.
pub(crate) fn customers(batch: &RecordBatch) -> Vec<Customer> {
    let s = |i: usize| batch.column(i).as_string::<i32>();
    let (id, email, name) = (s(0), s(1), s(2));
    let consent = batch.column(3).as_boolean();
    let opt =
        |a: &arrow_array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    (0..batch.num_rows())
        .map(|i| Customer {
            customer_id: id.value(i).to_string(),
            email: opt(email, i),
            name: opt(name, i),
            accepts_marketing: consent.is_valid(i).then(|| consent.value(i)),
        })
        .collect()
}

/// The `products` table of `products`.
pub(crate) fn products_batch(products: &[ProductRow]) -> RecordBatch {
    let mut id = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut category = StringBuilder::new();
    let mut price = Float64Builder::new();
    let mut stock = Int64Builder::new();
    for p in products {
        id.append_value(&p.product_id);
        name.append_option(p.name.as_deref());
        category.append_option(p.category.as_deref());
        price.append_option(p.price);
        stock.append_option(p.stock);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(category.finish()),
        Arc::new(price.finish()),
        Arc::new(stock.finish()),
    ];
    RecordBatch::try_new(Arc::new(crate::pos::catalog_schema()), columns)
        .expect("columns match the schema")
}

/// The products of a `products` table.
pub(crate) fn products(batch: &RecordBatch) -> Vec<ProductRow> {
    let s = |i: usize| batch.column(i).as_string::<i32>();
    let (id, name, category) = (s(0), s(1), s(2));
    let price = batch.column(3).as_primitive::<Float64Type>();
    let stock = batch.column(4).as_primitive::<Int64Type>();
    let opt =
        |a: &arrow_array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    (0..batch.num_rows())
        .map(|i| ProductRow {
            product_id: id.value(i).to_string(),
            name: opt(name, i),
            category: opt(category, i),
            price: price.is_valid(i).then(|| price.value(i)),
            stock: stock.is_valid(i).then(|| stock.value(i)),
        })
        .collect()
}
