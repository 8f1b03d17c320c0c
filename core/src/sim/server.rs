//! The simulated authorization server and API: refresh-token rotation per login family,
//! reuse detection, an optional grace window, access tokens with a lifetime that the
//! server can revoke, and a mode that refuses every token of a family for a while.

use crate::error::{RefreshError, RefreshErrorKind};
use crate::token::{AccessToken, RefreshToken, TokenSet};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One login's chain of refresh tokens.
#[derive(Debug)]
pub(crate) struct Family {
    /// The refresh token that is live now.
    pub(crate) current: String,
    /// Each rotated refresh token, with the one it was rotated to and when.
    rotated: BTreeMap<String, (String, Instant)>,
    pub(crate) revoked: bool,
    /// Until then the API refuses every access token of the family.
    pub(crate) refuse_until: Option<Instant>,
    /// When the current refusal began.
    pub(crate) refusing_since: Instant,
}

#[derive(Debug)]
struct Access {
    family: usize,
    expires: Option<Instant>,
    revoked: bool,
}

/// What one refresh call did at the server.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) outcome: Result<TokenSet, RefreshError>,
    /// The family and the refresh token this call rotated away, if it rotated.
    pub(crate) rotated: Option<(usize, String)>,
    /// The call presented an already rotated token: the family is revoked.
    pub(crate) reuse: bool,
}

#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) families: Vec<Family>,
    refresh_family: BTreeMap<String, usize>,
    access: BTreeMap<String, Access>,
    minted: u64,
    pub(crate) lifetime: Option<Duration>,
    grace: Option<Duration>,
    /// A rotation also revokes the family's older access tokens.
    revoke_on_rotation: bool,
    pub(crate) reuse_detections: u64,
}

fn invalid_grant() -> RefreshError {
    RefreshError::permanent(RefreshErrorKind::OAuth {
        code: "invalid_grant".into(),
    })
}

impl Server {
    pub(crate) fn new(
        lifetime: Option<Duration>,
        grace: Option<Duration>,
        revoke_on_rotation: bool,
    ) -> Self {
        Self {
            families: Vec::new(),
            refresh_family: BTreeMap::new(),
            access: BTreeMap::new(),
            minted: 0,
            lifetime,
            grace,
            revoke_on_rotation,
            reuse_detections: 0,
        }
    }

    fn mint(&mut self, family: usize, now: Instant) -> (String, String) {
        self.minted += 1;
        let n = self.minted;
        let access = format!("at{n}.f{family}");
        self.access.insert(
            access.clone(),
            Access {
                family,
                expires: self.lifetime.and_then(|l| now.checked_add(l)),
                revoked: false,
            },
        );
        let refresh = format!("rt{n}.f{family}");
        self.refresh_family.insert(refresh.clone(), family);
        (access, refresh)
    }

    fn set(&self, access: &str, refresh: &str) -> TokenSet {
        let mut set = TokenSet::new(AccessToken::new(access).expect("visible ASCII"))
            .with_refresh_token(RefreshToken::new(refresh).expect("visible ASCII"));
        if let Some(l) = self.lifetime {
            set = set.with_expires_in(l);
        }
        set
    }

    /// A login: a new family and its first tokens.
    pub(crate) fn login(&mut self, now: Instant) -> (usize, TokenSet) {
        let family = self.families.len();
        let (access, refresh) = self.mint(family, now);
        self.families.push(Family {
            current: refresh.clone(),
            rotated: BTreeMap::new(),
            revoked: false,
            refuse_until: None,
            refusing_since: now,
        });
        (family, self.set(&access, &refresh))
    }

    /// The family an access or refresh token was minted for.
    pub(crate) fn family_of_access(&self, access: &str) -> Option<usize> {
        self.access.get(access).map(|a| a.family)
    }

    pub(crate) fn family_of_refresh(&self, refresh: &str) -> Option<usize> {
        self.refresh_family.get(refresh).copied()
    }

    /// A refresh call presenting `presented`, processed at `now`.
    pub(crate) fn refresh(&mut self, presented: &str, now: Instant) -> Answer {
        let refused = |reuse| Answer {
            outcome: Err(invalid_grant()),
            rotated: None,
            reuse,
        };
        let Some(f) = self.family_of_refresh(presented) else {
            return refused(false);
        };
        if self.families[f].revoked {
            return refused(false);
        }
        if self.families[f].current != presented {
            let (child, at) = self.families[f].rotated[presented].clone();
            let in_grace = self
                .grace
                .is_some_and(|g| now.saturating_duration_since(at) <= g);
            if in_grace && child == self.families[f].current {
                // The previous token is still honoured: the same refresh token, a new
                // access token.
                let (access, _) = self.mint(f, now);
                return Answer {
                    outcome: Ok(self.set(&access, &child)),
                    rotated: None,
                    reuse: false,
                };
            }
            self.reuse_detections += 1;
            self.revoke_family(f);
            return refused(true);
        }
        let (access, refresh) = self.mint(f, now);
        if self.revoke_on_rotation {
            self.revoke_access(f);
            if let Some(a) = self.access.get_mut(&access) {
                a.revoked = false;
            }
        }
        let family = &mut self.families[f];
        family
            .rotated
            .insert(presented.to_owned(), (refresh.clone(), now));
        family.current = refresh.clone();
        Answer {
            outcome: Ok(self.set(&access, &refresh)),
            rotated: Some((f, presented.to_owned())),
            reuse: false,
        }
    }

    /// Revokes every access token of family `f` issued so far.
    pub(crate) fn revoke_access(&mut self, f: usize) {
        for a in self.access.values_mut().filter(|a| a.family == f) {
            a.revoked = true;
        }
    }

    /// Revokes the whole family: refresh tokens and access tokens.
    pub(crate) fn revoke_family(&mut self, f: usize) {
        self.families[f].revoked = true;
        self.revoke_access(f);
    }

    /// True if the API accepts `access` at `now`.
    pub(crate) fn accepts(&self, access: &str, now: Instant) -> bool {
        let Some(a) = self.access.get(access) else {
            return false;
        };
        let family = &self.families[a.family];
        !a.revoked
            && !family.revoked
            && a.expires.is_none_or(|at| at > now)
            && family.refuse_until.is_none_or(|until| now >= until)
    }

    /// The API refuses every token of family `f` for `d` from `now` on (or longer, if it
    /// already does).
    pub(crate) fn refuse(&mut self, f: usize, now: Instant, d: Duration) {
        if !self.refusing(f, now) {
            self.families[f].refusing_since = now;
        }
        let until = now.checked_add(d).unwrap_or(now);
        let family = &mut self.families[f];
        family.refuse_until = family.refuse_until.max(Some(until));
    }

    /// True if the API refuses every token of family `f` at `now`.
    pub(crate) fn refusing(&self, f: usize, now: Instant) -> bool {
        self.families[f]
            .refuse_until
            .is_some_and(|until| now < until)
    }
}
