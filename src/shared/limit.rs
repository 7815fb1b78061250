//! Rate limits shared by every instance on one Redis: GCRA in one Lua script, so
//! that checking and spending are one atomic step, timed by Redis's own clock so
//! that instances with drifting clocks agree.

use std::net::IpAddr;
use std::time::Duration;

use super::{Shared, Unreachable, Warnings};

/// GCRA: the key holds the theoretical arrival time (TAT) in microseconds. A
/// request moves TAT one interval on, and is allowed when the moved TAT is at
/// most `burst` intervals ahead of now (so `burst` requests pass at once).
/// Returns the microseconds to wait, 0 when allowed.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_from = next_tat - interval * burst
if allowed_from > now then
  return allowed_from - now
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// The shared form of `RATE_LIMIT_*`: `burst` requests at once, one more every
/// `interval`.
#[derive(Debug)]
pub(crate) struct SharedLimit {
    script: redis::Script,
    interval_us: u64,
    burst: u32,
    warnings: Warnings,
}

impl SharedLimit {
    /// A limit of `burst` requests regained evenly over `window`.
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        let interval = window / burst.max(1);
        Self {
            script: redis::Script::new(GCRA),
            interval_us: u64::try_from(interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst,
            warnings: Warnings::default(),
        }
    }

    /// Spends one request of `client`: `Ok(None)` when allowed, `Ok(Some(wait))`
    /// when not; `Err` when Redis did not answer (logged here, once a minute), so
    /// that the caller falls back to its own limiter.
    pub(crate) async fn check(
        &self,
        shared: &Shared,
        client: IpAddr,
    ) -> Result<Option<Duration>, Unreachable> {
        let key = shared.key("rate", &client.to_string());
        let wait: u64 = shared
            .invoke(self.script.key(key).arg(self.interval_us).arg(self.burst))
            .await
            .inspect_err(|error| {
                self.warnings
                    .warn("rate limits fall back to this instance's own counts", error)
            })?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }
}
