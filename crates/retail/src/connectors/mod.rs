//! Connectors to POS APIs: they pull orders, customers and products into the synced history,
//! and push segments back.

pub mod square;
