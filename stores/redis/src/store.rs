//! [`RedisStore`] and its builder: keys, the connection, and the four store primitives.

use crate::codec::{self, Bad};
use crate::scripts;
use crate::watch::Watchers;
use crate::RedisStoreError;
use reauth_core::{Changed, Expect, Lease, LeaseId, Lineage, Record, StoreError, Swap, TokenStore};
use redis::{Connection, ConnectionLike, RedisResult, Value};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// What each operation is called in errors.
pub(crate) const OP_READ: &str = "reading the record";
pub(crate) const OP_WRITE: &str = "writing the record";
pub(crate) const OP_LEASE: &str = "taking the lease";
pub(crate) const OP_RELEASE: &str = "giving the lease back";

/// Used when none is configured: a Redis on the same network answers in well under this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// As above, for each command's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A lease is kept at least this long (`PX 0` is an error) and at most [`LONGEST_LEASE`].
const SHORTEST_LEASE: Duration = Duration::from_millis(1);
const LONGEST_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Keeps the session record in Redis, so that processes on any number of machines share
/// one login and refresh it once per expiry.
///
/// - **Keys**: the record is the hash `<prefix><session>:record`, the refresh lease the
///   string `<prefix><session>:lease`. The prefix (default `reauth:`) keeps applications
///   and tenants sharing one Redis apart; end it with a separator of your choosing.
/// - **The record** is a hash of its fields (lineage, version, the tokens or a tombstone;
///   the layout is in the [crate docs](crate#the-record)). Every field is checked on read.
/// - **Compare-and-swap** runs as one Lua script: it compares the stored lineage and
///   version with the expected ones and writes the whole record, or returns what is
///   there. Redis runs a script atomically, so no writer anywhere slips in between; and
///   unlike `WATCH`/`MULTI` it needs one round trip and no retry loop.
/// - **The lease** is `SET <lease> <random owner> NX PX <ttl>`; it is given back by a
///   compare-and-delete script, so only its owner can. Redis expires it when the holder
///   dies or hangs; a holder that overran it cannot overwrite newer tokens, because its
///   write expects the version it read (the version is the fence).
/// - **Connections** are redis-rs's. Blocking calls share one connection, opened on first
///   use with the connect timeout, every answer bounded by the response timeout; a
///   connection that failed is dropped and the next call opens a new one, and a kept
///   connection found dead (Redis restarted) is replaced once at once, within the same
///   call. Awaited calls (feature `tokio`, the async adapters) go through redis-rs's
///   `ConnectionManager` with the same timeouts, which reconnects by itself.
/// - **Redis away** (down, unreachable, slow): every call fails with
///   [`RedisStoreError::Unavailable`] (kind [`Io`](reauth_core::StoreErrorKind::Io)) within
///   the timeouts. The session reports [`StoreFailed`](reauth_core::Event::StoreFailed),
///   keeps its tokens in memory and refreshes single-flight within its process; nothing is
///   logged out because Redis is away.
///
/// Errors and `Debug` never show token text or the password.
///
/// ```no_run
/// use reauth_redis::{redis, RedisStore};
/// use std::time::Duration;
///
/// let store = RedisStore::builder(redis::Client::open("redis://10.0.0.5:6379/")?, "billing-api")
///     .prefix("myapp:")
///     .response_timeout(Duration::from_millis(500))
///     .connect()?; // fails at once with a typed error if Redis is not there
/// assert_eq!(store.record_key(), "myapp:billing-api:record");
/// // Hand it to a client: `reauth::reqwest::Client::builder(..).store(store)`.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisStore {
    client: redis::Client,
    addr: String,
    record_key: String,
    aside_key: String,
    lease_key: String,
    channel: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    connection: Mutex<Option<Connection>>,
    #[cfg(feature = "tokio")]
    awaited: crate::tokio::Awaited,
    watchers: Watchers,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address only: the connection info holds the password.
        f.debug_struct("RedisStore")
            .field("addr", &self.addr)
            .field("record_key", &self.record_key)
            .field("lease_key", &self.lease_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisStore`]; made by [`RedisStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    client: redis::Client,
    session: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `reauth:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long opening a connection (and its handshake) may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each answer may take (default 1 s). A script that ran out of it may
    /// still have run: the record's version tells, and the session copes either way.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The store, connecting on first use: a client built with it while Redis is away
    /// starts without tokens and says why (its `store_load_error`), and takes up the
    /// fleet's login from the change notification once Redis is back (or its own, if
    /// it logs in first).
    pub fn build(self) -> RedisStore {
        let key = |suffix: &str| format!("{}{}:{suffix}", self.prefix, self.session);
        RedisStore {
            addr: self.client.get_connection_info().addr().to_string(),
            record_key: key("record"),
            aside_key: key("record:corrupt"),
            lease_key: key("lease"),
            channel: key("changed"),
            client: self.client,
            connect_timeout: non_zero(self.connect_timeout),
            response_timeout: non_zero(self.response_timeout),
            connection: Mutex::new(None),
            #[cfg(feature = "tokio")]
            awaited: crate::tokio::Awaited::default(),
            watchers: Watchers::default(),
        }
    }

    /// The store, connected now: a typed error if Redis cannot be reached, for programs
    /// that would rather not start without it.
    pub fn connect(self) -> Result<RedisStore, RedisStoreError> {
        let store = self.build();
        store.ping()?;
        Ok(store)
    }
}

/// redis-rs and the OS read a zero timeout as none at all.
fn non_zero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

impl RedisStore {
    /// A builder for the store of session `session` on the Redis `client` connects to.
    /// Every process and machine that shares the login uses the same session name (and
    /// prefix).
    pub fn builder(client: redis::Client, session: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            client,
            session: session.into(),
            prefix: "reauth:".to_owned(),
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
        }
    }

    /// The key of the record hash.
    pub fn record_key(&self) -> &str {
        &self.record_key
    }

    /// The key of the refresh lease.
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn awaited(&self) -> &crate::tokio::Awaited {
        &self.awaited
    }

    /// Asks Redis for an answer: an error if it is not there.
    pub fn ping(&self) -> Result<(), RedisStoreError> {
        self.run("ping", |c, _| redis::cmd("PING").query::<()>(c))
    }

    /// Reads the record: `Ok(None)` if there is none.
    pub fn read_record(&self) -> Result<Option<Record>, RedisStoreError> {
        let cmd = self.read_cmd();
        let value = self.run(OP_READ, |c, _| cmd.query::<Value>(c));
        self.read_reply(value)
    }

    pub(crate) fn read_cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.record_key);
        cmd
    }

    pub(crate) fn read_reply(
        &self,
        value: Result<Value, RedisStoreError>,
    ) -> Result<Option<Record>, RedisStoreError> {
        let value = value.map_err(|e| self.wrong_type(e))?;
        self.decode(pairs(value).ok_or_else(|| self.corrupt("not a hash"))?)
    }

    /// Writes `record` if Redis holds what `expect` says (atomically, for every client of
    /// the server); otherwise returns what it holds. An unreadable record in the way is
    /// renamed aside (`<record key>:corrupt`) and counts as none; a newer build's record
    /// is never overwritten.
    pub fn write_record(&self, expect: Expect, record: &Record) -> Result<Swap, RedisStoreError> {
        let call = self.swap_call(expect, record);
        let answer = self.run(OP_WRITE, |c, _| call.invoke::<Value>(c))?;
        self.swap_reply(answer)
    }

    pub(crate) fn swap_call(
        &self,
        expect: Expect,
        record: &Record,
    ) -> redis::ScriptInvocation<'static> {
        let (mode, lineage, version) = match expect {
            Expect::Absent => ("absent", String::new(), String::new()),
            Expect::Version(l, v) => ("version", l.to_string(), v.to_string()),
            Expect::Any => ("any", String::new(), String::new()),
        };
        let mut call = scripts::SWAP.key(&self.record_key);
        call.key(&self.aside_key)
            .key(&self.channel)
            .arg(codec::FORMAT)
            .arg(mode)
            .arg(lineage)
            .arg(version);
        for (name, value) in codec::encode(record, SystemTime::now()) {
            call.arg(name).arg(value);
        }
        call
    }

    pub(crate) fn swap_reply(&self, answer: Value) -> Result<Swap, RedisStoreError> {
        let Value::Array(mut items) = answer else {
            return Err(self.corrupt("the swap script gave an unexpected answer"));
        };
        let head = if items.is_empty() {
            Vec::new()
        } else {
            bytes(items.remove(0)).unwrap_or_default()
        };
        match head.as_slice() {
            b"written" => Ok(Swap::Written),
            b"conflict" => {
                let fields = pairs(Value::Array(items))
                    .ok_or_else(|| self.corrupt("the swap script gave an unexpected answer"))?;
                Ok(Swap::Conflict(self.decode(fields)?))
            }
            b"newer" => Err(RedisStoreError::NewerFormat {
                key: self.record_key.clone(),
                found: items
                    .pop()
                    .and_then(bytes)
                    .map(|f| String::from_utf8_lossy(&f[..f.len().min(32)]).into_owned())
                    .unwrap_or_default(),
                supported: codec::FORMAT,
            }),
            _ => Err(self.corrupt("the swap script gave an unexpected answer")),
        }
    }

    /// Takes the refresh lease for `ttl` unless another holder's lease is still running.
    pub fn take_lease(&self, ttl: Duration) -> Result<Lease, RedisStoreError> {
        let owner = random_owner();
        let set = self.lease_cmd(owner, ttl);
        self.run(OP_LEASE, |c, retried| {
            if !matches!(set.query::<Value>(c)?, Value::Nil) {
                return Ok(Lease::Granted(LeaseId(owner)));
            }
            // A first try lost with its connection may have set it already.
            if retried {
                let held: Option<Vec<u8>> = redis::cmd("GET").arg(&self.lease_key).query(c)?;
                if held.as_deref() == Some(owner_text(owner).as_bytes()) {
                    return Ok(Lease::Granted(LeaseId(owner)));
                }
            }
            Ok(Lease::Busy)
        })
    }

    /// `SET <lease> <owner> NX PX <ttl>`: nil if another holder's lease is running.
    pub(crate) fn lease_cmd(&self, owner: u128, ttl: Duration) -> redis::Cmd {
        let ms = ttl.clamp(SHORTEST_LEASE, LONGEST_LEASE).as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.lease_key)
            .arg(owner_text(owner))
            .arg("NX")
            .arg("PX")
            .arg(ms);
        cmd
    }

    /// Gives the lease back, if `lease` still holds it.
    pub fn give_back(&self, lease: LeaseId) -> Result<(), RedisStoreError> {
        let call = self.release_call(lease);
        self.run(OP_RELEASE, |c, _| call.invoke::<i64>(c).map(drop))
    }

    pub(crate) fn release_call(&self, lease: LeaseId) -> redis::ScriptInvocation<'static> {
        let mut call = scripts::RELEASE.key(&self.lease_key);
        call.arg(owner_text(lease.0));
        call
    }

    /// Runs `f` on the connection, opening one if there is none. `f` is told whether this
    /// is the second try (after a kept connection was found dead).
    fn run<T>(
        &self,
        op: &'static str,
        mut f: impl FnMut(&mut Connection, bool) -> RedisResult<T>,
    ) -> Result<T, RedisStoreError> {
        // Every critical section leaves the slot whole: recover it after a panic.
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut retried = false;
        loop {
            let kept = slot.as_ref().is_some_and(Connection::is_open);
            if !kept {
                *slot = None;
                *slot = Some(
                    self.open()
                        .map_err(|e| RedisStoreError::redis(&self.addr, op, e))?,
                );
            }
            let Some(connection) = slot.as_mut() else {
                unreachable!("a connection was just put in the slot")
            };
            match f(connection, retried) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // A connection that failed is not trusted again; a late answer could
                    // otherwise stand in for the next command's.
                    let broken = e.is_io_error() || e.is_unrecoverable_error();
                    if broken {
                        *slot = None;
                    }
                    // A kept connection may have died with a restart of Redis: one fresh
                    // try. A timeout is not retried: it would only double the wait.
                    if kept && broken && !retried && e.is_connection_dropped() && !e.is_timeout() {
                        retried = true;
                        continue;
                    }
                    return Err(RedisStoreError::redis(&self.addr, op, e));
                }
            }
        }
    }

    fn open(&self) -> RedisResult<Connection> {
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.response_timeout))?;
        connection.set_write_timeout(Some(self.response_timeout))?;
        Ok(connection)
    }

    fn decode(&self, fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Option<Record>, RedisStoreError> {
        codec::decode(fields, SystemTime::now()).map_err(|bad| match bad {
            Bad::Newer(found) => RedisStoreError::NewerFormat {
                key: self.record_key.clone(),
                found,
                supported: codec::FORMAT,
            },
            Bad::Corrupt(reason) => RedisStoreError::Corrupt {
                key: self.record_key.clone(),
                reason,
            },
        })
    }

    fn corrupt(&self, reason: &str) -> RedisStoreError {
        RedisStoreError::Corrupt {
            key: self.record_key.clone(),
            reason: reason.to_owned(),
        }
    }

    /// `WRONGTYPE`: the key holds a list, a string, …: not a record.
    fn wrong_type(&self, e: RedisStoreError) -> RedisStoreError {
        match &e {
            RedisStoreError::Refused { source, .. } if source.code() == Some("WRONGTYPE") => {
                self.corrupt("the key holds another type than a hash")
            }
            _ => e,
        }
    }
}

/// A reply's bytes, if it is a string.
fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// A hash as field/value pairs, from a flat array (RESP2, scripts) or a map (RESP3).
fn pairs(v: Value) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    match v {
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((bytes(k)?, bytes(v)?));
            }
            Some(out)
        }
        Value::Map(items) => items
            .into_iter()
            .map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
            .collect(),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// How a lease's owner is written in Redis.
fn owner_text(owner: u128) -> String {
    format!("{owner:032x}")
}

/// An owner id for a new lease: unique enough that two holders never share one. std's
/// `RandomState` keys are random per process (and step per instance), so no random
/// number crate is needed.
pub(crate) fn random_owner() -> u128 {
    let state = RandomState::new();
    let salt = (std::process::id(), Instant::now(), SystemTime::now());
    u128::from(state.hash_one(salt)) << 64 | u128::from(state.hash_one((salt, 1u8)))
}

impl TokenStore for RedisStore {
    fn read(&self) -> Result<Option<Record>, StoreError> {
        Ok(self.read_record()?)
    }

    fn compare_and_swap(&self, expect: Expect, record: &Record) -> Result<Swap, StoreError> {
        Ok(self.write_record(expect, record)?)
    }

    fn lease(&self, _: Lineage, ttl: Duration) -> Result<Lease, StoreError> {
        Ok(self.take_lease(ttl)?)
    }

    fn release(&self, _: Lineage, lease: LeaseId) -> Result<(), StoreError> {
        Ok(self.give_back(lease)?)
    }

    /// Every written record is published on `<prefix><session>:changed` by the swap
    /// script; a thread of this store listens on its own connection (and reconnects) and
    /// calls `changed`, so a session waiting for another replica's refresh adopts its
    /// tokens as soon as they are written, and a logout anywhere reaches every replica.
    fn watch(&self, changed: Changed) -> bool {
        self.watchers
            .add(changed, &self.client, &self.channel, self.connect_timeout)
    }

    /// With the `tokio` feature, the async adapters await the operations on a tokio
    /// connection of redis-rs's (its `ConnectionManager`) rather than run the blocking ones
    /// on a blocking thread.
    #[cfg(feature = "tokio")]
    fn as_async(&self) -> Option<&dyn reauth_core::AsyncTokenStore> {
        Some(self)
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.watchers.stop();
    }
}
