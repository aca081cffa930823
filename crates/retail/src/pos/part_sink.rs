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

/// Other work for the thread that merges the parts, done a little at a time while the next
/// part is being parsed: each call does a little and says whether there is more.
pub type Idle<'a> = dyn FnMut() -> bool + 'a;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps each item's line and customer number.
    #[derive(Default)]
    struct Lines(Vec<(u64, u32)>);

    impl PartSink for Lines {
        fn push(&mut self, item: &LineItem, customer: u32) {
            self.0.push((item.line, customer));
        }
        fn clear(&mut self) {
            self.0.clear();
        }
    }

    #[test]
    fn one_readers_items_reach_the_merge_in_order_over_several_parts() {
        // Three parts and a bit, with customers first seen in every part and numbers that
        // skip ahead (a parse numbers customers as they come, whatever the part).
        let n = 3 * ITEMS_PER_PART as u64 + 17;
        let customer = |line: u64| ((line * 7919) % 50_021) as u32;
        let mut merged = Vec::new();
        let mut parts = 0;
        let mut merge = |part: &mut Lines, customers: &[u32]| {
            parts += 1;
            merged.extend(part.0.iter().map(|&(l, c)| (l, customers[c as usize])));
        };
        let mut reader = OneReader::new(Lines::default(), &mut merge);
        let mut item = LineItem::default();
        for line in 1..=n {
            item.line = line;
            reader.push(&item, customer(line));
        }
        reader.finish();
        assert_eq!(parts, 4);
        let expected: Vec<(u64, u32)> = (1..=n).map(|l| (l, customer(l))).collect();
        assert_eq!(merged, expected);
    }
}
