//! A map from strings to `u32` built for the millions of short ids a POS export holds.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

/// How many look-ups in a large map follow a touch of their entries ([`StrMap::touch`]).
pub(crate) const TOUCH_AHEAD: usize = 16;

/// Strings to `u32`, ids of up to 15 bytes packed into the key itself: a look-up in a map of
/// a million customers then neither follows a pointer to the key's bytes nor calls `memcmp`
/// (both cache misses that grow with the map). The key is two `u64`s, not a `u128`, whose
/// 16-byte alignment would pad every entry from 24 bytes to 32.
#[derive(Debug, Default)]
pub(crate) struct StrMap {
    pub(crate) short: HashMap<[u64; 2], u32, FxBuildHasher>,
    pub(crate) long: HashMap<Box<str>, u32, FxBuildHasher>,
}

impl StrMap {
    pub(crate) fn with_capacity(n: usize) -> Self {
        StrMap {
            short: HashMap::with_capacity_and_hasher(n, FxBuildHasher),
            long: HashMap::default(),
        }
    }

    /// Makes room for `more` short strings if memory allows (a capacity hint: the map still
    /// grows when it is short).
    pub(crate) fn reserve_hint(&mut self, more: usize) {
        let _ = self.short.try_reserve(more);
    }

    /// The bytes and the length in one key; `None` above 15 bytes. Byte `i` of the string is
    /// byte `i` of the key (little-endian), the length is its last byte, the rest is zero.
    /// Read with a few loads instead of a copy of variable length (a call to `memcpy`).
    #[inline]
    pub(crate) fn pack(s: &str) -> Option<[u64; 2]> {
        let b = s.as_bytes();
        let n = b.len();
        let len = (n as u64) << 56;
        if n >= 8 {
            if n > 15 {
                return None;
            }
            let lo = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            // The last 8 bytes, shifted so that bytes 8.. come first (none when n is 8).
            let last = u64::from_le_bytes(b[n - 8..].try_into().expect("8 bytes"));
            let hi = last.checked_shr(8 * (16 - n) as u32).unwrap_or(0);
            Some([lo, hi | len])
        } else if n >= 4 {
            let first = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let last = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
            let rest = last.checked_shr(8 * (8 - n) as u32).unwrap_or(0);
            Some([u64::from(first) | (u64::from(rest) << 32), len])
        } else {
            let lo = b
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, &x)| acc | (u64::from(x) << (8 * i)));
            Some([lo, len])
        }
    }

    #[inline]
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        match Self::pack(s) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(s).copied(),
        }
    }

    /// The value of `s`, inserting `next` when absent.
    #[inline]
    pub(crate) fn get_or_insert(&mut self, s: &str, next: u32) -> u32 {
        self.get_or_insert_packed(s, Self::pack(s), next)
    }

    /// [`StrMap::get_or_insert`] for a string already packed (`packed` is `pack(s)`).
    #[inline]
    pub(crate) fn get_or_insert_packed(
        &mut self,
        s: &str,
        packed: Option<[u64; 2]>,
        next: u32,
    ) -> u32 {
        match packed {
            Some(k) => *self.short.entry(k).or_insert(next),
            None => match self.long.get(s) {
                Some(&v) => v,
                None => {
                    self.long.insert(s.into(), next);
                    next
                }
            },
        }
    }

    /// Looks up each string only to bring its entry into the cache, so that the look-ups that
    /// follow find them there: in a map larger than the caches, touching a few entries one
    /// after another lets their cache misses overlap instead of coming one at a time. Returns
    /// how many are present (which keeps the look-ups from being optimised away).
    #[inline]
    pub(crate) fn touch<'a>(&self, strings: impl IntoIterator<Item = &'a str>) -> usize {
        let present = strings
            .into_iter()
            .filter(|s| Self::pack(s).is_some_and(|k| self.short.contains_key(&k)))
            .count();
        std::hint::black_box(present)
    }

    pub(crate) fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Forgets every string, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.short.clear();
        self.long.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packing as a copy into a zeroed buffer: what the loads must give.
    fn packed_by_copy(s: &str) -> Option<[u64; 2]> {
        let b = s.as_bytes();
        if b.len() > 15 {
            return None;
        }
        let mut buf = [0u8; 16];
        buf[..b.len()].copy_from_slice(b);
        buf[15] = b.len() as u8;
        let packed = u128::from_le_bytes(buf);
        Some([packed as u64, (packed >> 64) as u64])
    }

    #[test]
    fn every_length_packs_to_its_bytes_and_length() {
        let text = "C0586900-ÉtéP0024_xyz-0123456789";
        for start in 0..4 {
            for end in start..text.len() {
                let Some(s) = text.get(start..end) else {
                    continue;
                };
                assert_eq!(StrMap::pack(s), packed_by_copy(s), "{s:?}");
            }
        }
        // A trailing zero byte is told apart from a shorter string by the length.
        assert_ne!(StrMap::pack("ab\0"), StrMap::pack("ab"));
        assert_eq!(StrMap::pack(&"x".repeat(16)), None);
    }

    #[test]
    fn short_and_long_strings_map_to_what_was_inserted() {
        let mut map = StrMap::default();
        let long = "a customer id longer than fifteen bytes";
        for (i, s) in ["", "a", "abcd", "abcdefgh", "abcdefghijklmno", long]
            .into_iter()
            .enumerate()
        {
            assert_eq!(map.get_or_insert(s, i as u32), i as u32);
        }
        assert_eq!(map.get_or_insert("abcdefgh", 99), 3);
        assert_eq!(map.get(long), Some(5));
        assert_eq!(map.get("abcdefghijklmn"), None);
        assert_eq!(map.touch(["abcd", "abc", "a", "abcdefgh"]), 3);
        assert_eq!(map.len(), 6);
        map.clear();
        assert_eq!(map.get("a"), None);
    }
}
