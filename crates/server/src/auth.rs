//! Who may call: API tokens and user accounts.
//!
//! Tokens are generated from the OS's randomness, stored only as their sha256, and looked
//! up by that hash on every request. The admin token is created on the first start and its
//! plaintext is shown exactly once; [`rotate_admin_token`] revokes it and makes a new one
//! (the way back for an operator who lost it).
//!
//! User accounts log in to the web UI with a name and a password. Only an argon2id hash
//! of the password is stored (a PHC string with its own random salt from the OS, and the
//! argon2 crate's default cost: 19 MiB, 2 passes); the plaintext is never stored or
//! logged. [`authenticate`] answers an unknown name, a wrong password and a disabled
//! account alike unless the password was right, and hashes even for an unknown name, so
//! neither the answer nor its timing tells which names exist.

use std::io::Read;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use gantry_store::{Role, Store, StoreError, Token, User};
use sha2::{Digest, Sha256};

use crate::state::now_ms;

/// Name of the admin token.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// Prefix of every token gantry makes (recognizable in leaked-secret scanners).
pub const TOKEN_PREFIX: &str = "gantry_";

/// `n` random bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // /dev/urandom never blocks after boot and never runs dry; failing to read it means
    // the machine is unusable for anything secret.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    hex::encode(random_bytes(bytes))
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

/// Longest user name.
pub const MAX_USER_NAME: usize = 64;

/// Shortest password (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest password (bytes): argon2 takes any length, but hashing a megabyte per login
/// attempt would be a cheap way to keep the server busy.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a user account cannot be made or changed as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// The name has the wrong form.
    #[error("invalid user name {0:?}: use 1 to 64 lowercase letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// The role is not `admin` or `viewer`.
    #[error("unknown role {0:?}: use admin or viewer")]
    BadRole(String),
    /// The password is too short.
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    /// The password is too long.
    #[error("the password is too long: use at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    /// Hashing failed (it does not with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checks the form of a user name: 1 to 64 of `a-z`, `0-9`, `-`, `_`, `.`.
pub fn validate_user_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(UserError::BadName(name.to_owned()))
    }
}

/// The role named by `word`.
pub fn parse_role(word: &str) -> Result<Role, UserError> {
    Role::from_word(word).ok_or_else(|| UserError::BadRole(word.to_owned()))
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::ShortPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::LongPassword);
    }
    Ok(())
}

/// The argon2id hash of a password, as a PHC string with a fresh random salt. Slow on
/// purpose (tens of milliseconds): call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt =
        SaltString::encode_b64(&random_bytes(16)).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` matches a stored PHC hash (false for a hash that does not parse).
/// Slow on purpose, like [`hash_password`].
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        // The parameters come from the hash itself, so older hashes keep working if the
        // default cost changes.
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows, verified against when the name is unknown so that
/// an unknown name costs the same time as a wrong password.
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password(&random_hex(16)).unwrap_or_default());

/// What a login with a name and a password comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The password is right and the account enabled.
    Ok(User),
    /// The password is right but the account is disabled.
    Disabled,
    /// No such user, or a wrong password (not told apart).
    Refused,
}

/// Checks a name and a password against the store. Runs the hash on a blocking thread.
pub async fn authenticate(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<Login, StoreError> {
    let found = match store.user_by_name(name).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let hash = found
        .as_ref()
        .map_or_else(|| DECOY_HASH.clone(), |u| u.password_hash.clone());
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    Ok(match found {
        Some(user) if matches && user.disabled_at.is_none() => Login::Ok(user),
        Some(_) if matches => Login::Disabled,
        _ => Login::Refused,
    })
}

/// [`hash_password`] on a blocking thread.
pub async fn hash_password_blocking(password: &str) -> Result<String, UserError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UserError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let check = |name: &str, ok: bool| {
            assert_eq!(validate_user_name(name).is_ok(), ok, "{name:?}");
        };
        check("alice", true);
        check("a", true);
        check("build-bot_2.ci", true);
        check(&"x".repeat(64), true);
        check(&"x".repeat(65), false);
        check("", false);
        check("Alice", false);
        check("al ice", false);
        check("al/ice", false);
        check("élodie", false);
        assert_eq!(
            validate_user_name("Bob").expect_err("invalid").to_string(),
            "invalid user name \"Bob\": use 1 to 64 lowercase letters, digits, '-', '_' or '.'"
        );
    }

    #[test]
    fn password_lengths_and_roles() {
        assert_eq!(check_password("short"), Err(UserError::ShortPassword));
        assert_eq!(check_password("long enough"), Ok(()));
        // Characters, not bytes, for the minimum.
        assert_eq!(check_password("ééééééé"), Err(UserError::ShortPassword));
        assert_eq!(
            check_password(&"x".repeat(1025)),
            Err(UserError::LongPassword)
        );
        assert_eq!(parse_role("viewer"), Ok(Role::Viewer));
        assert_eq!(parse_role("root"), Err(UserError::BadRole("root".into())));
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(verify_password(&a, "correct horse"));
        assert!(verify_password(&b, "correct horse"));
        assert!(!verify_password(&a, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
    }
}
