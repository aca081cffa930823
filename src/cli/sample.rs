//! `flow sample-data`: writes a synthetic POS export to try the segmentation workflow on.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use flow_engine::plural::plural;

use super::args::SampleArgs;
use super::{Failure, Outcome};

pub(super) fn sample_data(args: SampleArgs) -> Outcome {
    use flow_retail::pos::generate::{self, GenerateOptions};
    let start = args.end - chrono::Duration::days(i64::from(args.days.max(1)) - 1);
    let opts = GenerateOptions {
        customers: args.customers,
        products: args.products,
        start_date: start,
        days: args.days,
        seed: args.seed,
        malformed_rows: args.malformed_rows,
        target_lines: args.lines,
        campaigns: args.campaigns,
    };
    let invalid = |e: std::io::Error| Failure::invalid(anyhow!("cannot write the sample: {e}"));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))
        .map_err(Failure::invalid)?;
    let create = |name: &str| -> Result<std::io::BufWriter<std::fs::File>, Failure> {
        let path = args.out.join(name);
        std::fs::File::create(&path)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("cannot create {}", path.display()))
            .map_err(Failure::invalid)
    };
    let stats =
        generate::write_transactions(&opts, create("transactions.csv")?).map_err(invalid)?;
    generate::write_catalog(&opts, create("catalog.csv")?).map_err(invalid)?;
    generate::write_customers(&opts, create("customers.csv")?).map_err(invalid)?;
    eprintln!(
        "wrote {} ({}, {}, {}, {}) to {} \
         (transactions.csv, catalog.csv, customers.csv), {} to {}",
        plural(stats.lines, "transaction line"),
        plural(stats.orders, "order"),
        plural(stats.customers, "customer"),
        plural(args.products, "product"),
        plural(args.malformed_rows, "malformed row"),
        args.out.display(),
        start,
        args.end
    );
    if !opts.campaigns.is_empty() {
        eprintln!(
            "simulated {}: {} treated, {} held out, {} caused",
            plural(opts.campaigns.len() as u64, "campaign"),
            stats.campaign_treated,
            stats.campaign_control,
            plural(stats.campaign_orders, "extra order"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
