//! The R×F segment map: which named segment each cell of the R and F scores belongs to.

/// The default R×F segment map (R digit, F digit); covers the 25 cells exactly once.
pub(super) const DEFAULT_RFM_SEGMENTS: [(&str, &[&str]); 10] = [
    ("Champions", &["5[4-5]"]),
    ("Loyal", &["[3-4][4-5]"]),
    ("Potential loyalists", &["[4-5][2-3]"]),
    ("New", &["51"]),
    ("Promising", &["41"]),
    ("Need attention", &["33"]),
    ("About to sleep", &["3[1-2]"]),
    ("At risk", &["[1-2][3-4]"]),
    ("Can't lose them", &["[1-2]5"]),
    ("Hibernating", &["[1-2][1-2]"]),
];

/// The R×F segment map: a segment index per cell `(r - 1) * 5 + (f - 1)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SegmentMap {
    names: Vec<String>,
    cells: [u8; 25],
}

impl SegmentMap {
    pub(super) fn default_map() -> Self {
        let defs: Vec<(String, Vec<String>)> = DEFAULT_RFM_SEGMENTS
            .iter()
            .map(|(n, p)| (n.to_string(), p.iter().map(|s| s.to_string()).collect()))
            .collect();
        Self::build(&defs).expect("the default map is valid")
    }

    /// Builds a map from (name, cell patterns); errors as (segment name or "", message).
    pub(super) fn build(defs: &[(String, Vec<String>)]) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut owner: [Option<usize>; 25] = [None; 25];
        if defs.len() > usize::from(u8::MAX) {
            errors.push((String::new(), "at most 255 segments".to_string()));
        }
        for (seg, (name, patterns)) in defs.iter().enumerate() {
            if patterns.is_empty() {
                errors.push((name.clone(), "lists no cells".to_string()));
            }
            for pattern in patterns {
                match parse_cell_pattern(pattern) {
                    Ok(cells) => {
                        for (r, f) in cells {
                            let cell = usize::from((r - 1) * 5 + (f - 1));
                            match owner[cell] {
                                Some(other) if other != seg => errors.push((
                                    name.clone(),
                                    format!(
                                        "cell {r}{f} (R {r}, F {f}) is already in `{}`",
                                        defs[other].0
                                    ),
                                )),
                                _ => owner[cell] = Some(seg),
                            }
                        }
                    }
                    Err(e) => errors.push((name.clone(), e)),
                }
            }
        }
        let uncovered: Vec<String> = (0..25)
            .filter(|&c| owner[c].is_none())
            .map(|c| format!("{}{}", c / 5 + 1, c % 5 + 1))
            .collect();
        if !uncovered.is_empty() && errors.is_empty() {
            errors.push((
                String::new(),
                format!(
                    "every R×F cell needs a segment; not covered: {}",
                    uncovered.join(", ")
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut cells = [0u8; 25];
        for (c, o) in owner.iter().enumerate() {
            cells[c] = o.expect("covered") as u8;
        }
        Ok(SegmentMap {
            names: defs.iter().map(|d| d.0.clone()).collect(),
            cells,
        })
    }

    pub(super) fn segment(&self, r: u8, f: u8) -> &str {
        &self.names[usize::from(self.cells[usize::from((r - 1) * 5 + (f - 1))])]
    }
}

/// Parses a cell pattern: two parts (R then F), each a digit `1`-`5`, a range `[a-b]`, a set
/// `[abc]` or `*` (any).
fn parse_cell_pattern(pattern: &str) -> Result<Vec<(u8, u8)>, String> {
    let bad = || {
        format!(
            "`{pattern}` is not a cell pattern; write R then F, each a digit 1-5, a range like \
             [4-5] or *, e.g. \"5[4-5]\""
        )
    };
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut chars = pattern.trim().chars().peekable();
    while let Some(c) = chars.next() {
        let digit = |c: char| {
            c.to_digit(10)
                .filter(|d| (1..=5).contains(d))
                .map(|d| d as u8)
        };
        let part = match c {
            '*' => (1..=5).collect(),
            '[' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(ch) => inner.push(ch),
                        None => return Err(bad()),
                    }
                }
                let inner: Vec<char> = inner.chars().filter(|c| !c.is_whitespace()).collect();
                if inner.len() == 3 && inner[1] == '-' {
                    let (a, b) = (
                        digit(inner[0]).ok_or_else(bad)?,
                        digit(inner[2]).ok_or_else(bad)?,
                    );
                    if a > b {
                        return Err(bad());
                    }
                    (a..=b).collect()
                } else {
                    let digits: Option<Vec<u8>> = inner.iter().map(|&c| digit(c)).collect();
                    match digits {
                        Some(d) if !d.is_empty() => d,
                        _ => return Err(bad()),
                    }
                }
            }
            c => vec![digit(c).ok_or_else(bad)?],
        };
        parts.push(part);
    }
    if parts.len() != 2 {
        return Err(bad());
    }
    let mut cells = Vec::new();
    for &r in &parts[0] {
        for &f in &parts[1] {
            cells.push((r, f));
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_segment_map_covers_every_cell_once() {
        let mut seen = [0u32; 25];
        for (_, patterns) in DEFAULT_RFM_SEGMENTS {
            for p in patterns {
                for (r, f) in parse_cell_pattern(p).unwrap() {
                    seen[usize::from((r - 1) * 5 + (f - 1))] += 1;
                }
            }
        }
        assert_eq!(seen, [1; 25]);
        let map = SegmentMap::default_map();
        assert_eq!(map.segment(5, 5), "Champions");
        assert_eq!(map.segment(3, 3), "Need attention");
        assert_eq!(map.segment(4, 1), "Promising");
        assert_eq!(map.segment(2, 5), "Can't lose them");
        assert_eq!(map.segment(1, 1), "Hibernating");
        assert_eq!(parse_cell_pattern("*[135]").unwrap().len(), 15);
        assert!(parse_cell_pattern("6[1-2]").is_err());
        assert!(parse_cell_pattern("5[3-1]").is_err());
        assert!(parse_cell_pattern("555").is_err());
    }
}
