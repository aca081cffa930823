//! The live view drawn on an emulated terminal: log lines printed during a run stay on screen
//! above it, and it ends with the overall count.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressDrawTarget, TermLike};

use super::*;

/// A terminal screen: rows of characters, a cursor, and auto-wrap at the right margin
/// (deferred, as xterm does: the wrap happens when the next character is written).
#[derive(Debug, Default)]
struct Screen {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

const WIDTH: usize = 100;

impl Screen {
    fn put(&mut self, c: char) {
        match c {
            '\r' => self.col = 0,
            '\n' => {
                self.row += 1;
                self.col = 0;
            }
            c => {
                if self.col >= WIDTH {
                    self.row += 1;
                    self.col = 0;
                }
                while self.rows.len() <= self.row {
                    self.rows.push(Vec::new());
                }
                let line = &mut self.rows[self.row];
                while line.len() <= self.col {
                    line.push(' ');
                }
                line[self.col] = c;
                self.col += 1;
            }
        }
    }

    fn text(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_string())
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
struct Term(Arc<Mutex<Screen>>);

impl Term {
    fn screen(&self) -> std::sync::MutexGuard<'_, Screen> {
        self.0.lock().unwrap()
    }
}

impl TermLike for Term {
    fn width(&self) -> u16 {
        WIDTH as u16
    }
    fn height(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        let mut s = self.screen();
        s.row = s.row.saturating_sub(n);
        s.col = s.col.min(WIDTH - 1);
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        let mut s = self.screen();
        s.row += n;
        s.col = s.col.min(WIDTH - 1);
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        let mut s = self.screen();
        s.col = (s.col + n).min(WIDTH - 1);
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        let mut s = self.screen();
        s.col = s.col.saturating_sub(n);
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        let mut s = self.screen();
        line.chars().chain(['\n']).for_each(|c| s.put(c));
        Ok(())
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        let mut s = self.screen();
        text.chars().for_each(|c| s.put(c));
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        let mut s = self.screen();
        let row = s.row;
        if let Some(line) = s.rows.get_mut(row) {
            line.clear();
        }
        s.col = 0;
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fn finished(node: &str, rows_out: u64) -> Event {
    Event::Finished {
        node: node.into(),
        status: NodeStatus::Succeeded,
        duration: Duration::from_millis(20),
        rows_out,
        error: None,
    }
}

#[test]
fn warnings_stay_above_the_live_view_and_it_counts_nodes_done() {
    let term = Term::default();
    let mut live = Live::new(ProgressDrawTarget::term_like(Box::new(term.clone())), 8, 4);
    console::begin_live(live.multi.clone());
    live.show(&Event::Reused {
        node: "daily".into(),
        status: NodeStatus::Succeeded,
    });
    live.show(&Event::Started {
        node: "extract".into(),
        attempt: 1,
    });
    live.show(&Event::Started {
        node: "other".into(),
        attempt: 1,
    });
    console::line("node extract warning: skipped 6 bad rows");
    // More redraws after the warning: it must not be overwritten.
    live.show(&finished("extract", 1));
    live.show(&finished("other", 42));
    live.show(&Event::Skipped {
        node: "branch".into(),
        status: NodeStatus::Skipped,
        reason: "case `vip` is empty".into(),
    });
    live.finish();
    console::end_live();

    let screen = term.screen().text();
    let find = |needle: &str| -> Vec<usize> {
        screen
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i)
            .collect()
    };
    let warning = find("warning: skipped 6 bad rows");
    assert_eq!(warning.len(), 1, "{screen:#?}");
    let overall = find("4 of 4 nodes done");
    assert_eq!(overall.len(), 1, "{screen:#?}");
    assert!(
        warning[0] < overall[0],
        "the warning is above the view: {screen:#?}"
    );
    for needle in [
        "extract  ✔ succeeded in 20.00ms, 1 row",
        "other    ✔ succeeded in 20.00ms, 42 rows",
        "branch   ↷ skipped (case `vip` is empty)",
        "daily    ↺ succeeded earlier (checkpoint reused)",
    ] {
        assert_eq!(find(needle).len(), 1, "{needle}: {screen:#?}");
    }
}

#[test]
fn plain_lines_count_each_node_once() {
    let mut done = Done::new(3);
    assert!(!done.count(&Event::Started {
        node: "a".into(),
        attempt: 1
    }));
    assert!(done.count(&finished("a", 0)));
    assert!(done.count(&finished("a", 0)));
    assert!(!done.count(&Event::Finished {
        node: "b".into(),
        status: NodeStatus::Interrupted,
        duration: Duration::ZERO,
        rows_out: 0,
        error: None,
    }));
    assert_eq!(done.text(), "1 of 3 nodes done");
}
