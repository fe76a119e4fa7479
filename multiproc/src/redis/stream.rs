//! A Redis stream read through a consumer group: the at-least-once machinery that the
//! distributed queue and the distributed pool's workers share.
//!
//! Every entry has one field, `m`, holding the encoded message. A consumer reads entries
//! with `XREADGROUP` (a batch per round trip); an entry stays in the group's pending list
//! until the consumer acknowledges it (`XACK`). Entries left pending longer than the
//! visibility timeout (their consumer died, or is too slow) are taken over with
//! `XAUTOCLAIM` by the next consumer that reads; an entry delivered more often than the
//! limit is handed back apart ("exhausted"), for the caller to bury or fail. Acknowledged
//! entries are trimmed from the stream (`XTRIM MINID`) every so often.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use redis::Value;

use super::link::{array, bytes, int, is_no_group, text, Link};
use crate::error::{Error, Result};

/// The name of the one consumer group of every stream this crate reads.
const GROUP: &str = "multiproc";

/// The field that holds an entry's message.
const FIELD: &str = "m";

/// Acknowledged entries between two trims of the stream.
const TRIM_EVERY: u64 = 1024;

/// How long one blocking read may wait before the consumer looks for entries to reclaim
/// (and checks its deadline) again.
const MAX_BLOCK: Duration = Duration::from_millis(250);

/// One entry as delivered to this consumer.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) payload: Vec<u8>,
    /// How many times the entry was delivered, this time included.
    pub(crate) deliveries: u64,
}

/// What one read brought.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Entries to process.
    pub(crate) fresh: Vec<Entry>,
    /// Entries delivered more often than the limit: the caller buries or fails them, then
    /// acknowledges them.
    pub(crate) exhausted: Vec<Entry>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.exhausted.is_empty()
    }
}

/// Settings of a consumer.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long an entry may stay unacknowledged before another consumer takes it over.
    pub(crate) visibility: Duration,
    /// Deliveries after which an entry is exhausted.
    pub(crate) max_deliveries: u64,
    /// Entries per read (the most, for a pool worker).
    pub(crate) batch: usize,
}

/// One consumer of one stream's group.
pub(crate) struct Consumer {
    key: String,
    name: String,
    settings: Settings,
    group_ready: bool,
    next_reclaim: Instant,
    claim_cursor: String,
    acked_since_trim: u64,
    /// The largest id this consumer acknowledged since the last trim.
    max_acked: Option<(u64, u64)>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.key)
            .field("name", &self.name)
            .finish()
    }
}

