//! Square money: `{amount, currency}` with `amount` an integer in the currency's smallest unit.

/// Digits after the decimal point of an ISO 4217 currency (its minor-unit exponent): 0 for the
/// zero-decimal currencies (JPY, KRW, ...), 3 for BHD, KWD, ..., 2 otherwise.
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `amount` minor units of `currency` in major units (1999 USD → 19.99, 1999 JPY → 1999).
pub fn major(amount: i64, currency: &str) -> f64 {
    // Integer division first keeps values exact up to 2^53 minor units.
    let scale = 10i64.pow(exponent(currency));
    let (whole, frac) = (amount / scale, amount % scale);
    whole as f64 + frac as f64 / scale as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_by_currency() {
        assert_eq!(major(1999, "USD"), 19.99);
        assert_eq!(major(-250, "EUR"), -2.5);
        assert_eq!(major(1999, "JPY"), 1999.0);
        assert_eq!(major(1500, "KWD"), 1.5);
        assert_eq!(major(0, "GBP"), 0.0);
    }
}
