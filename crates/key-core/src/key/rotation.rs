//! The rules of rotation and update: how long a rotated key keeps working, when a key is due
//! for rotation, and which keys may be rotated or changed at all.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Error, KeyRecord, KeyState, key::expiry::last_valid_day};

/// The age at which a key is reported due for rotation, unless its organization sets another.
pub const DEFAULT_MAX_KEY_AGE: TimeDelta = TimeDelta::days(90);

/// How long a rotated key keeps working when the caller does not say.
pub const DEFAULT_ROTATION_GRACE: TimeDelta = TimeDelta::hours(24);

/// The longest grace period a rotation may give the old key.
pub const MAX_ROTATION_GRACE: TimeDelta = TimeDelta::days(30);

/// The revoke reason of a key rotated with a grace period of zero.
pub const ROTATED_REVOKE_REASON: &str = "rotated";

/// Validates the grace period a client asks for: `None` means [`DEFAULT_ROTATION_GRACE`],
/// zero revokes the old key at once, and it must be neither negative nor over
/// [`MAX_ROTATION_GRACE`].
pub fn rotation_grace(requested: Option<TimeDelta>) -> Result<TimeDelta, Error> {
    let Some(grace) = requested else {
        return Ok(DEFAULT_ROTATION_GRACE);
    };
    let invalid = |message: &str| Error::InvalidArgument {
        field: "grace_period",
        message: message.to_owned(),
    };
    if grace < TimeDelta::zero() {
        return Err(invalid("must not be negative"));
    }
    if grace > MAX_ROTATION_GRACE {
        return Err(invalid("at most 30 days are allowed"));
    }
    Ok(grace)
}

/// What a rotation does to the old key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedOldKey {
    /// The old key's new expiry: the earlier of its own and the end of the grace period.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the grace period is zero: the old key is revoked at once, with this reason.
    pub revoke_reason: Option<&'static str>,
}

impl KeyRecord {
    /// Whether the key is due for rotation at `now`: active, not rotated yet, and at least
    /// `max_age` old.
    pub fn rotation_due(&self, now: DateTime<Utc>, max_age: TimeDelta) -> bool {
        self.state(now) == KeyState::Active
            && self.rotated_to.is_none()
            && now - self.created_at >= max_age
    }

    /// Decides what rotating this key at `now` with `grace` (validated by [`rotation_grace`])
    /// does to it. Revoked, expired, disabled and already rotated keys cannot be rotated (a
    /// disabled key's successor would work at once, so the key is enabled first).
    pub fn rotate(&self, now: DateTime<Utc>, grace: TimeDelta) -> Result<RotatedOldKey, Error> {
        if let Some(successor) = self.rotated_to {
            return Err(Error::Conflict(format!(
                "the key was already rotated: its successor is {successor}"
            )));
        }
        match self.state(now) {
            KeyState::Revoked => {
                return Err(Error::Conflict(
                    "a revoked key cannot be rotated".to_owned(),
                ));
            }
            KeyState::Expired => {
                let day = self.expires_at.map(last_valid_day);
                return Err(Error::Conflict(match day {
                    Some(day) => format!("an expired key cannot be rotated: it expired on {day}"),
                    None => "an expired key cannot be rotated".to_owned(),
                }));
            }
            KeyState::Disabled => {
                return Err(Error::Conflict(
                    "a disabled key cannot be rotated: enable it first".to_owned(),
                ));
            }
            KeyState::Active => {}
        }
        if grace.is_zero() {
            return Ok(RotatedOldKey {
                expires_at: self.expires_at,
                revoke_reason: Some(ROTATED_REVOKE_REASON),
            });
        }
        let end_of_grace = now + grace;
        Ok(RotatedOldKey {
            expires_at: Some(
                self.expires_at
                    .map_or(end_of_grace, |at| at.min(end_of_grace)),
            ),
            revoke_reason: None,
        })
    }

