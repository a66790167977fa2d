//! SplitMix64, a small deterministic generator for the tests' random inputs and timings,
//! so a failure replays by seed. Include it with `mod splitmix;` from a test in `tests/`.

#![allow(dead_code)] // each test binary uses its own part

/// SplitMix64 from the seed it is made with: `Rng(seed)`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `0..n`, as an i64.
    pub fn below_i64(&mut self, n: u64) -> i64 {
        i64::try_from(self.below(n)).expect("small")
    }
}
