//! Rate limits shared by every instance on one Redis, in the background: every
//! [`EVERY`] an instance sends, in one script call, what each client spent on it
//! since the last exchange, and learns how far ahead each client's shared TAT
//! now stands, every instance's requests included (see
//! [`crate::middleware::rate_limit`], which decides every request locally).
//!
//! Times travel as durations ahead of "now" (Redis's clock in the store, each
//! instance's own clock at home), so clocks that disagree do not matter. Every
//! exchange tells the store how far ahead each client stood before the new
//! requests, and every 300 ms (and after every new connection) every client
//! still short of its burst is sent even without new requests, so a store that
//! restarted or was flushed learns again what the instances know.

use std::sync::Arc;
use std::time::Duration;

use super::{Shared, Warnings};
use crate::middleware::rate_limit::{LocalLimits, Spent};

/// How often an instance exchanges its counts with the store.
pub(crate) const EVERY: Duration = Duration::from_millis(100);

/// How often clients with a whole burst again are forgotten (in exchanges).
const FORGET_EVERY: u32 = 100;

/// How often every client whose burst is not whole is sent, spent or not (in
/// exchanges), and at once after a new connection: a store that restarted or
/// was flushed knows again within 300 ms what the instances know.
const RESTATE_EVERY: u32 = 3;

/// For each client (`KEYS[i]`; `ARGV[1]` the interval in µs, then for each
/// client the requests it spent and how far ahead its TAT stood before them):
/// the stored TAT is at least now and at least that far ahead, then moves one
/// interval on per request. Returns how far ahead of now each TAT stands.
pub(crate) const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ahead = {}
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[i * 2])
  local floor = now + tonumber(ARGV[i * 2 + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < floor then tat = floor end
  tat = tat + count * interval
  redis.call('SET', key, tat, 'PX', math.ceil((tat - now) / 1000) + 1)
  ahead[i] = tat - now
end
return ahead
";

/// Exchanges `limits`' counts with the store every [`EVERY`], for as long as
/// the process runs. Counts the store could not take are dropped: every
/// instance still counts them itself.
pub(crate) async fn share(shared: Arc<Shared>, limits: Arc<LocalLimits>) {
    let warnings = Warnings::default();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = 0u32;
    loop {
        ticks.tick().await;
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(FORGET_EVERY) {
            limits.forget_idle();
        }
        let restate = rounds.is_multiple_of(RESTATE_EVERY) || shared.reconnected();
        let spent = limits.take_spent(restate);
        if spent.is_empty() {
            continue;
        }
        match exchange(&shared, &spent, limits.interval_us()).await {
            Ok(aheads) => {
                for (spent, ahead) in spent.iter().zip(aheads) {
                    limits.raise(spent.client, ahead);
                }
            }
            Err(error) => {
                warnings.warn("rate limits are counted by each instance alone", &error);
            }
        }
    }
}

/// One exchange: the spent counts in, the shared TATs out.
async fn exchange(
    shared: &Shared,
    spent: &[Spent],
    interval: u64,
) -> Result<Vec<u64>, super::Unreachable> {
    let mut invocation = shared.scripts.limit.prepare_invoke();
    invocation.arg(interval);
    for one in spent {
        invocation
            .key(shared.key("rate", &one.client.to_string()))
            .arg(one.count)
            .arg(one.ahead_before);
    }
    let aheads: Vec<i64> = shared
        .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
        .await?;
    Ok(aheads
        .into_iter()
        .map(|ahead| u64::try_from(ahead).unwrap_or(0))
        .collect())
}
