//! Password hashing (argon2id with a random salt, PHC string format) and token making.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The PHC string of `password` (salt and parameters included): what the database keeps.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// Whether `password` matches a stored PHC string (false for an unreadable one).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random token: 32 bytes from the OS, as 64 lowercase hex digits.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` has the shape of a token [`token`] makes (checked before touching the DB).
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_hide_the_password() {
        let stored = hash("s3cret").expect("hash");
        assert!(!stored.contains("s3cret"));
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("s3cret", &stored));
        assert!(!verify("wrong", &stored));
        assert!(!verify("s3cret", "not a phc string"));
        assert_ne!(stored, hash("s3cret").expect("hash"), "salted");
    }

    #[test]
    fn tokens_are_random_and_shaped() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert!(is_token_shaped(&a), "{a}");
        for bad in [
            "",
            "abc",
            &a.to_uppercase(),
            &format!("{}g", &a[..63]),
            &format!("{a}0"),
        ] {
            assert!(!is_token_shaped(bad), "{bad}");
        }
    }
}
