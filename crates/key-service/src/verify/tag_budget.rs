//! Tags are the caller's to choose (`X-Keyrack-Tag`, VerifyKey's `tag`), so each one would add
//! usage rows, meter memory and a line to every ListUsage answer. The budget bounds them: a key
//! counts at most [`MAX_TAGS_PER_KEY`] distinct tags an hour, and an organization at most
//! [`MAX_TAGS_PER_ORGANIZATION`]; past either, a verification counts under [`OTHER_TAG`] and the
//! overflow is counted in `keyrack_usage_tag_overflow_total`.

use std::sync::Arc;

use uuid::Uuid;

use crate::{metrics::Metrics, shards::Shards};

/// Distinct tags one key counts per hour.
pub(crate) const MAX_TAGS_PER_KEY: usize = 50;
/// Distinct tags one organization counts per hour, over all its keys.
pub(crate) const MAX_TAGS_PER_ORGANIZATION: usize = 500;
/// What a tag beyond the budget counts as. A caller's own tag `other` merges with it.
pub(crate) const OTHER_TAG: &str = "other";

/// The tags one key or organization counted in one hour.
#[derive(Debug, Default)]
struct Seen {
    hour: i64,
    tags: Vec<Arc<str>>,
}

impl Seen {
    /// The tags of `hour`: last hour's are forgotten.
    fn of_hour(&mut self, hour: i64) -> &mut Vec<Arc<str>> {
        if self.hour != hour {
            self.hour = hour;
            self.tags.clear();
        }
        &mut self.tags
    }
}

/// The budget. Sharded, so it takes no lock every tagged verification contends on.
#[derive(Debug)]
pub(crate) struct TagBudget {
    keys: Shards<Uuid, Seen, foldhash::fast::RandomState>,
    organizations: Shards<Uuid, Seen, foldhash::fast::RandomState>,
    other: Arc<str>,
}

impl Default for TagBudget {
    fn default() -> Self {
        TagBudget {
            keys: Shards::new(),
            organizations: Shards::new(),
            other: Arc::from(OTHER_TAG),
        }
    }
}

impl TagBudget {
    /// The tag to count for a verification of `key_id` (of `organization_id`) tagged `tag` in
    /// `hour`: the tag itself while the key and its organization have room for it (or counted
    /// it already this hour), [`OTHER_TAG`] beyond.
    pub(crate) fn admit(
        &self,
        key_id: Uuid,
        organization_id: Uuid,
        tag: &Arc<str>,
        hour: i64,
        metrics: &Metrics,
    ) -> Arc<str> {
        let key_room = self.keys.with(&key_id, |map| {
            let tags = map.entry(key_id).or_default().of_hour(hour);
            tags.contains(tag) || tags.len() < MAX_TAGS_PER_KEY
        });
        let admitted = key_room
            && self.organizations.with(&organization_id, |map| {
                let tags = map.entry(organization_id).or_default().of_hour(hour);
                if tags.contains(tag) {
                    return true;
                }
                if tags.len() >= MAX_TAGS_PER_ORGANIZATION {
                    return false;
                }
                tags.push(Arc::clone(tag));
                true
            });
        if !admitted {
            metrics.tag_overflow();
            return Arc::clone(&self.other);
        }
        self.keys.with(&key_id, |map| {
            let tags = map.entry(key_id).or_default().of_hour(hour);
            if !tags.contains(tag) {
                tags.push(Arc::clone(tag));
            }
        });
        Arc::clone(tag)
    }

    /// Forgets the tags of hours before `hour`, so the budget's memory follows the current
    /// hour's traffic.
    pub(crate) fn prune(&self, hour: i64) {
        self.keys.retain(|_, seen| seen.hour >= hour);
        self.organizations.retain(|_, seen| seen.hour >= hour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_an_organization_count_a_bounded_number_of_tags_an_hour() {
        let budget = TagBudget::default();
        let metrics = Metrics::new();
        let organization = Uuid::from_u128(1);
        let key = Uuid::from_u128(2);
        let tag = |n: usize| -> Arc<str> { Arc::from(format!("GET /{n}").as_str()) };
        for n in 0..MAX_TAGS_PER_KEY {
            assert_eq!(
                &*budget.admit(key, organization, &tag(n), 0, &metrics),
                &*tag(n)
            );
        }
        assert_eq!(
            &*budget.admit(key, organization, &tag(999), 0, &metrics),
            OTHER_TAG
        );
        // A tag already counted this hour still counts as itself.
        assert_eq!(
            &*budget.admit(key, organization, &tag(3), 0, &metrics),
            "GET /3"
        );
        // The next hour starts afresh.
        assert_eq!(
            &*budget.admit(key, organization, &tag(999), 1, &metrics),
            "GET /999"
        );

        // The organization's own bound, across many keys.
        let busy = Uuid::from_u128(3);
        for n in 0..MAX_TAGS_PER_ORGANIZATION {
            let key = Uuid::from_u128(1_000 + (n / MAX_TAGS_PER_KEY) as u128);
            assert_eq!(&*budget.admit(key, busy, &tag(n), 0, &metrics), &*tag(n));
        }
        let fresh_key = Uuid::from_u128(9_999);
        assert_eq!(
            &*budget.admit(fresh_key, busy, &tag(5_000), 0, &metrics),
            OTHER_TAG
        );
        assert!(
            metrics
                .render()
                .contains("keyrack_usage_tag_overflow_total 2")
        );

        budget.prune(1);
        assert_eq!(budget.keys.len(), 1, "only the key seen in hour 1 is kept");
    }
}
