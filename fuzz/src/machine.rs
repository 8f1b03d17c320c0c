//! `machine`: arbitrary schedules of inputs to the session, checked after every step by
//! the shared invariant checker ([`Harness`]) that the property tests use.
//!
//! The bytes decode (with `arbitrary`) into a [`MachineInput`]: an optional
//! [`Tweaks`] (absent: [`Harness::default_config`]), whether to log in first, then
//! [`Op`]s until the bytes run out. Each op is applied; a [`Violation`] panics with the
//! step and the op. At the end, [`Harness::finish`] must resolve every waiter.
//!
//! To keep one execution cheap, a schedule holds at most [`MAX_OPS`] ops, most `Begin`s
//! are small (see [`begin_count`]), and it begins at most [`MAX_REQUESTS`] requests in
//! all (a `Begin` past the budget begins fewer).
//!
//! [`Violation`]: reauth_core::check::Violation

use arbitrary::{Arbitrary, Unstructured};
use reauth_core::check::{Harness, Op};
use reauth_core::{Config, OnExhausted};
use std::time::Duration;

/// Most ops per schedule.
pub const MAX_OPS: usize = 256;
/// Most requests begun per schedule.
pub const MAX_REQUESTS: u32 = 3_000;

/// Variations of [`Harness::default_config`]: those of the property test (`seed`,
/// attempts, exhaustion policy, refresh token required, leeway, stale window) plus the
/// timeouts and the backoff schedule, zero included.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Tweaks {
    /// Jitter seed.
    pub seed: u64,
    /// `max_attempts = attempts % 7` (0 is treated as 1 by the core).
    pub attempts: u8,
    /// `OnExhausted::LogOut` if true.
    pub log_out: bool,
    /// `requires_refresh_token`.
    pub requires_refresh_token: bool,
    /// `leeway = leeway_secs % 20` seconds.
    pub leeway_secs: u8,
    /// `refresh_window = window_secs % 40` seconds.
    pub window_secs: u8,
    /// `refresh_timeout = refresh_timeout_ms % 60_001` ms.
    pub refresh_timeout_ms: u16,
    /// `waiter_timeout = waiter_timeout_ms % 120_001` ms.
    pub waiter_timeout_ms: u32,
    /// `backoff.base = base_ms % 5_001` ms.
    pub base_ms: u16,
    /// `backoff.cap = cap_ms % 60_001` ms.
    pub cap_ms: u32,
    /// `backoff.max_retry_after = max_retry_after_ms % 600_001` ms.
    pub max_retry_after_ms: u32,
}

impl Tweaks {
    /// The configuration these tweaks describe.
    pub fn config(&self) -> Config {
        let mut c = Harness::default_config();
        c.seed = self.seed;
        c.backoff.max_attempts = u32::from(self.attempts % 7);
        c.on_exhausted = if self.log_out {
            OnExhausted::LogOut
        } else {
            OnExhausted::KeepSession
        };
        c.requires_refresh_token = self.requires_refresh_token;
        c.leeway = Duration::from_secs(u64::from(self.leeway_secs % 20));
        c.refresh_window = Duration::from_secs(u64::from(self.window_secs % 40));
        c.refresh_timeout = Duration::from_millis(u64::from(self.refresh_timeout_ms % 60_001));
        c.waiter_timeout = Duration::from_millis(u64::from(self.waiter_timeout_ms % 120_001));
        c.backoff.base = Duration::from_millis(u64::from(self.base_ms % 5_001));
        c.backoff.cap = Duration::from_millis(u64::from(self.cap_ms % 60_001));
        c.backoff.max_retry_after =
            Duration::from_millis(u64::from(self.max_retry_after_ms % 600_001));
        c
    }
}

/// Most `Begin` ops begin a few requests (`raw % 9`); one in eight, those with the three
/// top bits set, is a storm of up to [`Harness::MAX_BEGIN`] (`raw & 0x1FFF`, capped).
/// Uniform counts would make nearly every op a storm and every execution slow.
pub fn begin_count(raw: u16) -> u16 {
    if raw & STORM == STORM {
        (raw & !STORM).min(Harness::MAX_BEGIN)
    } else {
        raw % 9
    }
}

/// The bits that mark a storm in a raw `Begin` count.
pub const STORM: u16 = 0xE000;

/// One decoded schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInput {
    /// `None`: [`Harness::default_config`].
    pub tweaks: Option<Tweaks>,
    /// Log in (600 s token with a refresh token) before the ops.
    pub login_first: bool,
    /// The schedule.
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for MachineInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let tweaks = u.arbitrary()?;
        let login_first = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(match u.arbitrary()? {
                Op::Begin { count } => Op::Begin {
                    count: begin_count(count),
                },
                other => other,
            });
        }
        Ok(Self {
            tweaks,
            login_first,
            ops,
        })
    }
}

