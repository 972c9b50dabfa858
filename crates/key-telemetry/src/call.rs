//! What a call's handlers learn that its access log and span report: the key it concerns
//! (the caller's on an admin call, the verified one on VerifyKey), its organization and the
//! verdict. The telemetry layer puts a [`CallSlot`] in the request's extensions; the
//! authentication layer and the handler fill it; the layer reads it once the answer is ready.
//! Ids only: never a key.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// What the slot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallFacts {
    /// The key the call concerns.
    pub key_id: Option<Uuid>,
    /// That key's organization.
    pub organization_id: Option<Uuid>,
    /// VerifyKey's verdict.
    pub verdict: Option<&'static str>,
}

/// A call's facts, shared between the telemetry layer and the code under it.
#[derive(Debug, Clone, Default)]
pub struct CallSlot(Arc<Mutex<CallFacts>>);

impl CallSlot {
    /// Names the key (and its organization) the call concerns; a later name replaces it.
    pub fn set_key(&self, key_id: Uuid, organization_id: Uuid) {
        let mut facts = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        facts.key_id = Some(key_id);
        facts.organization_id = Some(organization_id);
    }

    /// Records VerifyKey's verdict.
    pub fn set_verdict(&self, verdict: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .verdict = Some(verdict);
    }

    /// What was recorded.
    pub fn facts(&self) -> CallFacts {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
