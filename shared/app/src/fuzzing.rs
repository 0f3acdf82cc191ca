//! Test support: bounded random fuzzing of the parsers (unit tests only). Each target feeds its parser seeds that
//! are valid inputs, mutated in random ways (bytes flipped, inserted, deleted, duplicated, spliced from another
//! seed, cut short), for a time budget: `LICENSEWATCH_FUZZ_SECONDS` (1 by default, so the workspace test run stays
//! short; set it higher to fuzz for longer). A panic fails the test, with the input that caused it printed.

use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*): the same seed gives the same inputs.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the parsers give meaning to, worth inserting.
const INTERESTING: [&[u8]; 12] = [
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"\\u0000",
    b"-1",
    b"99999999999999999999",
    b"\xff\xfe",
];

/// One mutation of `input` (other seeds may be spliced in).
pub(crate) fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + rng.below(32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            4 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            5 => out.truncate(at),
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// The time budget of each target.
pub(crate) fn budget() -> Duration {
    let seconds = std::env::var("LICENSEWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds)
}

/// Feeds `target` the seeds, then mutations of them, until the budget is spent; returns how many inputs it ran.
pub(crate) fn run(name: &str, seed: u64, seeds: &[Vec<u8>], target: impl Fn(&[u8])) -> u64 {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut runs = 0u64;
    let mut current: Vec<u8> = Vec::new();
    let report = |input: &[u8]| {
        eprintln!(
            "fuzz {name}: this input panicked ({} bytes): {:?}",
            input.len(),
            String::from_utf8_lossy(input)
        );
    };
    for s in seeds {
        guarded(s, &target, &report);
        runs += 1;
    }
    while started.elapsed() < budget() {
        let base = match (current.is_empty(), seeds.is_empty()) {
            (true, false) => seeds[rng.below(seeds.len())].clone(),
            _ => current.clone(),
        };
        current = mutate(&mut rng, &base, seeds);
        guarded(&current, &target, &report);
        runs += 1;
        // Mutations pile up a few times, then start again from a seed.
        if rng.below(8) == 0 {
            current.clear();
        }
    }
    eprintln!(
        "fuzz {name}: {runs} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    runs
}

fn guarded(input: &[u8], target: &impl Fn(&[u8]), report: &impl Fn(&[u8])) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
    if let Err(panic) = outcome {
        report(input);
        std::panic::resume_unwind(panic);
    }
}

/// Every parser's fuzz target ([`crate::fuzz_targets`], the same the AFL++ project in `fuzz/` runs), over arbitrary
/// bytes from its seeds, within the test run's budget.
#[cfg(test)]
mod targets {
    use super::run;

    fn fuzz(name: &str, seed: u64) {
        let (_, target) = crate::fuzz_targets::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no target {name}"));
        let seeds = crate::fuzz_targets::seeds(name);
        assert!(!seeds.is_empty(), "{name} has seeds");
        run(name, seed, &seeds, target);
    }

    #[test]
    #[should_panic(expected = "found it")]
    fn a_parser_that_panics_fails_the_run() {
        run("a panicking parser", 9, &[b"{}".to_vec()], |b| {
            if b.contains(&b'[') {
                panic!("found it");
            }
        });
    }

    #[test]
    fn every_target_has_seeds_and_a_test() {
        let here = include_str!("fuzzing.rs");
        for (name, _) in crate::fuzz_targets::TARGETS {
            assert!(!crate::fuzz_targets::seeds(name).is_empty(), "{name}");
            assert!(
                here.contains(&format!("fuzz(\"{name}\"")),
                "{name} has no test here"
            );
        }
    }

    #[test]
    fn snapshots_never_panic() {
        fuzz("snapshot", 11);
    }

    #[test]
    fn licence_records_of_both_sources_never_panic() {
        fuzz("audit_records", 2);
    }

    #[test]
    fn management_blobs_never_panic() {
        fuzz("management_blob", 13);
    }

    #[test]
    fn graph_user_pages_and_delta_rounds_never_panic() {
        fuzz("graph_pages", 3);
    }

    #[test]
    fn webhook_bodies_never_panic() {
        fuzz("webhook_body", 14);
    }

    #[test]
    fn webhook_source_bodies_never_panic() {
        fuzz("webhook_source_body", 15);
    }

    #[test]
    fn webhook_signature_headers_never_panic() {
        fuzz("webhook_headers", 4);
    }

    #[test]
    fn notification_batches_never_panic() {
        fuzz("notification_batch", 1);
    }

    #[test]
    fn the_policy_file_never_panics() {
        fuzz("policy", 5);
    }
}
