//! Connectors to the POS vendors' APIs: pull sales incrementally, push segments back.

pub mod shopify;
