//! A string that must never be printed: access and refresh tokens, authorization codes.
//!
//! `Debug` and `Display` redact, so a token that ends up in a `tracing` field, an error message
//! or a D-Bus reply by mistake shows as `[redacted]` (ARCHITECTURE.md, invariant 7). The only way to the
//! text is [`Secret::expose`], which is easy to grep for.

use std::fmt;

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text, for the one place that must send it (an `Authorization` header, the
    /// token endpoint's form, the credential store).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sl.verysecret");
        assert!(!format!("{s:?} {s}").contains("verysecret"));
        assert_eq!(s.expose(), "sl.verysecret");
    }
}
