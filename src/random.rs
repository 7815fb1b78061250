//! Operating-system randomness for nonces, token ids and key material.

/// Fills `buf` from the operating system's CSPRNG.
///
/// A failing system RNG leaves no safe way to mint tokens, so this aborts the
/// request's task loudly rather than continuing with predictable bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}