    /// The expiry of this key's successor when it is rotated at `now`: the same lifetime the
    /// key was issued with, counted from `now`; none if the key had none.
    pub fn successor_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Capped so a long-lived key rotated late cannot get an expiry no client can read.
        self.expires_at
            .map(|at| (now + (at - self.created_at)).min(super::expiry::latest_expiry()))
    }

    /// Whether the key's name, scopes or expiry may be changed. A revoked key stays revoked,
    /// and a rotated key is changed through its successor. An expired key may be changed, and
    /// a later expiry brings it back.
    pub fn check_updatable(&self) -> Result<(), Error> {
        if self.revoked_at.is_some() {
            return Err(Error::Conflict(
                "a revoked key cannot be updated".to_owned(),
            ));
        }
        if let Some(successor) = self.rotated_to {
            return Err(Error::Conflict(format!(
                "a rotated key cannot be updated: update its successor {successor}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::{Environment, RedactedKey, ScopeSet};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn record(age: TimeDelta) -> KeyRecord {
        KeyRecord {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            name: "test".into(),
            scopes: ScopeSet::parse_list("scopes", &["chat"]).unwrap(),
            environment: Environment::Live,
            redacted: RedactedKey {
                environment: Environment::Live,
                last4: "abcd".into(),
            },
            created_at: now() - age,
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            rotated_from: None,
            rotated_to: None,
            key_type: crate::KeyType::Organization,
            member_id: None,
            operator: false,
            rate_limits: crate::RateLimits::NONE,
            disabled_at: None,
            metadata: None,
            ip_allowlist: crate::IpAllowlist::EMPTY,
            credits: None,
            oauth: None,
        }
    }

    #[test]
    fn grace_defaults_to_a_day_and_is_bounded() {
        assert_eq!(rotation_grace(None).unwrap(), TimeDelta::hours(24));
        assert_eq!(
            rotation_grace(Some(TimeDelta::zero())).unwrap(),
            TimeDelta::zero()
        );
        assert_eq!(
            rotation_grace(Some(TimeDelta::days(30))).unwrap(),
            TimeDelta::days(30)
        );
        for bad in [
            TimeDelta::days(30) + TimeDelta::seconds(1),
            -TimeDelta::seconds(1),
        ] {
            let err = rotation_grace(Some(bad)).unwrap_err();
            assert!(err.to_string().starts_with("invalid grace_period"), "{err}");
        }
    }

    #[test]
    fn rotation_due_at_the_maximum_age_for_active_unrotated_keys() {
        let day = TimeDelta::days(1);
        assert!(!record(TimeDelta::days(89)).rotation_due(now(), DEFAULT_MAX_KEY_AGE));
        assert!(record(TimeDelta::days(90)).rotation_due(now(), DEFAULT_MAX_KEY_AGE));
        let mut revoked = record(TimeDelta::days(100));
        revoked.revoked_at = Some(now() - day);
        assert!(!revoked.rotation_due(now(), DEFAULT_MAX_KEY_AGE));
        let mut expired = record(TimeDelta::days(100));
        expired.expires_at = Some(now() - day);
        assert!(!expired.rotation_due(now(), DEFAULT_MAX_KEY_AGE));
        let mut rotated = record(TimeDelta::days(100));
        rotated.rotated_to = Some(Uuid::nil());
        assert!(!rotated.rotation_due(now(), DEFAULT_MAX_KEY_AGE));
    }

    #[test]
    fn the_old_key_keeps_the_earlier_of_its_expiry_and_the_grace_end() {
        let grace = TimeDelta::hours(24);
        let key = record(TimeDelta::days(1));
        let old = key.rotate(now(), grace).unwrap();
        assert_eq!(old.expires_at, Some(now() + grace));
        assert_eq!(old.revoke_reason, None);

        let mut soon = record(TimeDelta::days(1));
        soon.expires_at = Some(now() + TimeDelta::hours(1));
        assert_eq!(
            soon.rotate(now(), grace).unwrap().expires_at,
            soon.expires_at
        );

        let revoke = key.rotate(now(), TimeDelta::zero()).unwrap();
        assert_eq!(revoke.revoke_reason, Some("rotated"));
        assert_eq!(revoke.expires_at, None);
    }

    #[test]
    fn revoked_expired_and_rotated_keys_are_not_rotated() {
        let grace = TimeDelta::hours(1);
        let mut revoked = record(TimeDelta::days(1));
        revoked.revoked_at = Some(now());
        let mut expired = record(TimeDelta::days(1));
        expired.expires_at = Some(now());
        let mut rotated = record(TimeDelta::days(1));
        rotated.rotated_to = Some(Uuid::nil());
        for key in [&revoked, &expired, &rotated] {
            let err = key.rotate(now(), grace).unwrap_err();
            assert!(matches!(err, Error::Conflict(_)), "{err}");
        }
        assert_eq!(
            expired.rotate(now(), grace).unwrap_err().to_string(),
            "an expired key cannot be rotated: it expired on 2026-03-01"
        );
        assert!(revoked.check_updatable().is_err());
        assert!(rotated.check_updatable().is_err());
        assert!(expired.check_updatable().is_ok());
    }

    #[test]
    fn a_successor_gets_the_same_lifetime() {
        let mut key = record(TimeDelta::days(10));
        assert_eq!(key.successor_expiry(now()), None);
        key.expires_at = Some(now() + TimeDelta::days(20));
        assert_eq!(
            key.successor_expiry(now()),
            Some(now() + TimeDelta::days(30))
        );
    }
}
