//! API tokens: generated from the OS's randomness, stored only as their sha256, looked
//! up by that hash on every request.
//!
//! The admin token is created on the first start and its plaintext is shown exactly
//! once; [`rotate_admin_token`] revokes it and makes a new one (the way back for an
//! operator who lost it).

use std::io::Read;

use gantry_store::{Store, StoreError, Token};
use sha2::{Digest, Sha256};

use crate::state::now_ms;

/// Name of the admin token.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// Prefix of every token gantry makes (recognizable in leaked-secret scanners).
pub const TOKEN_PREFIX: &str = "gantry_";

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // /dev/urandom never blocks after boot and never runs dry; failing to read it means
    // the machine is unusable for anything secret.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    hex::encode(buf)
}

/// A new token secret.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(32))
}

/// The stored form of a token: hex sha256 of its text.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token a request presents, if it is a current one.
pub async fn check_token(store: &dyn Store, token: &str) -> Result<Option<Token>, StoreError> {
    store.token_by_hash(&hash_token(token)).await
}

/// Creates the admin token unless one exists; returns its plaintext when it was created
/// (to be shown once).
pub async fn ensure_admin_token(store: &dyn Store) -> Result<Option<String>, StoreError> {
    let tokens = store.list_tokens().await?;
    if tokens
        .iter()
        .any(|t| t.name == ADMIN_TOKEN_NAME && t.revoked_at.is_none())
    {
        return Ok(None);
    }
    let token = new_token();
    store
        .create_token(ADMIN_TOKEN_NAME, "admin", &hash_token(&token), now_ms())
        .await?;
    Ok(Some(token))
}

/// Revokes the admin token (if any) and creates a new one; returns its plaintext.
pub async fn rotate_admin_token(store: &dyn Store) -> Result<String, StoreError> {
    let live = store
        .list_tokens()
        .await?
        .into_iter()
        .any(|t| t.name == ADMIN_TOKEN_NAME && t.revoked_at.is_none());
    if live {
        store.revoke_token(ADMIN_TOKEN_NAME, now_ms()).await?;
    }
    let token = new_token();
    store
        .create_token(ADMIN_TOKEN_NAME, "admin", &hash_token(&token), now_ms())
        .await?;
    Ok(token)
}
