use std::fmt;

use crate::Error;

/// A permission a key can hold, exactly as the product docs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `chat`: chat/completion requests.
    Chat,
    /// `agents:read`: list and view agents.
    AgentsRead,
    /// `agents:write`: create/edit agents.
    AgentsWrite,
    /// `agents:delete`: delete agents.
    AgentsDelete,
    /// `data:read`: view data sources.
    DataRead,
    /// `data:write`: modify data sources.
    DataWrite,
    /// `analytics:read`: view analytics.
    AnalyticsRead,
    /// `admin`: full access; implies every other scope.
    Admin,
}

impl Scope {
    /// Every scope, in the docs' order.
    pub const ALL: [Scope; 8] = [
        Scope::Chat,
        Scope::AgentsRead,
        Scope::AgentsWrite,
        Scope::AgentsDelete,
        Scope::DataRead,
        Scope::DataWrite,
        Scope::AnalyticsRead,
        Scope::Admin,
    ];

    /// The scope's name on the wire, e.g. `agents:read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::AgentsRead => "agents:read",
            Scope::AgentsWrite => "agents:write",
            Scope::AgentsDelete => "agents:delete",
            Scope::DataRead => "data:read",
            Scope::DataWrite => "data:write",
            Scope::AnalyticsRead => "analytics:read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope name. Names are exact: no case folding, no surrounding spaces.
    pub fn parse(name: &str) -> Result<Scope, Error> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == name)
            .ok_or_else(|| Error::InvalidArgument {
                field: "scopes",
                message: format!("unknown scope {name:?}"),
            })
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, as granted to a key. Stored as a bit set so checks cost nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u16);

impl ScopeSet {
    /// The empty set.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Parses a list of scope names as a client sends it. Duplicates collapse; an empty list or
    /// an unknown name is rejected, naming the offending value. `field` names the request field
    /// in the error.
    pub fn parse_list<S: AsRef<str>>(field: &'static str, names: &[S]) -> Result<ScopeSet, Error> {
        if names.is_empty() {
            return Err(Error::InvalidArgument {
                field,
                message: "at least one scope is required".to_owned(),
            });
        }
        let mut set = ScopeSet::EMPTY;
        for name in names {
            let scope = Scope::parse(name.as_ref()).map_err(|_| Error::InvalidArgument {
                field,
                message: format!("unknown scope {:?}", name.as_ref()),
            })?;
            set.insert(scope);
        }
        Ok(set)
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set literally contains `scope`, without the `admin` implication.
    pub fn contains_exactly(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether a key with this set may act under `scope`: it holds it, or holds `admin`.
    pub fn grants(self, scope: Scope) -> bool {
        self.contains_exactly(Scope::Admin) || self.contains_exactly(scope)
    }

    /// The first scope of `required`, in the caller's order, that this set does not grant.
    pub fn first_missing(self, required: &[Scope]) -> Option<Scope> {
        required.iter().copied().find(|scope| !self.grants(*scope))
    }

    /// The scopes both sets grant, spelled out: a key's scopes limited by what its owner may
    /// hold. `admin` survives only if both grant it; each other scope if both grant it (so an
    /// `admin` key of a `member` keeps exactly the member's scopes).
    pub fn limited_to(self, limit: ScopeSet) -> ScopeSet {
        Scope::ALL
            .into_iter()
            .filter(|scope| self.grants(*scope) && limit.grants(*scope))
            .collect()
    }

    /// Whether every scope of `other` is granted by this set: a caller may only grant what it
    /// holds.
    pub fn covers(self, other: ScopeSet) -> bool {
        other.iter().all(|scope| self.grants(scope))
    }

    /// The first scope of `other`, in the docs' order, that this set does not grant.
    pub fn first_uncovered(self, other: ScopeSet) -> Option<Scope> {
        other.iter().find(|scope| !self.grants(*scope))
    }

    /// Every scope.
    pub fn all() -> ScopeSet {
        Scope::ALL.into_iter().collect()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the docs' order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains_exactly(*scope))
    }

    /// The scope names in the docs' order, for the wire and the store.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|scope| scope.as_str().to_owned()).collect()
    }

    /// The bit set as stored; see [`ScopeSet::from_bits`].
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Rebuilds a set from stored bits, dropping bits that name no scope.
    pub fn from_bits(bits: u16) -> ScopeSet {
        let known = Scope::ALL.iter().fold(0, |acc, scope| acc | scope.bit());
        ScopeSet(bits & known)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()).unwrap(), scope);
        }
    }

    #[test]
    fn names_are_exact() {
        for bad in ["Chat", " chat", "agents:Read", "agents", "", "admin "] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn admin_implies_every_scope() {
        let admin: ScopeSet = [Scope::Admin].into_iter().collect();
        for scope in Scope::ALL {
            assert!(admin.grants(scope));
        }
    }

    #[test]
    fn first_missing_follows_request_order() {
        let set: ScopeSet = [Scope::Chat].into_iter().collect();
        let missing = set.first_missing(&[Scope::Chat, Scope::DataWrite, Scope::AgentsWrite]);
        assert_eq!(missing, Some(Scope::DataWrite));
    }

    #[test]
    fn parse_list_names_the_unknown_value_and_refuses_empty() {
        let err = ScopeSet::parse_list("scopes", &["chat", "agents:fly"]).unwrap_err();
        assert!(err.to_string().contains("agents:fly"), "{err}");
        let none: [&str; 0] = [];
        assert!(ScopeSet::parse_list("scopes", &none).is_err());
    }

    #[test]
    fn limiting_keeps_only_what_both_grant() {
        let key = ScopeSet::parse_list("scopes", &["admin"]).unwrap();
        let member = ScopeSet::parse_list("scopes", &["chat", "agents:read"]).unwrap();
        assert_eq!(key.limited_to(member), member);
        assert_eq!(member.limited_to(key), member);
        let viewer = ScopeSet::parse_list("scopes", &["agents:read"]).unwrap();
        assert_eq!(member.limited_to(viewer).names(), vec!["agents:read"]);
        assert!(ScopeSet::all().covers(member));
        assert!(!viewer.covers(member));
        assert_eq!(viewer.first_uncovered(member), Some(Scope::Chat));
    }

    #[test]
    fn bits_round_trip() {
        let set = ScopeSet::parse_list("scopes", &["chat", "analytics:read"]).unwrap();
        assert_eq!(ScopeSet::from_bits(set.bits()), set);
        assert_eq!(set.names(), vec!["chat", "analytics:read"]);
    }
}
