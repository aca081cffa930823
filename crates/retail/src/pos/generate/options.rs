//! What to generate and what was generated.

use chrono::{Datelike, NaiveDate};

use super::SimulatedCampaign;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of customers (each buys at least once).
    pub customers: u64,
    /// Number of products in the catalog.
    pub products: u32,
    /// First day of the period.
    pub start_date: NaiveDate,
    /// Length of the period in days.
    pub days: u32,
    /// RNG seed.
    pub seed: u64,
    /// Extra malformed lines in the transactions file.
    pub malformed_rows: u32,
    /// Approximate number of transaction lines (see the module docs); `None` = natural rates.
    pub target_lines: Option<u64>,
    /// Simulated campaigns with a known uplift (see the module docs); none by default.
    pub campaigns: Vec<SimulatedCampaign>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            customers: 5000,
            products: 500,
            start_date: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default(),
            days: 730,
            seed: 42,
            malformed_rows: 6,
            target_lines: None,
            campaigns: Vec::new(),
        }
    }
}

impl GenerateOptions {
    /// Checks the options are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.customers == 0 || self.customers > 100_000_000 {
            return Err(format!(
                "customers must be 1..=100000000, not {}",
                self.customers
            ));
        }
        if self.products == 0 || self.products > 10_000_000 {
            return Err(format!(
                "products must be 1..=10000000, not {}",
                self.products
            ));
        }
        if self.days == 0 || self.days > 36_600 {
            return Err(format!("days must be 1..=36600, not {}", self.days));
        }
        let last = self
            .start_date
            .checked_add_days(chrono::Days::new(u64::from(self.days)));
        if !(1..=9999).contains(&self.start_date.year())
            || last.is_none_or(|d| !(1..=9999).contains(&d.year()))
        {
            return Err("the period must lie within the years 1 to 9999".into());
        }
        if self.campaigns.len() > 1000 {
            return Err(format!(
                "at most 1000 campaigns, not {}",
                self.campaigns.len()
            ));
        }
        for c in &self.campaigns {
            c.validate()?;
        }
        Ok(())
    }
}

/// Counts of what [`write_transactions`](super::write_transactions) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenerateStats {
    /// Customers simulated.
    pub customers: u64,
    /// Orders written.
    pub orders: u64,
    /// Valid transaction lines written (sales and returns; header and malformed excluded).
    pub lines: u64,
    /// Return lines among `lines`.
    pub returns: u64,
    /// Malformed lines written.
    pub malformed: u64,
    /// Simulated campaigns: treated customers, summed over the campaigns.
    pub campaign_treated: u64,
    /// Simulated campaigns: control customers, summed over the campaigns.
    pub campaign_control: u64,
    /// Simulated campaigns: extra orders written (included in `orders`).
    pub campaign_orders: u64,
}
