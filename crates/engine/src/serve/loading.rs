//! Workflow files: finding, compiling and announcing them, their triggers' cursors, and picking
//! up changed, new and removed files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::firing_log::{watermark, watermark_write};
use super::{Entry, EventKind, ScheduleTrigger, Scheduled, Server, TriggerSummary};
use crate::compile;
use crate::store::StoreError;
use crate::webhook::WebhookTrigger;

impl Server {
    /// Workflow files named by the sources, sorted.
    pub(super) fn list_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for source in &self.sources {
            if source.is_dir() {
                let Ok(entries) = std::fs::read_dir(source) else {
                    continue;
                };
                let mut found: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && matches!(
                                p.extension().and_then(|e| e.to_str()),
                                Some("yaml" | "yml")
                            )
                    })
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(source.clone());
            }
        }
        files
            .into_iter()
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect()
    }

    /// Compiles a file; its problems as lines on failure.
    pub(super) fn load(&self, path: &Path) -> Result<Entry, Vec<String>> {
        let bytes = compile::read_bytes(path)
            .map_err(|e| vec![format!("{}: cannot read it: {e}", path.display())])?;
        self.load_bytes(path, bytes)
    }

    /// Compiles a file's contents as read; not UTF-8 is one of its problems.
    pub(super) fn load_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<Entry, Vec<String>> {
        let text = compile::decode(path, bytes).map_err(|d| vec![d.to_string()])?;
        let wf = compile::compile(&text, path, &self.registry).map_err(|diags| {
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<String>>()
        })?;
        let triggers =
            ScheduleTrigger::all(&wf).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let webhooks =
            WebhookTrigger::all(&wf).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        Ok(Entry {
            wf: Arc::new(wf),
            text,
            triggers: triggers
                .into_iter()
                .map(|trigger| Scheduled {
                    trigger,
                    cursor: DateTime::<Utc>::MIN_UTC,
                })
                .collect(),
            webhooks,
        })
    }

    /// Sets each trigger's cursor from its stored watermark; a trigger seen for the first
    /// time starts now (and says so in the store, so a later restart knows what it missed).
    pub(super) fn init_cursors(
        &mut self,
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut fresh = Vec::new();
        let entry = self.entries.get_mut(path).expect("loaded");
        for s in &mut entry.triggers {
            match watermark(self.store.as_ref(), path, &s.trigger.id)? {
                Some(last) => s.cursor = last,
                None => {
                    s.cursor = now;
                    fresh.push(watermark_write(path, &s.trigger.id, now));
                }
            }
        }
        // A server standing by keeps its cursors to itself; the leading one records them.
        if !fresh.is_empty() && self.leading {
            self.store.apply(fresh)?;
            self.store.flush()?;
        }
        Ok(())
    }

    pub(super) fn announce(&self, path: &Path, reloaded: bool) {
        let entry = &self.entries[path];
        let now = self.clock.now();
        let key = self
            .catalog
            .borrow()
            .workflows
            .iter()
            .find(|w| w.path == path)
            .map(|w| w.key.clone())
            .unwrap_or_default();
        let webhooks = entry
            .webhooks
            .iter()
            .map(|w| format!("/hooks/{key}/{}", w.id))
            .collect();
        self.emit(EventKind::Loaded {
            webhooks,
            workflow: entry.wf.name.clone(),
            path: path.to_path_buf(),
            triggers: entry
                .triggers
                .iter()
                .map(|s| TriggerSummary {
                    id: s.trigger.id.clone(),
                    expression: s.trigger.schedule.cron.expression.clone(),
                    timezone: s.trigger.schedule.cron.timezone,
                    next: s.trigger.schedule.cron.after(now.max(s.cursor)).next(),
                })
                .collect(),
            reloaded,
        });
    }

    /// Picks up changed, new and removed workflow files. An invalid change is reported once
    /// and the previous definition stays in force.
    pub(super) fn reload(&mut self, now: DateTime<Utc>) {
        let files = self.list_files();
        let present: HashSet<&PathBuf> = files.iter().collect();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !present.contains(p) || !p.exists())
            .cloned()
            .collect();
        let changed = !gone.is_empty();
        for path in gone {
            self.entries.remove(&path);
            self.invalid.remove(&path);
            self.queues.remove(&path);
            self.emit(EventKind::Removed { path });
        }
        for path in files {
            // Bytes, not text: a file changed to invalid UTF-8 is a change to report.
            let Ok(bytes) = compile::read_bytes(&path) else {
                continue;
            };
            let unchanged = self
                .entries
                .get(&path)
                .is_some_and(|e| e.text.as_bytes() == bytes)
                || self.rejected.get(&path) == Some(&bytes);
            if unchanged {
                continue;
            }
            match self.load_bytes(&path, bytes.clone()) {
                Err(errors) => {
                    self.rejected.insert(path.clone(), bytes);
                    self.invalid.insert(path.clone(), errors.clone());
                    self.publish();
                    self.emit(EventKind::ReloadFailed {
                        kept_previous: self.entries.contains_key(&path),
                        path,
                        errors,
                    });
                }
                Ok(mut entry) => {
                    self.rejected.remove(&path);
                    self.invalid.remove(&path);
                    let reloaded = self.entries.contains_key(&path);
                    // A trigger whose schedule did not change keeps its place; a new or
                    // changed one starts from now (a reload is not an outage).
                    let mut fresh = Vec::new();
                    for s in &mut entry.triggers {
                        let old = self.entries.get(&path).and_then(|e| {
                            e.triggers.iter().find(|o| {
                                o.trigger.id == s.trigger.id
                                    && o.trigger.schedule.cron.expression
                                        == s.trigger.schedule.cron.expression
                                    && o.trigger.schedule.cron.timezone
                                        == s.trigger.schedule.cron.timezone
                            })
                        });
                        s.cursor = match old {
                            Some(o) => o.cursor,
                            None if reloaded => {
                                fresh.push(watermark_write(&path, &s.trigger.id, now));
                                now
                            }
                            None => DateTime::<Utc>::MIN_UTC,
                        };
                    }
                    let first_load = !reloaded;
                    self.entries.insert(path.clone(), entry);
                    let stored = if first_load {
                        // A file that appeared: its stored watermarks (if any) apply.
                        self.init_cursors(&path, now)
                    } else if fresh.is_empty() {
                        Ok(())
                    } else {
                        self.store.apply(fresh).and_then(|()| self.store.flush())
                    };
                    if let Err(e) = stored {
                        self.problem(format!("{}: {e}", path.display()));
                    }
                    self.publish();
                    self.announce(&path, reloaded);
                }
            }
        }
        if changed {
            self.publish();
        }
    }
}