/// A consumer name no other process uses: host, process id, and a counter.
pub(crate) fn unique_consumer_name(role: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{role}-{host}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Consumer {
    pub(crate) fn new(key: &str, name: String, settings: Settings) -> Consumer {
        Consumer {
            key: key.to_string(),
            name,
            settings,
            group_ready: false,
            next_reclaim: Instant::now(),
            claim_cursor: "0-0".into(),
            acked_since_trim: 0,
            max_acked: None,
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Creates the stream and the group if they do not exist yet.
    fn ensure_group(&mut self, link: &mut Link) -> Result<()> {
        if self.group_ready {
            return Ok(());
        }
        let created = link.call(|c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<()>(c)
        });
        match created {
            Ok(()) => {}
            Err(Error::Remote(m)) if m.contains("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        self.group_ready = true;
        Ok(())
    }

    /// Reads the next batch of at most `count` entries, first acknowledging `acks` in the
    /// same round trip (they are cleared once the server has them). `block`: `None` never
    /// waits; `Some(d)` waits up to `d` (at most a quarter of a second per call) for an
    /// entry.
    pub(crate) fn read(
        &mut self,
        link: &mut Link,
        acks: &mut Vec<String>,
        block: Option<Duration>,
        count: usize,
    ) -> Result<Batch> {
        match self.read_once(link, acks, block, count) {
            Err(e) if is_no_group(&e) => {
                // The stream or its group vanished (a restart without persistence, a
                // `DEL`): create them again; the acks were for entries that are gone.
                self.group_ready = false;
                acks.clear();
                self.read_once(link, acks, block, count)
            }
            other => other,
        }
    }

    fn read_once(
        &mut self,
        link: &mut Link,
        acks: &mut Vec<String>,
        block: Option<Duration>,
        count: usize,
    ) -> Result<Batch> {
        self.ensure_group(link)?;
        if Instant::now() >= self.next_reclaim {
            self.ack(link, acks)?;
            let batch = self.reclaim(link)?;
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
        let mut pipe = redis::pipe();
        if !acks.is_empty() {
            pipe.cmd("XACK").arg(&self.key).arg(GROUP).arg(&acks[..]);
        }
        let read = pipe
            .cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(count.max(1));
        if let Some(d) = block {
            let ms = d.min(MAX_BLOCK).as_millis().max(1);
            read.arg("BLOCK").arg(ms as u64);
        }
        read.arg("STREAMS").arg(&self.key).arg(">");
        let mut replies: Vec<Value> = link.call(|c| pipe.query(c))?;
        let reply = replies.pop().unwrap_or(Value::Nil);
        self.acked(acks);
        self.maybe_trim(link)?;
        let mut fresh = Vec::new();
        for stream in array(reply)? {
            let mut parts = array(stream)?.into_iter();
            let entries = parts.nth(1).unwrap_or(Value::Nil);
            for e in array(entries)? {
                if let Some((id, payload)) = entry(e)? {
                    fresh.push(Entry {
                        id,
                        payload,
                        deliveries: 1,
                    });
                }
            }
        }
        Ok(Batch {
            fresh,
            exhausted: Vec::new(),
        })
    }

    /// Takes over entries idle longer than the visibility timeout (`XAUTOCLAIM`), and reads
    /// how often each was delivered.
    fn reclaim(&mut self, link: &mut Link) -> Result<Batch> {
        let idle_ms = self.settings.visibility.as_millis() as u64;
        let reply: Vec<Value> = link.call(|c| {
            redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(GROUP)
                .arg(&self.name)
                .arg(idle_ms)
                .arg(&self.claim_cursor)
                .arg("COUNT")
                .arg(self.settings.batch.max(1))
                .query(c)
        })?;
        let mut parts = reply.into_iter();
        let cursor = text(parts.next().unwrap_or(Value::Nil))?;
        let mut claimed = Vec::new();
        for e in array(parts.next().unwrap_or(Value::Nil))? {
            if let Some(found) = entry(e)? {
                claimed.push(found);
            }
        }
        if cursor == "0-0" {
            // A full pass: look again after half the visibility timeout.
            self.next_reclaim = Instant::now() + self.settings.visibility / 2;
        }
        self.claim_cursor = cursor;
        if claimed.is_empty() {
            return Ok(Batch::default());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &claimed {
            pipe.cmd("XPENDING")
                .arg(&self.key)
                .arg(GROUP)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let counts: Vec<Value> = link.call(|c| pipe.query(c))?;
        let mut batch = Batch::default();
        for ((id, payload), count) in claimed.into_iter().zip(counts) {
            // [[id, consumer, idle ms, deliveries]]
            let deliveries = array(count)?
                .into_iter()
                .next()
                .map(|row| -> Result<u64> {
                    let row = array(row)?;
                    Ok(row.get(3).map(int).transpose()?.unwrap_or(1) as u64)
                })
                .transpose()?
                .unwrap_or(1);
            let e = Entry {
                id,
                payload,
                deliveries,
            };
            if deliveries > self.settings.max_deliveries {
                batch.exhausted.push(e);
            } else {
                batch.fresh.push(e);
            }
        }
        Ok(batch)
    }

    /// Acknowledges `ids` now (they are cleared once the server has them).
    pub(crate) fn ack(&mut self, link: &mut Link, ids: &mut Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(&self.key).arg(GROUP).arg(&ids[..]);
        link.call(|c| pipe.query::<()>(c))?;
        self.acked(ids);
        if self.acked_since_trim >= TRIM_EVERY {
            self.trim(link)?;
        }
        Ok(())
    }

    /// Adds acknowledging commands to `pipe` for `ids`; call [`acked`](Self::acked) once
    /// the pipeline went through.
    pub(crate) fn ack_in(&self, pipe: &mut redis::Pipeline, ids: &[String]) {
        if !ids.is_empty() {
            pipe.cmd("XACK").arg(&self.key).arg(GROUP).arg(ids).ignore();
        }
    }

    /// Records that `ids` were acknowledged, and clears them.
    pub(crate) fn acked(&mut self, ids: &mut Vec<String>) {
        for id in ids.iter() {
            if let Some(n) = parse_id(id) {
                self.max_acked = Some(self.max_acked.map_or(n, |m| m.max(n)));
            }
        }
        self.acked_since_trim += ids.len() as u64;
        ids.clear();
    }

    /// Trims the stream if enough entries were acknowledged since the last trim.
    pub(crate) fn maybe_trim(&mut self, link: &mut Link) -> Result<()> {
        if self.acked_since_trim >= TRIM_EVERY {
            self.trim(link)?;
        }
        Ok(())
    }

    /// Removes entries that every consumer is done with: those below both the oldest
    /// pending entry and the newest entry this consumer acknowledged. Entries not yet
    /// delivered always have larger ids than any delivered one, so none is lost.
    fn trim(&mut self, link: &mut Link) -> Result<()> {
        let Some(acked) = self.max_acked else {
            return Ok(());
        };
        let summary: Vec<Value> =
            link.call(|c| redis::cmd("XPENDING").arg(&self.key).arg(GROUP).query(c))?;
        let oldest_pending = match summary.get(1) {
            Some(v @ Value::BulkString(_)) => parse_id(&text(v.clone())?),
            _ => None,
        };
        let (ms, seq) = oldest_pending.map_or(acked, |p| p.min(acked));
        // `~`: Redis trims whole internal nodes only, which is much cheaper; a few
        // acknowledged entries may stay until the next trim.
        link.call(|c| {
            redis::cmd("XTRIM")
                .arg(&self.key)
                .arg("MINID")
                .arg("~")
                .arg(format!("{ms}-{seq}"))
                .query::<()>(c)
        })?;
        self.acked_since_trim = 0;
        self.max_acked = None;
        Ok(())
    }

    /// Makes `ids` (delivered to this consumer, not processed) visible to other consumers
    /// at their next reclaim, without counting a delivery.
    pub(crate) fn release(&mut self, link: &mut Link, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let idle_ms = self.settings.visibility.as_millis() as u64;
        link.call(|c| {
            redis::cmd("XCLAIM")
                .arg(&self.key)
                .arg(GROUP)
                .arg(&self.name)
                .arg(0)
                .arg(ids)
                .arg("IDLE")
                .arg(idle_ms)
                .arg("JUSTID")
                .query::<()>(c)
        })
    }
}

/// Appends one `XADD` per payload to `pipe`.
pub(crate) fn add_in(pipe: &mut redis::Pipeline, key: &str, payload: &[u8]) {
    pipe.cmd("XADD")
        .arg(key)
        .arg("*")
        .arg(FIELD)
        .arg(payload)
        .ignore();
}

/// `[id, [field, value, ...]]` read as the id and the `m` field; `None` for an entry that
/// was deleted while pending (nil fields).
fn entry(v: Value) -> Result<Option<(String, Vec<u8>)>> {
    let mut parts = array(v)?.into_iter();
    let id = text(parts.next().unwrap_or(Value::Nil))?;
    let fields = array(parts.next().unwrap_or(Value::Nil))?;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if bytes(name)? == FIELD.as_bytes() {
            return Ok(Some((id, bytes(value)?)));
        }
    }
    Ok(None)
}

/// `"1700000000000-3"` as `(1700000000000, 3)`.
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_as_numbers_not_text() {
        assert!(parse_id("10-0") > parse_id("9-5"));
        assert!(parse_id("9-10") > parse_id("9-9"));
        assert_eq!(parse_id("x"), None);
    }

    #[test]
    fn an_entry_without_the_field_is_skipped() {
        let v = Value::Array(vec![
            Value::BulkString(b"1-1".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"other".to_vec()),
                Value::BulkString(b"x".to_vec()),
            ]),
        ]);
        assert!(entry(v).unwrap().is_none());
        let garbage = Value::Int(3);
        assert!(matches!(entry(garbage), Err(Error::Protocol(_))));
    }
}
