//! The web UI in headless Chromium, driven over WebDriver.
//!
//! `pages` runs the real UI (assets and page shells of `flow_web::ui_router`) against a fake
//! of the JSON API, so what the pages show, what they send and how they take live events is
//! tested on fixed, hostile data. `end_to_end` runs the real `flow serve --http` on real
//! workflows: a failed run resumed from the browser, a webhook run appearing live, a bad
//! parameter refused by the server. Screenshots land in target/ui-screenshots/.

mod end_to_end;
mod fake_api;
mod harness;
mod pages;
