//! The password file (aMQTT's `FileAuthPlugin` format): `user:hash` lines, split on the first
//! `:`; blank lines and `#` comments skipped; malformed lines warned about and skipped. Hashes
//! are argon2 PHC strings (`$argon2id$...`, also `$argon2i$`/`$argon2d$`) or sha512-crypt
//! (`$6$...`), as pwdlib's `Argon2Hasher` + `DeprecatedSHA512CryptHasher` accept.

use std::collections::HashMap;
use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use sha_crypt::ShaCrypt;

/// Verified against when the user is unknown, so that "no such user" takes as long as "wrong
/// password" (argon2id with the default parameters, of the password `x`).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vMjiVF+UQvPiA28e2lEuWw$TDLBQJ0CdojMvNoLSi0D8IfD5AWlWBggKDwu7VKMY20";

/// A hash format this plugin cannot verify; aMQTT raises `UnknownHashError` at authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownHashFormat;

impl fmt::Display for UnknownHashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown hash format (expected $argon2id$... or $6$...)")
    }
}

/// Whether `hash` is in a format [`verify`] knows.
pub(crate) fn is_known_format(hash: &str) -> bool {
    hash.starts_with("$argon2") || hash.starts_with("$6$")
}

/// Checks `password` against `hash` in constant time (the crates compare the digests with
/// constant-time equality). A malformed hash of a known format is a mismatch.
pub(crate) fn verify(hash: &str, password: &[u8]) -> Result<bool, UnknownHashFormat> {
    if hash.starts_with("$argon2") {
        Ok(PasswordHash::new(hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok()))
    } else if hash.starts_with("$6$") {
        Ok(ShaCrypt::SHA512.verify_password(password, hash).is_ok())
    } else {
        Err(UnknownHashFormat)
    }
}

/// Burns the time of one argon2 verification (for unknown users).
pub(crate) fn verify_dummy(password: &[u8]) {
    let _ = verify(DUMMY_HASH, password);
}

/// An argon2id PHC string for `password`, with a random salt and argon2's default parameters.
pub(crate) fn hash_argon2id(password: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A parsed password file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PasswordFile {
    users: HashMap<String, String>,
}

impl PasswordFile {
    /// Parses `text`; returns the table and one warning per skipped or suspicious line
    /// (`LINE: what`). A user listed twice keeps the last hash, as in aMQTT.
    pub(crate) fn parse(text: &str) -> (Self, Vec<String>) {
        let mut users = HashMap::new();
        let mut warnings = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let n = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash)) if !user.is_empty() && !hash.is_empty() => {
                    if !is_known_format(hash) {
                        warnings.push(format!("line {n}: user {user:?}: {UnknownHashFormat}"));
                    }
                    if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                        warnings.push(format!("line {n}: user {user:?} listed again; last wins"));
                    }
                }
                _ => warnings.push(format!("line {n}: malformed, expected user:hash; skipped")),
            }
        }
        (PasswordFile { users }, warnings)
    }

    /// The hash of `user`, if listed.
    pub(crate) fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// How many users are listed.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

/// Checks that `user` can be written to a password file and read back as itself.
pub(crate) fn valid_username(user: &str) -> Result<(), String> {
    if user.is_empty()
        || user.contains([':', '\n', '\r'])
        || user.starts_with('#')
        || user.trim() != user
    {
        return Err(format!(
            "invalid user name {user:?}: it must be non-empty, without `:`, line breaks, \
             leading `#` or surrounding spaces"
        ));
    }
    Ok(())
}

