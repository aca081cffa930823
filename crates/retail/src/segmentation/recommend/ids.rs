//! Interned ids: customers, products and categories as dense `u32`s.

use super::super::sorted_ranks;
use crate::str_map::StrMap;

/// Strings to dense indices in first-seen order, with look-up without insertion.
#[derive(Default)]
pub(super) struct Ids<'a> {
    pub(super) map: StrMap,
    pub(super) names: Vec<&'a str>,
}

impl<'a> Ids<'a> {
    /// The index of `s` and whether it is new.
    pub(super) fn intern(&mut self, s: &'a str) -> (u32, bool) {
        let next = self.names.len() as u32;
        let id = self.map.get_or_insert(s, next);
        if id == next {
            self.names.push(s);
        }
        (id, id == next)
    }
}

/// [`Ids`] owning its strings, for the index shared across the nodes of a run.
#[derive(Default)]
pub(super) struct OwnedIds {
    pub(super) map: StrMap,
    pub(super) names: Vec<Box<str>>,
}

impl OwnedIds {
    /// The index of `s` and whether it is new.
    pub(super) fn intern(&mut self, s: &str) -> (u32, bool) {
        let next = self.names.len() as u32;
        let id = self.map.get_or_insert(s, next);
        if id == next {
            self.names.push(s.into());
        }
        (id, id == next)
    }

    pub(super) fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s)
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// The position of each string in sorted order.
    pub(super) fn sorted_ranks(&self) -> Vec<u32> {
        let names: Vec<&str> = self.names.iter().map(|s| &**s).collect();
        sorted_ranks(&names).1
    }
}

/// Products by dense index: catalog items first, then ids seen only in transactions (never
/// recommended, but they seed cross-sell and name the reason).
#[derive(Default)]
pub(super) struct Products {
    pub(super) ids: OwnedIds,
    pub(super) name: Vec<Option<Box<str>>>,
    pub(super) category: Vec<Option<u32>>,
    /// Catalog price; NaN when unknown.
    pub(super) price: Vec<f64>,
    /// In the catalog with stock > 0.
    pub(super) available: Vec<bool>,
}

impl Products {
    /// The index of `id` and whether it is new (added as not in the catalog).
    pub(super) fn index(
        &mut self,
        id: &str,
        name: Option<&str>,
        category: Option<u32>,
    ) -> (u32, bool) {
        let (p, new) = self.ids.intern(id);
        if new {
            self.name.push(name.map(Into::into));
            self.category.push(category);
            self.price.push(f64::NAN);
            self.available.push(false);
        }
        (p, new)
    }

    pub(super) fn display_name(&self, p: u32) -> &str {
        self.name[p as usize]
            .as_deref()
            .unwrap_or(&self.ids.names[p as usize])
    }
}
