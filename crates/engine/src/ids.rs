//! Container ids (64 random hex digits, as docker's) and names: docker's
//! rules for user-given names, and generated `adjective_scientist` names.

use crate::error::{EngineError, Result};

/// A fresh 64-hex-digit id. docker avoids ids whose 12-digit short form
/// is all digits (it would read as a number); so do we.
pub fn new_id() -> Result<String> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            EngineError::io(
                "read random bytes for an id",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// A random number below `n`.
pub fn random_below(n: usize) -> Result<usize> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| EngineError::io("read random bytes", std::io::Error::other(e.to_string())))?;
    Ok((u64::from_le_bytes(bytes) % n as u64) as usize)
}

/// Checks a name given with `--name` (a leading `/` is allowed and dropped).
pub fn validate_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(EngineError::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(bare.to_string())
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "agile",
    "amazing",
    "bold",
    "brave",
    "bright",
    "busy",
    "calm",
    "careful",
    "cheerful",
    "clever",
    "cool",
    "curious",
    "daring",
    "dazzling",
    "determined",
    "eager",
    "elated",
    "elegant",
    "epic",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gentle",
    "gifted",
    "happy",
    "hardcore",
    "hopeful",
    "humble",
    "inspiring",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "lucid",
    "magical",
    "modest",
    "nice",
    "nifty",
    "optimistic",
    "patient",
    "peaceful",
    "pensive",
    "practical",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "wizardly",
    "youthful",
    "zealous",
    "zen",
];

const SCIENTISTS: &[&str] = &[
    "agnesi",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "brattain",
    "cannon",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldwasser",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hodgkin",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "khorana",
    "knuth",
    "lamarr",
    "lamport",
    "leakey",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "mirzakhani",
    "morse",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "planck",
    "ritchie",
    "sammet",
    "shannon",
    "shockley",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "yalow",
];

/// A generated name like `clever_lovelace`. docker never names a
/// container `boring_wozniak`; neither do we (no such adjective here).
pub fn generate_name(attempt: u32) -> Result<String> {
    let adjective = ADJECTIVES[random_below(ADJECTIVES.len())?];
    let scientist = SCIENTISTS[random_below(SCIENTISTS.len())?];
    Ok(if attempt == 0 {
        format!("{adjective}_{scientist}")
    } else {
        format!("{adjective}_{scientist}{}", random_below(10)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_follow_docker_rules() {
        assert_eq!(validate_name("/web-1").unwrap(), "web-1");
        assert_eq!(validate_name("a.b_c").unwrap(), "a.b_c");
        for bad in ["", "a", "-x", "_x", "a b", "a/b", "ü1"] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("Invalid container name"), "{bad}: {e}");
        }
        for i in 0..5 {
            let n = generate_name(i).unwrap();
            assert_eq!(validate_name(&n).unwrap(), n);
        }
    }
}
