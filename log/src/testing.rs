//! Helpers for tests of sluice and of apps built on it. [`proptest_cases`] is the one place a
//! property test gets its case count, so `PROPTEST_CASES=5000 make test` turns every property
//! of the workspace (and of a user's own tests that call it) into a soak.
//!
//! ```
//! // proptest! { #![proptest_config(ProptestConfig::with_cases(proptest_cases(64)))] ... }
//! let cases = sluice_log::testing::proptest_cases(64);
//! assert!(cases >= 1);
//! ```

/// The number of cases a property runs: the `PROPTEST_CASES` environment variable when it is
/// set to a positive integer, else `default` (at least 1).
pub fn proptest_cases(default: u32) -> u32 {
    cases_from(std::env::var("PROPTEST_CASES").ok().as_deref(), default)
}

fn cases_from(env: Option<&str>, default: u32) -> u32 {
    env.and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::cases_from;

    #[test]
    fn the_environment_wins_when_it_is_a_positive_integer() {
        assert_eq!(cases_from(Some("5000"), 64), 5000);
        assert_eq!(cases_from(Some(" 12 "), 64), 12);
        assert_eq!(cases_from(None, 64), 64);
        assert_eq!(cases_from(Some("lots"), 64), 64);
        assert_eq!(cases_from(Some("0"), 64), 64);
        assert_eq!(cases_from(None, 0), 1);
    }
}
