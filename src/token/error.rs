//! Why a token was refused, and what a client learns of it.

use crate::error::{AppError, ErrorCode};

/// Why a token was refused. Logged at debug level; never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No bearer token in the request.
    #[error("no bearer token")]
    Missing,
    /// Longer than [`MAX_TOKEN_BYTES`](super::MAX_TOKEN_BYTES).
    #[error("token exceeds the size cap")]
    TooLarge,
    /// The `Authorization` header is not `Bearer <token>`, or the token's header
    /// is not a JWT header.
    #[error("malformed header")]
    MalformedHeader,
    /// The header names another algorithm.
    #[error("algorithm not accepted")]
    WrongAlgorithm,
    /// The header's `kid` is unknown (never issued, or rotated out).
    #[error("unknown key id")]
    UnknownKid,
    /// Signature, issuer, audience or claim format failed.
    #[error("signature or claims rejected: {0}")]
    Rejected(String),
    /// `exp` has passed (beyond the leeway), or the chain's maximum lifetime.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `cx` did not decrypt under the token's associated data.
    #[error("cx did not decrypt")]
    Undecryptable,
    /// `cx` decrypted to something that is not connection parameters.
    #[error("cx payload malformed")]
    BadPayload,
    /// Signing failed (a server fault, not the client's).
    #[error("token could not be issued")]
    Issue,
}

impl From<TokenError> for AppError {
    fn from(error: TokenError) -> Self {
        tracing::debug!(reason = %error, "token rejected");
        match error {
            TokenError::Missing => Self::new(
                ErrorCode::TokenMissing,
                "A bearer token is required. Connect first and send the token in the Authorization header.",
            ),
            TokenError::Expired => Self::new(
                ErrorCode::TokenExpired,
                "The token has expired. Connect again.",
            ),
            TokenError::Issue => Self::internal(&error),
            TokenError::TooLarge
            | TokenError::MalformedHeader
            | TokenError::WrongAlgorithm
            | TokenError::UnknownKid
            | TokenError::Rejected(_)
            | TokenError::NotYetValid
            | TokenError::Undecryptable
            | TokenError::BadPayload => Self::new(
                ErrorCode::TokenInvalid,
                "The token is not valid. Connect again.",
            ),
        }
    }
}
