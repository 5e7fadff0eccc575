//! `redline trim`: drop the entries every consumer group has acknowledged.
//!
//! Invariants:
//! - an entry is trimmed only when every group on its stream, including groups redline did
//!   not create, has acknowledged it and will not read it again: the bound is the lowest,
//!   over all groups, of the lower of the group's oldest pending id and the first id after
//!   its last-delivered id (both count: an operator may have moved the group back with
//!   `XGROUP SETID`, or handed it older entries with `XCLAIM … FORCE`, so either may be the
//!   lower); `XTRIM … MINID` keeps every id at or above that bound;
//! - a stream without any group is never trimmed (nobody has read anything);
//! - the bound is computed and applied in one script, so a group created or moved back
//!   (`XGROUP CREATE … 0`, `XGROUP SETID`) meanwhile cannot lose entries;
//! - the trim is exact (`MINID`, not `MINID ~`), so the counts reported are the counts removed;
//! - near `maxmemory` (≥ 90%), the entries past the bound that every group has read and none
//!   holds pending are deleted too (`XDEL`, at most [`PUNCH_LIMIT`] per stream and trim), so
//!   one entry held back for long cannot keep a full Redis full for ever.
//!
//! <https://redis.io/docs/latest/commands/xtrim/>

use redis::aio::ConnectionLike;
use redis::{Script, Value};
use redline_core::keys::StreamKeys;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reply::{self, Id};
use crate::stream;

/// Most acknowledged entries one trim deletes past a held-back bound (see [`TRIM_SCRIPT`]).
pub(crate) const PUNCH_LIMIT: u64 = 10_000;

