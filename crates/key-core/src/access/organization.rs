//! Inputs about organizations and members, validated at the boundary: an organization's name,
//! a member's user id, and the policy's day counts.

use chrono::TimeDelta;

use crate::{DEFAULT_MAX_KEY_AGE, Error};

/// The longest policy duration accepted, in days (about ten years).
pub const MAX_POLICY_DAYS: i32 = 3650;

/// Checks a client's text: not blank, at most `max` characters, no control characters.
fn bounded_text(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    let invalid = |message: String| Error::InvalidArgument { field, message };
    if value.trim().is_empty() {
        return Err(invalid(format!("a {field} is required")));
    }
    if value.chars().count() > max {
        return Err(invalid(format!("at most {max} characters are allowed")));
    }
    if let Some(reason) = crate::text::unsafe_text(value, false) {
        return Err(invalid(reason.to_owned()));
    }
    Ok(value.to_owned())
}

/// An organization's name: 1 to 100 characters, no control characters, not blank. Unique
/// across the deployment (the store enforces that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName(String);

impl OrganizationName {
    /// The longest name accepted, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name as given by a client (field `name`).
    pub fn parse(name: &str) -> Result<OrganizationName, Error> {
        bounded_text("name", name, Self::MAX_CHARS).map(OrganizationName)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member's user id in the platform (an email, an account id): 1 to 200 characters, no
/// control characters, not blank. Unique within an organization (the store enforces that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// The longest user id accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates a user id as given by a client (field `user_id`).
    pub fn parse(user_id: &str) -> Result<UserId, Error> {
        bounded_text("user_id", user_id, Self::MAX_CHARS).map(UserId)
    }

    /// The user id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn policy_days(field: &'static str, days: i32) -> Result<TimeDelta, Error> {
    if (1..=MAX_POLICY_DAYS).contains(&days) {
        Ok(TimeDelta::days(i64::from(days)))
    } else {
        Err(Error::InvalidArgument {
            field,
            message: format!("must be between 1 and {MAX_POLICY_DAYS} days, or 0 for the default"),
        })
    }
}

/// A policy's maximum key age from a request: 0 means the default (90 days), else 1 to
/// [`MAX_POLICY_DAYS`] days.
pub fn max_key_age_from_days(days: i32) -> Result<TimeDelta, Error> {
    match days {
        0 => Ok(DEFAULT_MAX_KEY_AGE),
        days => policy_days("max_key_age_days", days),
    }
}

/// A policy's maximum key lifetime from a request: 0 means none (keys may live forever), else
/// 1 to [`MAX_POLICY_DAYS`] days.
pub fn max_key_lifetime_from_days(days: i32) -> Result<Option<TimeDelta>, Error> {
    match days {
        0 => Ok(None),
        days => policy_days("max_key_lifetime_days", days).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_user_ids_are_bounded_and_printable() {
        assert!(OrganizationName::parse("Acme Corp").is_ok());
        assert!(OrganizationName::parse(&"é".repeat(100)).is_ok());
        assert!(OrganizationName::parse(&"a".repeat(101)).is_err());
        assert!(UserId::parse(&"u".repeat(200)).is_ok());
        for bad in ["", "  ", "tab\there", "nul\0"] {
            assert!(OrganizationName::parse(bad).is_err(), "{bad:?}");
            assert!(
                matches!(
                    UserId::parse(bad),
                    Err(Error::InvalidArgument {
                        field: "user_id",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(UserId::parse(&"u".repeat(201)).is_err());
    }

    #[test]
    fn policy_days_have_defaults_and_bounds() {
        assert_eq!(max_key_age_from_days(0).unwrap(), DEFAULT_MAX_KEY_AGE);
        assert_eq!(max_key_age_from_days(30).unwrap(), TimeDelta::days(30));
        assert_eq!(max_key_lifetime_from_days(0).unwrap(), None);
        assert_eq!(
            max_key_lifetime_from_days(3650).unwrap(),
            Some(TimeDelta::days(3650))
        );
        for bad in [-1, 3651, i32::MIN, i32::MAX] {
            assert!(matches!(
                max_key_age_from_days(bad),
                Err(Error::InvalidArgument {
                    field: "max_key_age_days",
                    ..
                })
            ));
            assert!(matches!(
                max_key_lifetime_from_days(bad),
                Err(Error::InvalidArgument {
                    field: "max_key_lifetime_days",
                    ..
                })
            ));
        }
    }
}
