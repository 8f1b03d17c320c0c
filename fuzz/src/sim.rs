//! `sim`: the multi-session simulator ([`reauth_core::sim`]) on a seed and a few knobs
//! taken from the bytes. libFuzzer then steers seeds towards new coverage of the machine;
//! every rule of the simulator is checked after every step, and a broken one panics with
//! the seed, the step and the last steps.
//!
//! Bytes: 8 for the seed (little-endian, zero-padded), then optional knob bytes: process
//! count (0: from the seed, else `1 + b % 8`), flags (bit 0: the store fails now and
//! then, bit 1: it never does, bit 2: grace window, bit 3: the server takes every call at
//! once, bit 4: the store sends change notifications), steps (`50 + 2 * b`; absent: the
//! simulator's default).

use reauth_core::sim::{run as simulate, SimConfig};

/// The knobs the bytes describe, and the seed.
pub fn decode(data: &[u8]) -> (u64, SimConfig) {
    let mut seed = [0u8; 8];
    let n = data.len().min(8);
    seed[..n].copy_from_slice(&data[..n]);
    let knob = |i: usize| data.get(8 + i).copied();
    let mut config = SimConfig::default();
    config.sessions = knob(0).filter(|&b| b != 0).map(|b| 1 + usize::from(b % 8));
    if let Some(flags) = knob(1) {
        config.store_failures = match flags & 3 {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        };
        config.grace = (flags & 4 != 0).then_some(true);
        config.rotate_at_once = (flags & 8 != 0).then_some(true);
        config.notifications = (flags & 16 != 0).then_some(true);
    }
    config.steps = knob(2).map_or(config.steps, |b| 50 + 2 * usize::from(b));
    (u64::from_le_bytes(seed), config)
}

/// Runs one input; panics on the first broken rule.
pub fn run(data: &[u8]) {
    let (seed, config) = decode(data);
    if let Err(failure) = simulate(seed, config) {
        panic!("{failure}");
    }
}
