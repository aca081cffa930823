//! Integration tests: the real `flow` binary on fixture workflows.
//!
//! Every test builds a [`support::Workspace`] (a temporary directory with a workflow and a state
//! store), runs `flow` in it and checks exit codes, what was printed, what `flow runs show
//! --json` recorded, and which shell nodes actually executed (each appends to `exec.log`).

mod branches;
mod browser;
mod custom_node;
mod damage;
mod deploy_leftovers;
mod email;
mod exports;
mod fake_pos;
mod full_disk;
mod http_api;
mod http_fuzz;
mod http_support;
mod ids;
mod input_limits;
mod inspect;
mod kill;
mod notify;
mod output;
mod params;
mod pos_push;
mod postgres;
mod prune;
mod resume;
mod retry_timeout;
mod roles;
mod run;
mod run_cache;
mod sample_data;
mod secrets;
mod segmentation;
mod serve;
mod shipped;
mod shopify;
mod skip_join;
mod square;
mod store;
mod support;
mod sync_status;
mod untrusted;
mod validate;
mod webhook;
mod workers;
