//! POS API connectors: each pulls orders, customers and products from a POS's API into a
//! synced history kept beside the store (see [`source`]), and produces the same tables as the
//! export parsers in [`crate::pos`], so everything downstream is unchanged.

pub mod history;
pub mod shopify;
pub mod source;
pub mod square;

pub use history::ProductRow;
pub use source::{
    Connector, ConnectorError, OrderVersion, PullStats, Sink, SyncReport, Synced, sync,
};
