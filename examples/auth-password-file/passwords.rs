//! The password file (aMQTT's `FileAuthPlugin` format): `user:hash` lines, split on the first
//! `:`; blank lines and `#` comments skipped; malformed lines warned about and skipped. Hashes
//! are argon2 PHC strings (`$argon2id$...`, also `$argon2i$`/`$argon2d$`) or sha512-crypt
//! (`$6$...`), as pwdlib's `Argon2Hasher` + `DeprecatedSHA512CryptHasher` accept.

use std::collections::HashMap;
use std::fmt;

use argon2::password_hash::phc::{PasswordHash, Salt};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, generate_salt};
use argon2::{Argon2, Params};
use sha_crypt::ShaCrypt;

/// The dummy of a file without a usable hash: argon2id with the default parameters (those of
/// `passwd`), of the password `x`.
const DEFAULT_DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$vMjiVF+UQvPiA28e2lEuWw$TDLBQJ0CdojMvNoLSi0D8IfD5AWlWBggKDwu7VKMY20";

/// What one verification against a hash costs: its algorithm and parameters (salt and digest
/// aside). Two hashes of the same cost take the same time to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Cost {
    /// An argon2 PHC string.
    Argon2 {
        /// `argon2id`, `argon2i` or `argon2d`.
        algorithm: &'static str,
        /// `v=`, 0x13 when absent.
        version: u32,
        /// `m=`: memory in KiB.
        m_cost: u32,
        /// `t=`: passes.
        t_cost: u32,
        /// `p=`: lanes.
        p_cost: u32,
        /// Digest length in bytes.
        output_len: usize,
    },
    /// A sha512-crypt (`$6$`) string.
    Sha512Crypt {
        /// `rounds=` (5000 when absent), clamped as the crate does.
        rounds: u32,
    },
}

/// The cost of checking a password against `hash`; `None` for a hash that cannot be parsed (it
/// fails before any hashing).
pub(crate) fn cost_of(hash: &str) -> Option<Cost> {
    if hash.starts_with("$argon2") {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = argon2::Algorithm::new(parsed.algorithm.as_str()).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        Some(Cost::Argon2 {
            algorithm: algorithm.as_str(),
            version: parsed.version.unwrap_or(0x13),
            m_cost: params.m_cost(),
            t_cost: params.t_cost(),
            p_cost: params.p_cost(),
            output_len: params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
        })
    } else if let Some(rest) = hash.strip_prefix("$6$") {
        let rounds = match rest.strip_prefix("rounds=") {
            Some(r) => r.split('$').next()?.parse::<u32>().ok()?,
            None => sha_crypt::Params::RECOMMENDED_ROUNDS,
        };
        Some(Cost::Sha512Crypt {
            rounds: rounds.clamp(sha_crypt::Params::ROUNDS_MIN, sha_crypt::Params::ROUNDS_MAX),
        })
    } else {
        None
    }
}

/// `n` random bytes (from the OS, through `password-hash`).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(&generate_salt());
    }
    out.truncate(n);
    out
}

/// A hash of the same algorithm, parameters, salt length and digest as `template`, with a fresh
/// random salt: checking any password against it costs what checking against `template` costs,
/// and fails. Computed without hashing. `None` if `template` cannot be parsed.
pub(crate) fn resalted(template: &str) -> Option<String> {
    if template.starts_with("$argon2") {
        let mut parsed = PasswordHash::new(template).ok()?;
        let len = parsed
            .salt
            .map_or(Salt::RECOMMENDED_LENGTH, |s| s.as_ref().len());
        parsed.salt = Some(Salt::new(&random_bytes(len)).ok()?);
        Some(parsed.to_string())
    } else if let Some(rest) = template.strip_prefix("$6$") {
        // `[rounds=N$]salt$digest`
        let (rounds, rest) = match rest.strip_prefix("rounds=") {
            Some(r) => {
                let (n, rest) = r.split_once('$')?;
                (Some(n), rest)
            }
            None => (None, rest),
        };
        let (salt, digest) = rest.split_once('$')?;
        const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let fresh: String = random_bytes(salt.len())
            .into_iter()
            .map(|b| char::from(CRYPT64[usize::from(b % 64)]))
            .collect();
        Some(match rounds {
            Some(n) => format!("$6$rounds={n}${fresh}${digest}"),
            None => format!("$6${fresh}${digest}"),
        })
    } else {
        None
    }
}

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

