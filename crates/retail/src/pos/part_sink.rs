//! Where a parse puts its line items part by part. A large CSV export is parsed on several
//! threads: each part's items go into a sink of their own on the thread that parses the part
//! (so the per-row work of turning items into columns runs on every core), and the calling
//! thread merges the parts in file order. Other formats and small files are read by one reader
//! whose items fill a part at a time.

use super::model::LineItem;

/// Takes the items of one part of a file.
pub trait PartSink: Send {
    /// Takes one item; `customer` is its customer's number within the part (customers are
    /// numbered in the order the part first shows them).
    fn push(&mut self, item: &LineItem, customer: u32);
    /// Empties the sink for another part, keeping its buffers.
    fn clear(&mut self);
}

/// Merges a filled part: `customers[n]` is the file-wide number of the part's customer `n`.
pub type Merge<'a, P> = dyn FnMut(&mut P, &[u32]) + 'a;

/// Items a part holds at most when one reader fills the parts.
const ITEMS_PER_PART: usize = 1 << 16;

/// One reader's items, whose customer numbers are already file-wide, put into parts that are
/// merged as each fills.
pub(super) struct OneReader<'a, 'm, P> {
    part: P,
    items: usize,
    /// `identity[n] == n` for every customer number seen so far.
    identity: Vec<u32>,
    merge: &'a mut Merge<'m, P>,
}

impl<'a, 'm, P: PartSink> OneReader<'a, 'm, P> {
    pub(super) fn new(part: P, merge: &'a mut Merge<'m, P>) -> Self {
        OneReader {
            part,
            items: 0,
            identity: Vec::new(),
            merge,
        }
    }

    pub(super) fn push(&mut self, item: &LineItem, customer: u32) {
        if customer as usize >= self.identity.len() {
            let from = self.identity.len() as u32;
            self.identity.extend(from..=customer);
        }
        self.part.push(item, customer);
        self.items += 1;
        if self.items == ITEMS_PER_PART {
            self.flush();
        }
    }

    fn flush(&mut self) {
        (self.merge)(&mut self.part, &self.identity);
        self.part.clear();
        self.items = 0;
    }

    /// Merges the last part.
    pub(super) fn finish(mut self) {
        if self.items > 0 {
            self.flush();
        }
    }
}
