//! Bearer token extractors.
//!
//! [`Bearer`] requires a valid token; [`MaybeBearer`] accepts its absence but still
//! refuses a bad one (a client that sends a token wants to know it is bad). Both log
//! the precise reason at debug level and answer only `token_missing`,
//! `token_invalid`, `token_expired` or — with a shared store, for a token whose
//! chain a disconnect revoked — `token_revoked`.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::error::AppError;
use crate::shared::Shared;
use crate::token::{TokenError, TokenService, Verified};

/// What the token extractors need of the application's state: the token service
/// and, with a shared store, the revocations.
#[derive(Debug, Clone)]
pub(crate) struct TokenGate {
    /// Verifies tokens.
    pub tokens: Arc<TokenService>,
    /// Knows revoked chains, when `REDIS_URL` is set.
    pub shared: Option<Arc<Shared>>,
}

/// A request's verified token.
#[derive(Debug)]
pub(crate) struct Bearer(pub Arc<Verified>);

/// A request's verified token, if it sent one.
#[derive(Debug)]
pub(crate) struct MaybeBearer(pub Option<Arc<Verified>>);

/// The raw token of the `Authorization: Bearer …` header, if there is one.
///
/// One rule on every route that reads a token: no `Authorization` header means no
/// token; a header that is anything but `Bearer <token>` (another scheme, `Bearer`
/// with nothing after it, bytes that are not text) is a bad token, never "no
/// token", so a client that meant to authenticate always learns that it failed.
fn bearer_token(parts: &Parts) -> Result<Option<&str>, TokenError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| TokenError::MalformedHeader)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(TokenError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::MalformedHeader);
    }
    Ok(Some(token))
}

impl TokenGate {
    /// Verifies `token`, then asks the shared store whether its chain was revoked.
    async fn accept(&self, token: &str) -> Result<Arc<Verified>, AppError> {
        let verified = self.tokens.verify(token)?;
        if let Some(shared) = &self.shared {
            shared.revocations.check(&verified.claims.chain())?;
        }
        Ok(verified)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer
where
    TokenGate: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let token = bearer_token(parts)?.ok_or(TokenError::Missing)?;
        Ok(Self(TokenGate::from_ref(state).accept(token).await?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeBearer
where
    TokenGate: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match bearer_token(parts)? {
            Some(token) => Ok(Self(Some(TokenGate::from_ref(state).accept(token).await?))),
            None => Ok(Self(None)),
        }
    }
}
