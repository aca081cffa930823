//! A small deterministic fuzzer for tests: seeded byte mutations of sample inputs, each case
//! run under `catch_unwind` and a time limit.
//!
//! Every fuzz test runs `FLOW_FUZZ_CASES` cases (default a few hundred, a few seconds in
//! `cargo test`). A longer run, e.g. before a release:
//!
//! ```text
//! FLOW_FUZZ_CASES=100000 cargo test --release fuzz
//! FLOW_FUZZ_SEED=7 FLOW_FUZZ_CASES=100000 cargo test --release fuzz   # other inputs
//! ```
//!
//! A failing case panics with its seed and case number and writes its input to a file in the
//! temp directory; keep it as a regression case next to the fuzz test. The case being run is
//! always in `flow-fuzz-NAME-current.bin` there, for a crash that aborts the process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

/// The seeded generator the fuzzer draws its cases from (flow-analytics' one generator).
pub use flow_analytics::rng::Rng;

/// A number in `0..n`, small ones far likelier (sizes and counts).
fn small(rng: &mut Rng, n: usize) -> usize {
    let bits = rng.index(usize::BITS as usize - n.leading_zeros() as usize + 1);
    rng.index((1usize << bits).min(n).max(1))
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.index(items.len())]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mutates `input` with one to a few random edits, some of them aware of text structure:
/// `tokens` are fragments worth inserting (format syntax), repeated up to `max_repeat` times
/// (deep nesting, huge fields).
pub fn mutate(rng: &mut Rng, input: &[u8], tokens: &[&str], max_repeat: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=small(rng, 4) {
        let at = if out.is_empty() {
            0
        } else {
            rng.index(out.len() + 1)
        };
        match rng.index(9) {
            // Flip a bit.
            0 if !out.is_empty() => {
                let i = rng.index(out.len());
                out[i] ^= 1 << rng.index(8);
            }
            // A random byte, or one that is never valid UTF-8 on its own.
            1 => {
                let b = if rng.index(2) == 0 {
                    *pick(rng, &[0x00, 0x80, 0xC0, 0xFF, b'\r', b'\n', b'\t', b'"'])
                } else {
                    rng.next_u64() as u8
                };
                out.insert(at, b);
            }
            // Cut the input short.
            2 => out.truncate(at),
            // Delete a stretch.
            3 => {
                let end = (at + small(rng, 64)).min(out.len());
                out.drain(at..end);
            }
            // Duplicate a line (duplicate keys, repeated headers and rows).
            4 => {
                let (start, end) = line_around(&out, at);
                let line = out[start..end].to_vec();
                out.splice(start..start, line);
            }
            // A structural token, once or many times (deep nesting, long fields).
            5 | 6 => {
                let token = pick(rng, tokens).as_bytes();
                let n = if rng.index(4) == 0 {
                    small(rng, max_repeat) + 1
                } else {
                    1
                };
                let piece = token.repeat(n);
                out.splice(at..at, piece);
            }
            // Swap two lines.
            7 => {
                let (a0, a1) = line_around(&out, at);
                let (b0, b1) = line_around(&out, rng.index(out.len() + 1));
                if a1 <= b0 {
                    let b = out[b0..b1].to_vec();
                    let a = out[a0..a1].to_vec();
                    out.splice(b0..b1, a);
                    out.splice(a0..a1, b);
                }
            }
            // Change a line's indentation.
            _ => {
                let (start, _) = line_around(&out, at);
                if rng.index(2) == 0 {
                    let spaces = vec![b' '; small(rng, 40) + 1];
                    out.splice(start..start, spaces);
                } else if out.get(start) == Some(&b' ') {
                    out.remove(start);
                }
            }
        }
    }
    out
}

/// The line (without its break) around byte `at`.
fn line_around(bytes: &[u8], at: usize) -> (usize, usize) {
    let at = at.min(bytes.len());
    let start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| at + i);
    (start, end)
}

/// Runs `check` on `cases` inputs made by `make` (default count `default_cases`, or
/// `FLOW_FUZZ_CASES`); a panic or a case slower than `limit` fails the test, naming the seed and
/// case and saving the input.
pub fn run(
    name: &str,
    default_cases: u64,
    limit: Duration,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    mut check: impl FnMut(&[u8]),
) {
    let cases = env_number("FLOW_FUZZ_CASES", default_cases);
    let seed = env_number("FLOW_FUZZ_SEED", 1);
    let mut rng = Rng::new(seed ^ fxhash(name));
    for case in 0..cases {
        let input = make(&mut rng);
        // Written before the case runs: a stack overflow aborts the process before any report.
        let current = std::env::temp_dir().join(format!("flow-fuzz-{name}-current.bin"));
        let _ = std::fs::write(&current, &input);
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let took = started.elapsed();
        let failure = match outcome {
            Err(_) => Some("panicked".to_string()),
            Ok(()) if took > limit => Some(format!("took {took:?} (limit {limit:?})")),
            Ok(()) => None,
        };
        if let Some(failure) = failure {
            let saved = std::env::temp_dir().join(format!("flow-fuzz-{name}-{seed}-{case}.bin"));
            let _ = std::fs::write(&saved, &input);
            panic!(
                "fuzz {name}: case {case} (FLOW_FUZZ_SEED={seed}) {failure}; input saved to {}",
                saved.display()
            );
        }
    }
}

/// A stable hash of the test's name, so each fuzz test draws its own inputs.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// YAML syntax worth inserting, alone or repeated.
pub const WORKFLOW_TOKENS: &[&str] = &[
    "[",
    "{",
    "]",
    "}",
    "- ",
    "? ",
    ": ",
    "a: ",
    "{a: ",
    "[{",
    "\n  ",
    "\n- ",
    "'",
    "\"",
    "''",
    "\\",
    "#",
    " #",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "<<: *a\n",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "{{",
    "}}",
    "{{ params.",
    "\t",
    "\r\n",
    "\u{feff}",
    "é",
    "x",
    "nodes:\n",
    "needs: ",
    "id: ",
    "with: ",
    "kind: decision\n",
    "type: core.switch\n",
];

/// Loads `bytes` as a workflow file named `fuzz.yaml`; the problems, one per line, if it is
/// invalid. Panics if a problem is not located in the file.
pub fn check_workflow(bytes: &[u8], registry: &crate::node::Registry) -> String {
    let path = Path::new("fuzz.yaml");
    let text = match crate::compile::decode(path, bytes.to_vec()) {
        Ok(text) => text,
        Err(d) => {
            assert!(d.line.is_some() && d.column.is_some(), "{d}");
            return d.to_string();
        }
    };
    match crate::compile::compile(&text, path, registry) {
        Ok(_) => String::new(),
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags {
                assert_eq!(d.file, path);
                assert!(!d.message.is_empty());
            }
            crate::compile::display_all(&diags)
        }
    }
}
