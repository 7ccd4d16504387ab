//! Sessions in Redis: one hash per session.
//!
//! ```text
//! session:<id>   (hash, PEXPIRE = idle TTL)
//!   v        version
//!   s        schema fingerprint
//!   m        ",id,id," the fields a commit may change
//!   t        idle TTL in milliseconds
//!   f:<id>   encoding of top-level field <id>
//!   fv:<id>  version that last changed field <id>
//! ```
//!
//! A commit sends only the fields its delta changes, whole: the Lua script
//! checks the base version (a stale base is merged when none of those fields
//! changed since it, else refused as a conflict), `HSET`s the fields and
//! their versions, bumps the version and restarts the TTL, atomically. Each
//! script touches only its session's key, so it runs unchanged on Redis
//! Cluster.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value as Reply};

use super::SessionStore;
use crate::client::ClientError;
use crate::error::{ApplyError, DecodeError};
use crate::id::SessionId;
use crate::patch::Patch;
use crate::session::Session;
use crate::tracked::Tracked;
use crate::value::Value;
use crate::Delta;

const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

const LOAD: &str = r"
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then return false end
redis.call('PEXPIRE', KEYS[1], redis.call('HGET', KEYS[1], 't'))
return all
";

const TOUCH: &str = r"
local t = redis.call('HGET', KEYS[1], 't')
if not t then return 0 end
redis.call('PEXPIRE', KEYS[1], t)
return 1
";

/// ARGV: schema, base version, n, then n pairs (field id, encoding).
/// Returns {new version, then (id, encoding) of fields others changed since
/// base}, or {-1} not found, {-2, schema} other schema, {-3, v} base from the
/// future, {-4, v} conflict, {-5, id} field not mutable.
const COMMIT: &str = r"
local key = KEYS[1]
local meta = redis.call('HMGET', key, 'v', 's', 'm', 't')
if not meta[1] then return {-1} end
if meta[2] ~= ARGV[1] then return {-2, meta[2]} end
local v = tonumber(meta[1])
local base = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
if base > v then return {-3, v} end
local own = {}
for i = 0, n - 1 do
  local id = ARGV[4 + 2 * i]
  own[id] = true
  if not string.find(meta[3], ',' .. id .. ',', 1, true) then return {-5, tonumber(id)} end
  if base < v and tonumber(redis.call('HGET', key, 'fv:' .. id) or '0') > base then return {-4, v} end
end
local nv = v + 1
for i = 0, n - 1 do
  local id = ARGV[4 + 2 * i]
  redis.call('HSET', key, 'f:' .. id, ARGV[5 + 2 * i], 'fv:' .. id, nv)
end
redis.call('HSET', key, 'v', nv)
redis.call('PEXPIRE', key, meta[4])
local out = {nv}
if base < v then
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 3) == 'fv:' and tonumber(all[i + 1]) > base then
      local id = string.sub(f, 4)
      if not own[id] then
        table.insert(out, id)
        table.insert(out, redis.call('HGET', key, 'f:' .. id))
      end
    end
  end
end
return out
";

