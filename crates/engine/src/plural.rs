//! Counts in words: `1 row`, `2 rows`, `0 customers`.

/// `n` and the word, with an `s` unless `n` is 1 (`plural(1, "row")` is `1 row`).
pub fn plural(n: impl Into<u64>, one: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// For words whose plural is not `+s` (`plural_of(2, "batch", "batches")`).
pub fn plural_of(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `a` or `an` before a word, by its first letter's sound as it is usually read
/// (`an integer`, `a number`, `a string`).
pub fn article(word: &str) -> &'static str {
    match word.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o') => "an",
        // `u` is read "you" in most words the engine prints (`a URL`, `a unique id`).
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(plural(1u64, "row"), "1 row");
        assert_eq!(plural(0u64, "row"), "0 rows");
        assert_eq!(plural(2u32, "node"), "2 nodes");
        assert_eq!(plural(48_290u64, "customer"), "48290 customers");
        assert_eq!(plural_of(1u64, "batch", "batches"), "1 batch");
        assert_eq!(plural_of(3u64, "batch", "batches"), "3 batches");
    }

    #[test]
    fn articles_follow_the_sound() {
        assert_eq!(article("integer"), "an");
        assert_eq!(article("number"), "a");
        assert_eq!(article("array"), "an");
        assert_eq!(article("mapping"), "a");
        assert_eq!(article("object"), "an");
        assert_eq!(article("string"), "a");
    }
}
