//! The store's operations awaited on a tokio connection (feature `tokio`), for the async
//! adapters. redis-rs's `ConnectionManager` opens the connection on first use, bounds
//! every answer by the store's timeouts and reconnects after a failure; the commands and
//! the reading of their answers are the blocking store's own.

use crate::store::{random_owner, RedisStore, OP_LEASE, OP_READ, OP_RELEASE, OP_WRITE};
use crate::RedisStoreError;
use reauth_core::{AsyncTokenStore, Expect, Lease, LeaseId, Lineage, Record, StoreFuture, Swap};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Reconnecting is retried once after a failed try: more would make a call wait past
/// the timeouts the user set while Redis is away.
const RECONNECT_RETRIES: usize = 1;
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The tokio connection, made on the first awaited call (inside a runtime).
#[derive(Default)]
pub(crate) struct Awaited {
    manager: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for Awaited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awaited").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The connection manager, made on first use. Clones share one connection.
    fn manager(&self, op: &'static str) -> Result<ConnectionManager, RedisStoreError> {
        let mut slot = self
            .awaited()
            .manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(manager) = &*slot {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout()))
            .set_response_timeout(Some(self.response_timeout()))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_DELAY)
            .set_max_delay(RECONNECT_DELAY);
        let manager = ConnectionManager::new_lazy_with_config(self.client().clone(), config)
            .map_err(|e| self.failed(op, e))?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    fn failed(&self, op: &'static str, e: redis::RedisError) -> RedisStoreError {
        RedisStoreError::redis(self.addr(), op, e)
    }

    async fn query(&self, op: &'static str, cmd: &redis::Cmd) -> Result<Value, RedisStoreError> {
        let mut manager = self.manager(op)?;
        cmd.query_async(&mut manager)
            .await
            .map_err(|e| self.failed(op, e))
    }

    async fn invoke(
        &self,
        op: &'static str,
        call: &redis::ScriptInvocation<'static>,
    ) -> Result<Value, RedisStoreError> {
        let mut manager = self.manager(op)?;
        call.invoke_async(&mut manager)
            .await
            .map_err(|e| self.failed(op, e))
    }

    /// [`read_record`](Self::read_record), awaited.
    pub async fn read_record_async(&self) -> Result<Option<Record>, RedisStoreError> {
        let value = self.query(OP_READ, &self.read_cmd()).await;
        self.read_reply(value)
    }

    /// [`write_record`](Self::write_record), awaited.
    pub async fn write_record_async(
        &self,
        expect: Expect,
        record: &Record,
    ) -> Result<Swap, RedisStoreError> {
        let call = self.swap_call(expect, record);
        let answer = self.invoke(OP_WRITE, &call).await?;
        self.swap_reply(answer)
    }

    /// [`take_lease`](Self::take_lease), awaited. A try whose answer was lost with its
    /// connection is not retried: a lease it set runs out by itself, and the session
    /// treats the error as any store failure.
    pub async fn take_lease_async(&self, ttl: Duration) -> Result<Lease, RedisStoreError> {
        let owner = random_owner();
        let set = self.query(OP_LEASE, &self.lease_cmd(owner, ttl)).await?;
        Ok(if matches!(set, Value::Nil) {
            Lease::Busy
        } else {
            Lease::Granted(LeaseId(owner))
        })
    }

    /// [`give_back`](Self::give_back), awaited.
    pub async fn give_back_async(&self, lease: LeaseId) -> Result<(), RedisStoreError> {
        self.invoke(OP_RELEASE, &self.release_call(lease))
            .await
            .map(drop)
    }
}

/// What the async adapters await: the operations above, as the session's errors.
impl AsyncTokenStore for RedisStore {
    fn read(&self) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move { Ok(self.read_record_async().await?) })
    }

    fn compare_and_swap<'a>(&'a self, expect: Expect, record: &'a Record) -> StoreFuture<'a, Swap> {
        Box::pin(async move { Ok(self.write_record_async(expect, record).await?) })
    }

    fn lease(&self, _: Lineage, ttl: Duration) -> StoreFuture<'_, Lease> {
        Box::pin(async move { Ok(self.take_lease_async(ttl).await?) })
    }

    fn release(&self, _: Lineage, lease: LeaseId) -> StoreFuture<'_, ()> {
        Box::pin(async move { Ok(self.give_back_async(lease).await?) })
    }
}