/// KEYS[1] the stream; ARGV[1] `1` to trim, `0` to only compute the bound; ARGV[2] the most
/// entries to delete past the bound under memory pressure (0 = never). Returns
/// `{state, length, keep_from, limiting_group, removed, last_id, punched}` where state is
/// `missing`, `no-groups`, `bound` (ids below `keep_from` are acked by all) or `all` (every
/// entry is). Ids are compared as decimal strings (length, then text): Lua numbers lose
/// 64-bit precision.
///
/// Under memory pressure (`used_memory` ≥ 90% of `maxmemory`), an entry held back for long
/// (a dead letter Redis refuses for lack of memory, a parked route) would keep everything
/// after it: a full Redis could never free itself. So, only then, the entries past the bound
/// that every group has read (up to the lowest last-delivered id) and none holds pending
/// are deleted with `XDEL`, which frees each node of the stream whose entries are all gone.
pub(crate) const TRIM_SCRIPT: &str = r"
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {'missing', 0, '', '', 0, '', 0} end
local len = redis.call('XLEN', key)
local groups = redis.call('XINFO', 'GROUPS', key)
if #groups == 0 then return {'no-groups', len, '', '', 0, '', 0} end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
local infos = {}
local keep, limiting = nil, ''
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  infos[#infos + 1] = f
  local first
  local after = redis.call('XRANGE', key, '(' .. f['last-delivered-id'], '+', 'COUNT', 1)
  if #after > 0 then first = after[1][1] end
  if f['pending'] > 0 then
    local oldest = redis.call('XPENDING', key, f['name'])[2]
    if first == nil or less(oldest, first) then first = oldest end
  end
  if first and (keep == nil or less(first, keep)) then keep, limiting = first, f['name'] end
end
if keep == nil then
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local last_id = ''
  if #last > 0 then last_id = last[1][1] end
  local removed = 0
  if ARGV[1] == '1' then removed = redis.call('XTRIM', key, 'MAXLEN', 0) end
  return {'all', len, '', '', removed, last_id, 0}
end
local removed = 0
local punched = 0
if ARGV[1] == '1' then
  removed = redis.call('XTRIM', key, 'MINID', keep)
  local budget = tonumber(ARGV[2])
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, 'used_memory:(%d+)'))
  local max = tonumber(string.match(info, 'maxmemory:(%d+)'))
  if budget > 0 and max and max > 0 and used and used * 10 >= max * 9 then
    local low = nil
    for _, f in ipairs(infos) do
      if low == nil or less(f['last-delivered-id'], low) then low = f['last-delivered-id'] end
    end
    if less(keep, low) then
      local pending, limit = {}, low
      for _, f in ipairs(infos) do
        if f['pending'] > 0 then
          local rows = redis.call('XPENDING', key, f['name'], keep, low, budget)
          for _, r in ipairs(rows) do pending[r[1]] = true end
          if #rows == budget and less(rows[#rows][1], limit) then limit = rows[#rows][1] end
        end
      end
      local doomed = {}
      for _, r in ipairs(redis.call('XRANGE', key, '(' .. keep, limit, 'COUNT', budget)) do
        if not pending[r[1]] then doomed[#doomed + 1] = r[1] end
      end
      for i = 1, #doomed, 1000 do
        punched = punched + redis.call('XDEL', key, unpack(doomed, i, math.min(i + 999, #doomed)))
      end
    end
  end
end
return {'bound', len, keep, limiting, removed, '', punched}
";

/// What a trim removed, or would remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrimReport {
    /// True when nothing was removed: the counts say what a trim would remove.
    pub dry_run: bool,
    /// One per partition, in partition order.
    pub streams: Vec<StreamTrim>,
    /// Entries removed (or that would be) over all partitions.
    pub removed: u64,
}

/// The trim of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamTrim {
    /// The stream key.
    pub key: String,
    /// Entries before the trim.
    pub length: u64,
    /// The `MINID` bound: every entry below it is acknowledged by every group. `None` when
    /// the stream is not trimmed (see `skipped`) or is empty.
    pub minid: Option<String>,
    /// The group holding the bound back (its oldest pending or next unread entry); `None`
    /// when every group has acknowledged every entry.
    pub limiting_group: Option<String>,
    /// Entries removed (or that would be), `punched` included.
    pub removed: u64,
    /// Of those, acknowledged entries deleted past the bound because Redis was near its
    /// `maxmemory` (see the module documentation); 0 in a dry run.
    pub punched: u64,
    /// Why the stream was left alone, when it was.
    pub skipped: Option<String>,
}

/// What [`trim`] would remove, changing nothing.
///
/// # Errors
/// Redis errors.
pub async fn trim_plan<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
) -> Result<TrimReport> {
    trim(conn, keys, true).await
}

/// Trims every partition of `keys` to what every group has acknowledged (`dry_run`:
/// counts only). Safe to call at any time and from several processes.
///
/// # Errors
/// Redis errors, and [`Error::NotAStream`] when a key holds another type.
pub async fn trim<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &StreamKeys,
    dry_run: bool,
) -> Result<TrimReport> {
    let script = Script::new(TRIM_SCRIPT);
    let mut report = TrimReport {
        dry_run,
        streams: Vec::with_capacity(keys.count()),
        removed: 0,
    };
    for key in keys.partitions() {
        // A clear error for a key of the wrong type, rather than the script's.
        stream::exists(conn, key).await?;
        let value: Value = script
            .key(key)
            .arg(if dry_run { "0" } else { "1" })
            .arg(PUNCH_LIMIT)
            .invoke_async(conn)
            .await
            .map_err(|e| Error::redis(e, "XTRIM", key))?;
        let outcome = Outcome::decode(value)?;
        let mut trimmed = StreamTrim {
            key: key.clone(),
            length: outcome.length,
            minid: None,
            limiting_group: None,
            removed: outcome.removed + outcome.punched,
            punched: outcome.punched,
            skipped: None,
        };
        match outcome.state.as_str() {
            "missing" => trimmed.skipped = Some("the stream does not exist".into()),
            "no-groups" => {
                trimmed.skipped =
                    Some("no consumer group reads this stream, so nothing is acknowledged".into());
            }
            "all" => {
                trimmed.minid = Id::parse(&outcome.last_id)
                    .and_then(Id::next)
                    .map(|id| id.to_string());
                if dry_run {
                    trimmed.removed = outcome.length;
                }
            }
            _ => {
                if dry_run {
                    let end = format!("({}", outcome.keep_from);
                    trimmed.removed = stream::count_range(conn, key, "-", &end, None)
                        .await?
                        .unwrap_or_default();
                }
                trimmed.minid = Some(outcome.keep_from);
                trimmed.limiting_group = Some(outcome.limiting_group);
            }
        }
        report.removed += trimmed.removed;
        report.streams.push(trimmed);
    }
    Ok(report)
}

/// The script's answer.
struct Outcome {
    state: String,
    length: u64,
    keep_from: String,
    limiting_group: String,
    removed: u64,
    last_id: String,
    punched: u64,
}

impl Outcome {
    fn decode(value: Value) -> Result<Self> {
        const CMD: &str = "XTRIM script";
        let parts = reply::array(CMD, value)?;
        let [state, length, keep_from, limiting_group, removed, last_id, punched] =
            parts.as_slice()
        else {
            return Err(Error::reply(CMD, "expected 7 elements"));
        };
        let text = |v: &Value| reply::text(v).ok_or_else(|| Error::reply(CMD, "not text"));
        let uint = |v: &Value| reply::uint(v).ok_or_else(|| Error::reply(CMD, "not a count"));
        Ok(Self {
            state: text(state)?,
            length: uint(length)?,
            keep_from: text(keep_from)?,
            limiting_group: text(limiting_group)?,
            removed: uint(removed)?,
            last_id: text(last_id)?,
            punched: uint(punched)?,
        })
    }
}
