//! A fresh seed for the session's jitter and lineages.

use std::hash::BuildHasher;
use std::time::Instant;

/// A fresh seed for [`Config::seed`](reauth_core::Config::seed), different for every call,
/// so that many clients do not retry in lockstep and their logins get distinct lineages.
/// Tests fix the seed instead.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ() {
        assert_ne!(super::random_seed(), super::random_seed());
    }
}