/// An argon2id PHC string for `password`, with a random salt and argon2's default parameters.
pub(crate) fn hash_argon2id(password: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A parsed password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswordFile {
    users: HashMap<String, String>,
    /// Checked for unknown users: see [`PasswordFile::dummy`].
    dummy: String,
}

impl Default for PasswordFile {
    fn default() -> Self {
        PasswordFile {
            users: HashMap::new(),
            dummy: DEFAULT_DUMMY.to_owned(),
        }
    }
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
        let dummy = dummy_for(&users);
        (PasswordFile { users, dummy }, warnings)
    }

    /// What an unknown user's password is checked against, so that "no such user" costs what
    /// "wrong password" costs: the most common [`Cost`] among the file's hashes (ties: the
    /// greatest), re-salted ([`resalted`]); [`DEFAULT_DUMMY`] for a file without a usable hash.
    pub(crate) fn dummy(&self) -> &str {
        &self.dummy
    }

    /// The number of users per [`Cost`] of their hashes (unparsable hashes left out).
    pub(crate) fn costs(&self) -> HashMap<Cost, usize> {
        let mut costs = HashMap::new();
        for hash in self.users.values() {
            if let Some(cost) = cost_of(hash) {
                *costs.entry(cost).or_insert(0) += 1;
            }
        }
        costs
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

/// See [`PasswordFile::dummy`]. Among the hashes of the chosen cost, the smallest string is the
/// template, so that the choice does not depend on hash-map order.
fn dummy_for(users: &HashMap<String, String>) -> String {
    let mut costs: HashMap<Cost, (usize, &str)> = HashMap::new();
    for hash in users.values() {
        let Some(cost) = cost_of(hash) else { continue };
        let entry = costs.entry(cost).or_insert((0, hash));
        entry.0 += 1;
        entry.1 = entry.1.min(hash.as_str());
    }
    costs
        .into_iter()
        .max_by_key(|&(cost, (count, _))| (count, cost))
        .and_then(|(_, (_, template))| resalted(template))
        .unwrap_or_else(|| DEFAULT_DUMMY.to_owned())
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

    /// aMQTT's parameters (m=64 MiB, t=3, p=4), with alice's salt and digest: a well-formed hash
    /// of that cost (never verified here: a debug build takes a while per check).
    fn amqtt_cost_hash(salt_prefix: char) -> String {
        format!(
            "$argon2id$v=19$m=65536,t=3,p=4${salt_prefix}WlfUMfx9sUrMGkLwUAZew$z8HMvd80ubCcr2kMf1PHYIG8U/XNV8WxrFKbroME13g"
        )
    }

    const AMQTT_COST: Cost = Cost::Argon2 {
        algorithm: "argon2id",
        version: 0x13,
        m_cost: 65536,
        t_cost: 3,
        p_cost: 4,
        output_len: 32,
    };

    #[test]
    fn costs_of_hashes() {
        assert_eq!(cost_of(&amqtt_cost_hash('7')), Some(AMQTT_COST));
        assert_eq!(
            cost_of(ALICE_ARGON2),
            Some(Cost::Argon2 {
                algorithm: "argon2id",
                version: 0x13,
                m_cost: 19456,
                t_cost: 2,
                p_cost: 1,
                output_len: 32
            })
        );
        assert_eq!(
            cost_of(BOB_SHA512),
            Some(Cost::Sha512Crypt { rounds: 5000 })
        );
        assert_eq!(
            cost_of(SPEC_ROUNDS),
            Some(Cost::Sha512Crypt { rounds: 10000 })
        );
        assert_eq!(
            cost_of("$6$rounds=10$salt$x"),
            Some(Cost::Sha512Crypt { rounds: 1000 }),
            "clamped as sha-crypt does"
        );
        assert_eq!(cost_of("$argon2id$garbage"), None);
        assert_eq!(cost_of("$2b$12$abc"), None);
    }

    /// The dummy of a file of aMQTT-cost hashes has that cost, not the plugin's own cheaper
    /// default: an unknown user costs what a known one does.
    #[test]
    fn the_dummy_has_the_cost_of_most_of_the_files_hashes() {
        let text = format!(
            "a:{}\nb:{}\nc:{}\nalice:{ALICE_ARGON2}\nbob:{BOB_SHA512}\n",
            amqtt_cost_hash('1'),
            amqtt_cost_hash('2'),
            amqtt_cost_hash('3'),
        );
        let (file, _) = PasswordFile::parse(&text);
        let dummy = file.dummy();
        assert_eq!(cost_of(dummy), Some(AMQTT_COST), "{dummy}");
        assert_ne!(cost_of(DEFAULT_DUMMY), Some(AMQTT_COST));
        let parsed = PasswordHash::new(dummy).expect("a well-formed PHC string");
        let template = PasswordHash::new(&amqtt_cost_hash('1')).expect("template");
        assert_eq!(parsed.hash, template.hash, "same digest length");
        assert_eq!(
            parsed.salt.map(|s| s.as_ref().len()),
            template.salt.map(|s| s.as_ref().len())
        );
        for n in ['1', '2', '3'] {
            assert_ne!(dummy, amqtt_cost_hash(n), "a fresh salt, not a user's hash");
        }
        assert_eq!(
            file.costs().get(&AMQTT_COST),
            Some(&3),
            "{:?}",
            file.costs()
        );
    }

    #[test]
    fn dummies_of_other_formats_and_of_empty_files() {
        // sha512-crypt with rounds: the dummy keeps them, and it is checked (and fails).
        let (file, _) = PasswordFile::parse(&format!(
            "a:{SPEC_ROUNDS}\nb:{ALICE_ARGON2}\nc:{SPEC_ROUNDS}\n"
        ));
        let dummy = file.dummy();
        assert_eq!(
            cost_of(dummy),
            Some(Cost::Sha512Crypt { rounds: 10000 }),
            "{dummy}"
        );
        assert!(dummy.starts_with("$6$rounds=10000$"), "{dummy}");
        assert_ne!(dummy, SPEC_ROUNDS);
        assert_eq!(verify(dummy, b"Hello world!"), Ok(false));
        // argon2 at the default cost: a valid hash that no password matches.
        let (file, _) = PasswordFile::parse(&format!("alice:{ALICE_ARGON2}\n"));
        assert_eq!(cost_of(file.dummy()), cost_of(ALICE_ARGON2));
        assert_eq!(verify(file.dummy(), b"alice-secret"), Ok(false));
        // A tie: the greater cost (argon2 sorts before sha512-crypt).
        let (file, _) = PasswordFile::parse(&format!("a:{ALICE_ARGON2}\nb:{BOB_SHA512}\n"));
        assert_eq!(cost_of(file.dummy()), cost_of(BOB_SHA512));
        // Nothing usable: the default.
        for text in ["", "# nobody\n", "carol:$2b$12$x\n"] {
            let (file, _) = PasswordFile::parse(text);
            assert_eq!(file.dummy(), DEFAULT_DUMMY, "{text:?}");
        }
        assert_eq!(PasswordFile::default().dummy(), DEFAULT_DUMMY);
    }

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
        assert_eq!(verify(DEFAULT_DUMMY, b"x"), Ok(true));
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
