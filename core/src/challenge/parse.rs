//! The RFC 9110 section 11.6.1 challenge grammar:
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! Commas separate both challenges and parameters, so after a comma one token of
//! lookahead decides: `name =` continues the parameters, anything else starts a new
//! challenge. Every step consumes input or fails, so the parser is linear and cannot loop.

/// Longest header value parsed, in bytes. Real challenges are a few hundred bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most challenges parsed from one header value.
pub const MAX_CHALLENGES: usize = 16;
/// Most auth-params parsed from one header value (all challenges together).
pub const MAX_PARAMS: usize = 64;

/// One challenge: a scheme and either a token68 or a list of parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The auth-scheme as sent; compare it case-insensitively.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The token68 form's value, if the challenge uses it.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// The parameters in order, names lower-cased (they are case-insensitive), values
    /// unquoted and unescaped. Repeated names are kept.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The first value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a `WWW-Authenticate` value could not be parsed. The input is never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The value exceeds [`MAX_VALUE_LEN`].
    #[error("the challenge header is longer than {limit} bytes")]
    TooLong {
        /// The cap, in bytes.
        limit: usize,
    },
    /// More than [`MAX_CHALLENGES`] challenges or [`MAX_PARAMS`] parameters.
    #[error("the challenge header holds too many challenges or parameters")]
    TooMany,
    /// The grammar is broken at this byte offset.
    #[error("invalid challenge syntax at byte {position}")]
    Syntax {
        /// Zero-based byte offset.
        position: usize,
    },
}

/// Parses one `WWW-Authenticate` field value into its challenges, in order. Empty list
/// elements (`, ,`) are skipped, as RFC 9110 section 5.6.1 asks. Strict otherwise: any
/// syntax error fails the whole value.
///
/// ```
/// use reauth_core::challenge::parse_challenges;
///
/// let list = parse_challenges(
///     r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
/// )?;
/// assert_eq!(list.len(), 2);
/// assert_eq!(list[0].param("TITLE"), Some(r#"Login to "apps""#));
/// assert_eq!(list[1].scheme(), "Basic");
/// # Ok::<(), reauth_core::challenge::ChallengeError>(())
/// ```
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, ChallengeError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ChallengeError::TooLong {
            limit: MAX_VALUE_LEN,
        });
    }
    let mut p = Parser {
        s: value.as_bytes(),
        pos: 0,
        params: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_separators();
        if p.at_end() {
            return Ok(out);
        }
        if out.len() == MAX_CHALLENGES {
            return Err(ChallengeError::TooMany);
        }
        out.push(p.challenge()?);
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    params: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn error(&self) -> ChallengeError {
        ChallengeError::Syntax { position: self.pos }
    }

    /// Skips spaces and tabs; true if any were skipped.
    fn skip_ows(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips whitespace and commas (empty list elements).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    /// Length of the run of bytes matching `f` at `from`.
    fn run(&self, from: usize, f: fn(u8) -> bool) -> usize {
        self.s
            .get(from..)
            .map_or(0, |rest| rest.iter().take_while(|b| f(**b)).count())
    }

    fn token(&mut self) -> Result<String, ChallengeError> {
        let len = self.run(self.pos, is_tchar);
        if len == 0 {
            return Err(self.error());
        }
        let token = ascii(&self.s[self.pos..self.pos + len]);
        self.pos += len;
        Ok(token)
    }

    fn challenge(&mut self) -> Result<Challenge, ChallengeError> {
        let mut challenge = Challenge {
            scheme: self.token()?,
            token68: None,
            params: Vec::new(),
        };
        let spaced = self.skip_ows();
        if self.at_end() || self.peek() == Some(b',') {
            return Ok(challenge);
        }
        if !spaced {
            return Err(self.error());
        }
        if let Some(token68) = self.token68() {
            challenge.token68 = Some(token68);
            return Ok(challenge);
        }
        loop {
            let param = self.param()?;
            challenge.params.push(param);
            self.skip_ows();
            if self.at_end() {
                return Ok(challenge);
            }
            if self.peek() != Some(b',') {
                return Err(self.error());
            }
            // A comma: more parameters, or the next challenge?
            let before = self.pos;
            self.skip_separators();
            if self.at_end() {
                return Ok(challenge);
            }
            if !self.param_ahead() {
                self.pos = before;
                return Ok(challenge);
            }
        }
    }

    /// A token68 that ends the challenge (followed by the end or a comma), or nothing.
    fn token68(&mut self) -> Option<String> {
        let start = self.pos;
        let chars = self.run(start, is_token68_char);
        if chars == 0 {
            return None;
        }
        let end = start + chars + self.run(start + chars, |b| b == b'=');
        self.pos = end;
        self.skip_ows();
        if self.at_end() || self.peek() == Some(b',') {
            Some(ascii(&self.s[start..end]))
        } else {
            self.pos = start;
            None
        }
    }

    /// True if `token BWS "="` starts here.
    fn param_ahead(&self) -> bool {
        let name = self.run(self.pos, is_tchar);
        let mut at = self.pos + name;
        while matches!(self.s.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        name > 0 && self.s.get(at) == Some(&b'=')
    }

    fn param(&mut self) -> Result<(String, String), ChallengeError> {
        if self.params == MAX_PARAMS {
            return Err(ChallengeError::TooMany);
        }
        self.params += 1;
        let name = self.token()?.to_ascii_lowercase();
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(self.error());
        }
        self.pos += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.token()?
        };
        Ok((name, value))
    }

    /// A quoted-string, unescaped. Control characters other than tab are refused;
    /// non-ASCII (obs-text) is kept.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(ChallengeError::Syntax { position: open });
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    // Only ASCII backslashes were removed, so this is still UTF-8.
                    return String::from_utf8(out).map_err(|_| self.error());
                }
                b'\\' => {
                    let Some(escaped) = self.s.get(self.pos + 1).copied() else {
                        return Err(ChallengeError::Syntax { position: open });
                    };
                    if escaped != b'\t' && escaped.is_ascii_control() {
                        return Err(ChallengeError::Syntax {
                            position: self.pos + 1,
                        });
                    }
                    out.push(escaped);
                    self.pos += 2;
                }
                b if b != b'\t' && b.is_ascii_control() => return Err(self.error()),
                b => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }
}

/// Text of an ASCII-only slice (tokens are ASCII by construction).
fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