/// `text` with `user`'s line set to `user:hash`: the first line for `user` is replaced in place,
/// later ones are dropped, and the line is appended when `user` is new. Comments, blank and
/// malformed lines are kept as they are.
pub(crate) fn set_user(text: &str, user: &str, hash: &str) -> String {
    let mut out = String::with_capacity(text.len() + user.len() + hash.len() + 2);
    let mut written = false;
    for raw in text.lines() {
        let line = raw.trim();
        let is_user =
            !line.starts_with('#') && line.split_once(':').is_some_and(|(u, _)| u == user);
        if is_user {
            if written {
                continue;
            }
            written = true;
            out.push_str(&format!("{user}:{hash}\n"));
        } else {
            out.push_str(raw);
            out.push('\n');
        }
    }
    if !written {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `alice` / `alice-secret`, argon2id (m=19456, t=2, p=1), made with this plugin's `passwd`.
    const ALICE_ARGON2: &str = "$argon2id$v=19$m=19456,t=2,p=1$7WlfUMfx9sUrMGkLwUAZew$z8HMvd80ubCcr2kMf1PHYIG8U/XNV8WxrFKbroME13g";
    /// `bob` / `bob-secret`, sha512-crypt, made with `openssl passwd -6 -salt saltsalt bob-secret`.
    const BOB_SHA512: &str = "$6$saltsalt$fXrinz8XHGFSvYIQnr/SIA504hm2f5CCY9JUf2FruwMxE3YNFX.JuVLDkbZkgobA1TczKBB3lyi/dkhqx/Emi.";
    /// Test vectors of the SHA-crypt specification (Drepper), password `Hello world!`: default
    /// rounds, and `rounds=10000` with a salt cut to 16 characters.
    const SPEC_DEFAULT: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const SPEC_ROUNDS: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";

    #[test]
    fn argon2_vector() {
        assert_eq!(verify(ALICE_ARGON2, b"alice-secret"), Ok(true));
        assert_eq!(verify(ALICE_ARGON2, b"alice-secreT"), Ok(false));
        assert_eq!(verify(ALICE_ARGON2, b""), Ok(false));
    }

    #[test]
    fn sha512_crypt_vectors() {
        assert_eq!(verify(BOB_SHA512, b"bob-secret"), Ok(true));
        assert_eq!(verify(BOB_SHA512, b"bob-secret "), Ok(false));
        assert_eq!(verify(SPEC_DEFAULT, b"Hello world!"), Ok(true));
        assert_eq!(verify(SPEC_DEFAULT, b"Hello world"), Ok(false));
        assert_eq!(verify(SPEC_ROUNDS, b"Hello world!"), Ok(true));
        assert_eq!(verify(SPEC_ROUNDS, b"hello world!"), Ok(false));
    }

    #[test]
    fn unknown_and_broken_hashes() {
        assert_eq!(verify("$2b$12$abc", b"x"), Err(UnknownHashFormat));
        assert_eq!(verify("plaintext", b"plaintext"), Err(UnknownHashFormat));
        assert_eq!(verify("$argon2id$garbage", b"x"), Ok(false));
        assert_eq!(verify("$6$", b"x"), Ok(false));
    }

    #[test]
    fn new_hashes_verify() {
        let hash = hash_argon2id(b"pw").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert_eq!(verify(&hash, b"pw"), Ok(true));
        assert_ne!(
            hash_argon2id(b"pw").expect("hash"),
            hash,
            "salts are random"
        );
        verify_dummy(b"anything");
    }

    #[test]
    fn parses_comments_blank_and_malformed_lines() {
        let text = format!(
            "# users\n\n  alice:{ALICE_ARGON2}  \nnocolon\n:nouser\nempty:\n\
             bob:{BOB_SHA512}\n  # indented comment\nweird:with:colons\ncarol:$2b$12$x\n"
        );
        let (file, warnings) = PasswordFile::parse(&text);
        assert_eq!(file.hash_of("alice"), Some(ALICE_ARGON2));
        assert_eq!(file.hash_of("bob"), Some(BOB_SHA512));
        // Split on the first `:` only: the rest is the hash (an unknown format here).
        assert_eq!(file.hash_of("weird"), Some("with:colons"));
        assert_eq!(file.hash_of("carol"), Some("$2b$12$x"));
        assert_eq!(file.hash_of("nocolon"), None);
        assert_eq!(file.hash_of(""), None);
        assert_eq!(file.hash_of("empty"), None);
        assert_eq!(file.len(), 4);
        let joined = warnings.join("\n");
        for expected in [
            "line 4: malformed",
            "line 5: malformed",
            "line 6: malformed",
        ] {
            assert!(joined.contains(expected), "{joined}");
        }
        assert!(
            joined.contains("line 9: user \"weird\": unknown hash"),
            "{joined}"
        );
        assert!(
            joined.contains("line 10: user \"carol\": unknown hash"),
            "{joined}"
        );
        assert_eq!(warnings.len(), 5, "{joined}");
    }

    #[test]
    fn last_duplicate_wins() {
        let (file, warnings) = PasswordFile::parse("a:$6$x$1\na:$6$x$2\n");
        assert_eq!(file.hash_of("a"), Some("$6$x$2"));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn set_user_replaces_in_place_and_appends() {
        let text = "# head\nalice:$6$old\nbob:$6$b\nalice:$6$dup\n\nbroken\n";
        assert_eq!(
            set_user(text, "alice", "$argon2id$new"),
            "# head\nalice:$argon2id$new\nbob:$6$b\n\nbroken\n"
        );
        assert_eq!(set_user("bob:$6$b", "carol", "H"), "bob:$6$b\ncarol:H\n");
        assert_eq!(set_user("", "carol", "H"), "carol:H\n");
        assert_eq!(set_user("#alice:x\n", "alice", "H"), "#alice:x\nalice:H\n");
    }

    #[test]
    fn usernames_must_round_trip() {
        assert!(valid_username("alice").is_ok());
        for bad in ["", "a:b", "#x", " a", "a\nb"] {
            assert!(valid_username(bad).is_err(), "{bad:?}");
        }
    }
}
