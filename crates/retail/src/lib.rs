//! flow's retail node types: [`pos`] reads point-of-sale exports (and generates sample data),
//! [`segmentation`] turns transactions into segments, recommendations, campaigns and deliveries.
//! [`connectors`] sync POS APIs into a local history.
//! [`register`] adds them to a registry, the same way a third-party crate adds its own.

mod beside;
pub mod connectors;
pub mod pos;
pub mod segmentation;
mod str_map;
mod text_dictionary;
#[cfg(test)]
mod workflow_fuzz_tests;

use flow_engine::node::Registry;

/// Registers the `pos.*`, `segmentation.*` and connector (`shopify.*`, `square.*`) node types.
pub fn register(registry: &mut Registry) {
    pos::register(registry);
    connectors::shopify::register(registry);
    segmentation::register(registry);
    connectors::square::register(registry);
}
