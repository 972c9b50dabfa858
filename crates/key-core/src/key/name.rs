use crate::Error;

/// A key's human-readable name: 1 to 100 characters, no control or bidirectional formatting
/// characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    /// The longest name accepted, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name as given by a client.
    pub fn parse(name: &str) -> Result<KeyName, Error> {
        let invalid = |message: &str| Error::InvalidArgument {
            field: "name",
            message: message.to_owned(),
        };
        if name.trim().is_empty() {
            return Err(invalid("a name is required"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(invalid("at most 100 characters are allowed"));
        }
        if let Some(reason) = crate::text::unsafe_text(name, false) {
            return Err(invalid(reason));
        }
        Ok(KeyName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(KeyName::parse("Production API").is_ok());
        assert!(KeyName::parse(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "tab\there", "new\nline", "nul\0"] {
            assert!(KeyName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(KeyName::parse(&"a".repeat(101)).is_err());
    }
}
