//! The Lua scripts. Redis runs a script atomically: no other command of any client runs
//! between its first and its last call, which is what makes the compare-and-swap one step
//! for every process and machine sharing the server.

use std::sync::LazyLock;

/// Compare-and-swap of the record hash.
///
/// `KEYS[1]` the record, `KEYS[2]` where an unreadable record is set aside, `KEYS[3]` the
/// channel a written record is announced on (see `watch.rs`).
/// `ARGV[1]` the format this build writes, `ARGV[2]` `absent` | `version` | `any`,
/// `ARGV[3]` and `ARGV[4]` the expected lineage and version (text, compared as text: Lua
/// numbers are doubles and would round large versions), `ARGV[5..]` the new record's
/// field/value pairs.
///
/// Returns `{'written'}`, `{'conflict', field, value, …}` (the record left in place, none
/// if absent) or `{'newer', format}` (a newer build's record, never touched).
pub(crate) static SWAP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local key, aside = KEYS[1], KEYS[2]
local kind = redis.call('TYPE', key).ok
local present = kind ~= 'none'
if kind == 'hash' then
  local format = redis.call('HGET', key, 'format')
  local n = tonumber(format)
  if n and n > tonumber(ARGV[1]) then
    return {'newer', format}
  end
  if format ~= ARGV[1] then
    kind = 'unreadable'
  end
elseif present then
  kind = 'unreadable'
end
if kind == 'unreadable' then
  redis.call('RENAME', key, aside)
  present = false
end
local admitted
if ARGV[2] == 'absent' then
  admitted = not present
elseif ARGV[2] == 'version' then
  admitted = present
    and redis.call('HGET', key, 'lineage') == ARGV[3]
    and redis.call('HGET', key, 'version') == ARGV[4]
else
  admitted = true
end
if not admitted then
  if present then
    return {'conflict', unpack(redis.call('HGETALL', key))}
  end
  return {'conflict'}
end
redis.call('DEL', key)
redis.call('HSET', key, unpack(ARGV, 5))
redis.call('PUBLISH', KEYS[3], 'written')
return {'written'}
",
    )
});

/// Compare-and-delete of the lease: only its owner gives it back. `KEYS[1]` the lease,
/// `ARGV[1]` the owner. Returns 1 if it was deleted.
pub(crate) static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
