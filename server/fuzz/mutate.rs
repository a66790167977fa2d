//! Frame mutations for the protocol fuzzer: bit flips, interesting integers written over
//! length and count fields, insertions, deletions, truncation, splices of two seeds, and a
//! new API key or version. A small xorshift generator keeps a run reproducible from its seed.
#![allow(dead_code)]

/// xorshift64*: enough randomness for mutation, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_I32: &[i32] = &[
    -1,
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x0100_0000,
    1_000_000,
    1_000_001,
    i32::MAX,
    i32::MIN,
    -2,
    100 << 20,
];

/// One mutated frame (without size prefix) from `seeds`.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], apis: &[(i16, i16, i16)]) -> Vec<u8> {
    let mut frame = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = frame.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                frame[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                frame[i] = [0u8, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_I32[rng.below(INTERESTING_I32.len())];
                frame[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if len >= 2 => {
                let i = rng.below(len - 1);
                let v = INTERESTING_I32[rng.below(INTERESTING_I32.len())] as i16;
                frame[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                frame.splice(i..i, bytes);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                frame.drain(i..i + n);
            }
            6 if len > 8 => {
                let cut = 8 + rng.below(len - 8);
                frame.truncate(cut);
            }
            7 => {
                let other = &seeds[rng.below(seeds.len())];
                if other.len() > 8 && len > 8 {
                    let from = 8 + rng.below(other.len() - 8);
                    let at = 8 + rng.below(len - 8);
                    frame.truncate(at);
                    frame.extend_from_slice(&other[from..]);
                }
            }
            8 if len >= 4 => {
                // Another API at one of its versions, keeping the rest of the frame.
                let (key, min, max) = apis[rng.below(apis.len())];
                let version = min + rng.below((max - min + 1) as usize) as i16;
                frame[0..2].copy_from_slice(&key.to_be_bytes());
                frame[2..4].copy_from_slice(&version.to_be_bytes());
            }
            _ if len > 4 => {
                // An unsigned varint of a compact length set to a huge value.
                let i = rng.below(len);
                frame[i] = 0xff;
                if i + 1 < len {
                    frame[i + 1] = 0xff;
                }
            }
            _ => {}
        }
    }
    frame
}

/// Reads every `*.bin` seed in `dir`.
pub fn load_seeds(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            std::fs::read(e.path()).ok().map(|b| (name, b))
        })
        .collect();
    seeds.sort();
    seeds.into_iter().map(|(_, b)| b).collect()
}
