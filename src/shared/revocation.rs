//! Real logout: `disconnect` revokes a token's whole refresh chain in Redis until
//! the chain's last possible expiry, and every instance then refuses every token
//! of the chain with `token_revoked`.
//!
//! Each instance remembers Redis's word on a chain for at most
//! `REVOCATION_CACHE_MS` (≤ 1 s), so a busy token costs at most one Redis round
//! trip per second per instance, and a revocation reaches every instance within
//! that time. When Redis cannot answer, `REVOCATION_FAIL_MODE` decides: `open`
//! serves the request (a revoked token works again until Redis is back), `closed`
//! refuses it with 503 `revocation_unavailable`.

use std::time::Duration;

use super::{Shared, Unreachable, Warnings};
use crate::config::FailMode;
use crate::error::{AppError, ErrorCode};
use crate::token::Chain;

/// Revocations of token chains.
#[derive(Debug)]
pub(crate) struct Revocations {
    /// Chain id → revoked, as Redis last said.
    known: Option<moka::sync::Cache<String, bool>>,
    fail_mode: FailMode,
    warnings: Warnings,
}

impl Revocations {
    /// Revocations remembered for `cache` (zero: not at all), failing as `fail_mode`.
    pub(crate) fn new(cache: Duration, fail_mode: FailMode) -> Self {
        let known = (!cache.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache)
                .build()
        });
        Self {
            known,
            fail_mode,
            warnings: Warnings::default(),
        }
    }

    /// Refuses a token of a revoked chain with `token_revoked`; when Redis cannot
    /// answer, serves or refuses as the fail mode says.
    pub(crate) async fn check(&self, shared: &Shared, chain: &Chain) -> Result<(), AppError> {
        let revoked = match self.known.as_ref().and_then(|known| known.get(&chain.id)) {
            Some(revoked) => revoked,
            None => match self.ask(shared, chain).await {
                Ok(revoked) => revoked,
                Err(error) => return self.unknown(&error),
            },
        };
        if revoked {
            tracing::debug!("token refused: its chain was revoked");
            return Err(AppError::new(
                ErrorCode::TokenRevoked,
                "This token was revoked by a disconnect. Connect again.",
            ));
        }
        Ok(())
    }

    async fn ask(&self, shared: &Shared, chain: &Chain) -> Result<bool, Unreachable> {
        let key = shared.key("revoked", &chain.id);
        let revoked: bool = shared.query(redis::cmd("EXISTS").arg(key)).await?;
        if let Some(known) = &self.known {
            known.insert(chain.id.clone(), revoked);
        }
        Ok(revoked)
    }

    fn unknown(&self, error: &Unreachable) -> Result<(), AppError> {
        match self.fail_mode {
            FailMode::Open => {
                self.warnings.warn(
                    "revoked tokens are not checked (REVOCATION_FAIL_MODE=open)",
                    error,
                );
                Ok(())
            }
            FailMode::Closed => {
                self.warnings.warn(
                    "token-bearing requests are refused (REVOCATION_FAIL_MODE=closed)",
                    error,
                );
                Err(unavailable())
            }
        }
    }

    /// Revokes `chain` until `until` (Unix seconds, its last possible expiry).
    pub(crate) async fn revoke(
        &self,
        shared: &Shared,
        chain: &Chain,
        until: i64,
    ) -> Result<(), AppError> {
        let now = chrono::Utc::now().timestamp();
        let ttl_ms = until.saturating_sub(now).max(1).saturating_mul(1000);
        let key = shared.key("revoked", &chain.id);
        let () = shared
            .query(redis::cmd("SET").arg(key).arg(1).arg("PX").arg(ttl_ms))
            .await
            .map_err(|error| {
                tracing::warn!(failure = %error.0, "a disconnect could not record its revocation in Redis");
                unavailable()
            })?;
        if let Some(known) = &self.known {
            known.insert(chain.id.clone(), true);
        }
        Ok(())
    }
}

fn unavailable() -> AppError {
    let mut error = AppError::new(
        ErrorCode::RevocationUnavailable,
        "The shared store of revoked tokens cannot be reached. Try again shortly.",
    );
    error.retry_after = Some(1);
    error
}
