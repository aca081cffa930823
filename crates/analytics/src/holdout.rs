//! Holdout (control group) assignment: whether a customer is held out of a campaign.
//!
//! The choice is a pure function of the campaign's key and the customer id, so it is the same
//! in every run, every resume and every program that computes it (the sample-data generator
//! simulates campaigns with it). The hash is 64-bit FNV-1a over the key, a zero byte and the
//! id, finished by the SplitMix64 mixer (Steele, Lea & Flood 2014); its top 53 bits make a
//! uniform number in [0, 1) that is compared with the share. Do not change it: that would
//! move customers between groups of campaigns already running.
//!
//! Growing the share only adds customers to the control group (a customer held out at 5% is
//! held out at 10%), so the groups stay nested when a team adjusts it.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A uniform number in [0, 1) fixed by the campaign key and the customer id.
pub fn draw(campaign_key: &str, customer_id: &str) -> f64 {
    let mut h = FNV_OFFSET;
    for b in campaign_key
        .bytes()
        .chain(std::iter::once(0))
        .chain(customer_id.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64's finaliser: FNV-1a alone leaves the high bits poorly mixed for short ids.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the customer is in the campaign's control group when `share` (0 to 1) of the
/// customers are held out.
pub fn is_control(campaign_key: &str, customer_id: &str, share: f64) -> bool {
    draw(campaign_key, customer_id) < share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assignment_is_fixed_by_key_and_id() {
        // Pinned values: a change of the hash would silently regroup running campaigns.
        assert_eq!(
            draw("campaign_vip", "C00001"),
            draw("campaign_vip", "C00001")
        );
        let pinned = [
            draw("campaign_vip", "C00001"),
            draw("campaign_vip", "C00002"),
            draw("campaign_new", "C00001"),
        ];
        let expected = [PINNED_0, PINNED_1, PINNED_2];
        for (got, want) in pinned.iter().zip(expected) {
            assert_eq!(got.to_bits(), want.to_bits(), "{got} vs {want}");
        }
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(draw("ab", "c"), draw("a", "bc"));
    }

    const PINNED_0: f64 = 0.0959719231747046;
    const PINNED_1: f64 = 0.4602452008509095;
    const PINNED_2: f64 = 0.24059052565349026;

    #[test]
    fn the_share_held_out_matches_the_requested_share_and_groups_nest() {
        let ids: Vec<String> = (0..100_000).map(|i| format!("C{i:06}")).collect();
        for (key, share) in [("campaign_vip", 0.1), ("campaign_new", 0.25), ("x", 0.5)] {
            let held = ids.iter().filter(|id| is_control(key, id, share)).count();
            let expected = share * ids.len() as f64;
            // Binomial standard deviation is at most 158 here; 5 of them is far outside chance.
            assert!(
                (held as f64 - expected).abs() < 800.0,
                "{key}: {held} held out, expected about {expected}"
            );
        }
        for id in ids.iter().take(10_000) {
            if is_control("k", id, 0.05) {
                assert!(is_control("k", id, 0.10), "{id}");
            }
        }
        // Different campaigns draw independent groups: about share² overlap.
        let both = ids
            .iter()
            .filter(|id| is_control("a", id, 0.1) && is_control("b", id, 0.1))
            .count();
        assert!((500..1_500).contains(&both), "{both}");
        assert!(ids.iter().all(|id| !is_control("k", id, 0.0)));
        assert!(ids.iter().all(|id| is_control("k", id, 1.0)));
    }
}