/// Runs one schedule; panics on the first broken invariant.
pub fn check(input: &MachineInput) {
    let config = input
        .tweaks
        .as_ref()
        .map_or_else(Harness::default_config, Tweaks::config);
    let mut h = Harness::new(config);
    if input.login_first {
        let login = Op::Login {
            lifetime_secs: Some(600),
            refresh_token: true,
        };
        h.apply(&login)
            .unwrap_or_else(|v| panic!("{v} (on the first login)"));
    }
    let mut budget = MAX_REQUESTS;
    for (step, op) in input.ops.iter().enumerate() {
        let op = match *op {
            Op::Begin { count } => {
                let count = count
                    .min(Harness::MAX_BEGIN)
                    .min(u16::try_from(budget).unwrap_or(u16::MAX));
                budget -= u32::from(count);
                Op::Begin { count }
            }
            ref other => other.clone(),
        };
        if let Err(v) = h.apply(&op) {
            panic!("{v} (at step {step}: {op:?})");
        }
    }
    if let Err(v) = h.finish() {
        panic!("{v} (at the end)");
    }
}

/// The fuzz target: decode, then [`check`].
pub fn run(data: &[u8]) {
    if let Ok(input) = MachineInput::arbitrary_take_rest(Unstructured::new(data)) {
        check(&input);
    }
}

/// Writes schedules as bytes that decode back to them, for the seed corpus.
pub mod encode {
    use super::{MachineInput, Tweaks};
    use reauth_core::check::Op;

    /// The number of `Op` variants, in declaration order.
    const OP_VARIANTS: u64 = 13;

    fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
        // arbitrary picks variant `(u32 * count) >> 32`: the smallest u32 that maps to
        // `index` is ceil(index * 2^32 / count).
        let x = u32::try_from((index << 32).div_ceil(count)).expect("index < count");
        out.extend_from_slice(&x.to_le_bytes());
    }

    fn flag(out: &mut Vec<u8>, b: bool) {
        out.push(u8::from(b));
    }

    fn option_u16(out: &mut Vec<u8>, v: Option<u16>) {
        flag(out, v.is_some());
        if let Some(v) = v {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// One op.
    pub fn op(out: &mut Vec<u8>, op: &Op) {
        match *op {
            Op::Begin { count } => {
                variant(out, 0, OP_VARIANTS);
                let raw = if count < 9 {
                    count
                } else {
                    count | super::STORM
                };
                assert_eq!(super::begin_count(raw), count, "not encodable");
                out.extend_from_slice(&raw.to_le_bytes());
            }
            Op::BeginForeign => variant(out, 1, OP_VARIANTS),
            Op::Respond { pick, status } => {
                variant(out, 2, OP_VARIANTS);
                out.extend_from_slice(&pick.to_le_bytes());
                out.push(status);
            }
            Op::RespondAll { unauthorized } => {
                variant(out, 3, OP_VARIANTS);
                flag(out, unauthorized);
            }
            Op::RefreshOk {
                stale,
                lifetime_secs,
                rotate,
            } => {
                variant(out, 4, OP_VARIANTS);
                out.push(stale);
                option_u16(out, lifetime_secs);
                flag(out, rotate);
            }
            Op::RefreshTransient {
                stale,
                retry_after_ms,
            } => {
                variant(out, 5, OP_VARIANTS);
                out.push(stale);
                option_u16(out, retry_after_ms);
            }
            Op::RefreshPermanent { stale } => {
                variant(out, 6, OP_VARIANTS);
                out.push(stale);
            }
            Op::Cancel { pick } => {
                variant(out, 7, OP_VARIANTS);
                out.extend_from_slice(&pick.to_le_bytes());
            }
            Op::Advance { millis } => {
                variant(out, 8, OP_VARIANTS);
                out.extend_from_slice(&millis.to_le_bytes());
            }
            Op::AdvanceToDeadline => variant(out, 9, OP_VARIANTS),
            Op::Logout => variant(out, 10, OP_VARIANTS),
            Op::Login {
                lifetime_secs,
                refresh_token,
            } => {
                variant(out, 11, OP_VARIANTS);
                option_u16(out, lifetime_secs);
                flag(out, refresh_token);
            }
            Op::Invalidate { stale } => {
                variant(out, 12, OP_VARIANTS);
                flag(out, stale);
            }
        }
    }

    fn tweaks(out: &mut Vec<u8>, t: &Tweaks) {
        out.extend_from_slice(&t.seed.to_le_bytes());
        out.push(t.attempts);
        flag(out, t.log_out);
        flag(out, t.requires_refresh_token);
        out.push(t.leeway_secs);
        out.push(t.window_secs);
        out.extend_from_slice(&t.refresh_timeout_ms.to_le_bytes());
        out.extend_from_slice(&t.waiter_timeout_ms.to_le_bytes());
        out.extend_from_slice(&t.base_ms.to_le_bytes());
        out.extend_from_slice(&t.cap_ms.to_le_bytes());
        out.extend_from_slice(&t.max_retry_after_ms.to_le_bytes());
    }

    /// A whole schedule.
    pub fn input(input: &MachineInput) -> Vec<u8> {
        let mut out = Vec::new();
        flag(&mut out, input.tweaks.is_some());
        if let Some(t) = &input.tweaks {
            tweaks(&mut out, t);
        }
        flag(&mut out, input.login_first);
        for o in &input.ops {
            op(&mut out, o);
        }
        out
    }
}