/// A [`SessionStore`] in Redis (or Redis Cluster), one hash per session.
#[derive(Clone)]
pub struct RedisStore {
    /// Reconnects by itself after Redis restarts or a connection drops.
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> ClientError {
    ClientError::Unavailable(format!("redis: {e}"))
}

fn bad_reply(what: &str) -> ClientError {
    ClientError::Refused(format!("redis returned an unexpected reply to {what}"))
}

fn int(r: &Reply) -> Option<i64> {
    match r {
        Reply::Int(i) => Some(*i),
        Reply::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn bytes(r: &Reply) -> Option<&[u8]> {
    match r {
        Reply::BulkString(b) => Some(b),
        _ => None,
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://127.0.0.1:6379/`). Sessions expire after
    /// 30 minutes idle unless [`RedisStore::with_ttl`] says otherwise.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let timeout = Duration::from_secs(2);
        let client = redis::Client::open(url)
            .map_err(|e| ClientError::Config(format!("redis url {url}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| unavailable(format!("no connection to {url} within {timeout:?}")))?
        .map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: "session:".into(),
            ttl: Duration::from_secs(30 * 60),
            timeout,
        })
    }

    /// Sets the idle TTL of sessions created from now on.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the key prefix (default `session:`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the time allowed for one Redis call (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn key(&self, id: &SessionId) -> String {
        format!("{}{id}", self.prefix)
    }

    async fn run(&self, script: &str, key: &str, args: Vec<Vec<u8>>) -> Result<Reply, ClientError> {
        let script = Script::new(script);
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(a);
        }
        let mut conn = self.conn.clone();
        let call = async {
            match invocation.invoke_async::<Reply>(&mut conn).await {
                // No connection could be made, so the script was not sent
                // (Redis was restarting): the manager reconnects, and one
                // more try is safe. A script that may have run is not
                // retried (commits in Redis carry no idempotency key).
                Err(e) if e.is_connection_refusal() => {
                    invocation.invoke_async::<Reply>(&mut conn).await
                }
                r => r,
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(unavailable)
    }
}

fn field_name(prefix: &str, id: u16) -> Vec<u8> {
    format!("{prefix}{id}").into_bytes()
}

impl SessionStore for RedisStore {
    async fn create<T: Session>(&self, value: &T) -> Result<SessionId, ClientError> {
        let id = SessionId::random();
        let schema = T::schema();
        let Value::Record(fields) = value.to_value() else {
            return Err(bad_reply("create"));
        };
        let mutable: String = schema
            .mutable_ids()
            .iter()
            .map(|i| format!(",{i}"))
            .collect::<String>()
            + ",";
        let ttl = self.ttl.as_millis().max(1).to_string();
        let mut args: Vec<Vec<u8>> = vec![ttl.clone().into_bytes()];
        args.extend([
            b"v".to_vec(),
            b"1".to_vec(),
            b"s".to_vec(),
            schema.fingerprint().to_string().into_bytes(),
        ]);
        args.extend([
            b"m".to_vec(),
            mutable.into_bytes(),
            b"t".to_vec(),
            ttl.into_bytes(),
        ]);
        for (fid, v) in fields {
            args.push(field_name("f:", fid));
            args.push(v.to_bytes());
        }
        match int(&self.run(CREATE, &self.key(&id), args).await?) {
            Some(1) => Ok(id),
            Some(0) => Err(ClientError::Refused("a session with this id exists".into())),
            _ => Err(bad_reply("create")),
        }
    }

    async fn load<T: Session>(&self, id: SessionId) -> Result<Tracked<T>, ClientError> {
        let reply = self.run(LOAD, &self.key(&id), Vec::new()).await?;
        let Reply::Array(items) = reply else {
            return match reply {
                Reply::Nil => Err(ClientError::NotFound),
                _ => Err(bad_reply("load")),
            };
        };
        let (mut version, mut schema, mut fields) = (None, None, Vec::new());
        for pair in items.chunks(2) {
            let (Some(name), Some(value)) = (pair.first().and_then(bytes), pair.get(1)) else {
                return Err(bad_reply("load"));
            };
            match name {
                b"v" => version = int(value),
                b"s" => {
                    schema = int(value).map(|s| s as u64).or_else(|| {
                        bytes(value).and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    })
                }
                _ if name.starts_with(b"f:") => {
                    let fid: u16 = std::str::from_utf8(&name[2..])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad_reply("load"))?;
                    let node = Value::from_bytes(bytes(value).ok_or_else(|| bad_reply("load"))?)
                        .map_err(ApplyError::from)?;
                    fields.push((fid, node));
                }
                _ => {}
            }
        }
        let (Some(version), Some(schema)) = (version, schema) else {
            return Err(bad_reply("load"));
        };
        let ours = T::schema().fingerprint();
        if schema != ours {
            return Err(ClientError::SchemaMismatch {
                session: schema,
                client: ours,
            });
        }
        fields.sort_by_key(|(fid, _)| *fid);
        let value = T::from_value(&Value::Record(fields))?;
        Ok(Tracked::with_version(value, version as u64))
    }

    async fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> Result<u64, ClientError> {
        let Some(delta) = tracked.begin_commit() else {
            return Ok(tracked.version());
        };
        let Value::Record(current) = tracked.to_value() else {
            return Err(bad_reply("commit"));
        };
        let changed: Vec<(u16, Value)> = current
            .into_iter()
            .filter(|(fid, _)| delta.field(*fid).is_some())
            .collect();
        let mut args = vec![
            T::schema().fingerprint().to_string().into_bytes(),
            tracked.version().to_string().into_bytes(),
            changed.len().to_string().into_bytes(),
        ];
        for (fid, v) in &changed {
            args.push(fid.to_string().into_bytes());
            args.push(v.to_bytes());
        }
        let reply = self.run(COMMIT, &self.key(&id), args).await?;
        let Reply::Array(items) = reply else {
            return Err(bad_reply("commit"));
        };
        let code = items
            .first()
            .and_then(int)
            .ok_or_else(|| bad_reply("commit"))?;
        let arg = items.get(1).and_then(int).unwrap_or(0);
        match code {
            -1 => return Err(ClientError::NotFound),
            -2 => {
                // A fingerprint is a u64 (as text): half of them do not fit `int`.
                let session = items
                    .get(1)
                    .and_then(bytes)
                    .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    .unwrap_or(0);
                return Err(ClientError::SchemaMismatch {
                    session,
                    client: T::schema().fingerprint(),
                });
            }
            -3 => {
                return Err(ClientError::Refused(format!(
                    "base version is newer than the session ({arg})"
                )))
            }
            -4 => {
                return Err(ClientError::Conflict {
                    current: arg as u64,
                })
            }
            -5 => {
                return Err(ClientError::Refused(format!(
                    "field {arg} is immutable or unknown"
                )))
            }
            v if v < 1 => return Err(bad_reply("commit")),
            _ => {}
        }
        let version = code as u64;
        let mut refresh = Vec::new();
        for pair in items[1..].chunks(2) {
            let fid = pair
                .first()
                .and_then(int)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| bad_reply("commit"))?;
            let node = pair
                .get(1)
                .and_then(bytes)
                .ok_or_else(|| bad_reply("commit"))?;
            refresh.push((
                fid,
                Patch::Set(Value::from_bytes(node).map_err(|e: DecodeError| ApplyError::from(e))?),
            ));
        }
        refresh.sort_by_key(|(fid, _)| *fid);
        let others = (!refresh.is_empty()).then(|| Delta::from_fields(refresh));
        tracked.finish_commit(version, others.as_ref())?;
        Ok(version)
    }

    async fn delete(&self, id: SessionId) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        let deleted: i64 = tokio::time::timeout(
            self.timeout,
            redis::cmd("DEL").arg(self.key(&id)).query_async(&mut conn),
        )
        .await
        .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
        .map_err(unavailable)?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(ClientError::NotFound)
        }
    }

    async fn touch(&self, id: SessionId) -> Result<(), ClientError> {
        match int(&self.run(TOUCH, &self.key(&id), Vec::new()).await?) {
            Some(1) => Ok(()),
            Some(0) => Err(ClientError::NotFound),
            _ => Err(bad_reply("touch")),
        }
    }
}
