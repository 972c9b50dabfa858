//! Envoy's external authorization (ext_authz), as rules: which scopes a proxied request needs
//! ([`ExtAuthzRoutes`], read from the `--ext-authz-routes` file), who its client is (the
//! source address Envoy reports, walked through `X-Forwarded-For` by the trusted proxies), and
//! the one verification ([`Verifier::verify`], so metering, rate limits and the brute-force
//! guard apply as to VerifyKey). The gRPC front door only decodes Envoy's `CheckRequest` into
//! an [`AuthzRequest`] and encodes the [`Decision`].

use std::{fmt, net::IpAddr, sync::Arc};

use key_core::{Error, Scope, Verdict};
use serde::Deserialize;

use super::{MAX_TAG_LEN, Mode, Verification, Verifier, VerifyContext};

/// The routes of `--ext-authz-routes`: tried in the file's order, the first that matches
/// decides. A request that matches none is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtAuthzRoutes {
    routes: Vec<Route>,
}

/// One route: which requests it matches, and what they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The host it matches (lower case, without a port); any host when `None`.
    host: Option<String>,
    /// The methods it matches (upper case); any method when empty.
    methods: Vec<String>,
    /// The path prefix it matches, by whole segments (see [`ExtAuthzRoutes::find`]).
    path_prefix: String,
    /// The scopes a key needs here.
    scopes: Vec<Scope>,
    /// The tag the verification is counted under in usage by tag.
    tag: Option<Arc<str>>,
}

/// The file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(default)]
    route: Vec<RouteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    host: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    path_prefix: String,
    #[serde(default)]
    scopes: Vec<String>,
    tag: Option<String>,
}

/// Why a routes file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A route that cannot match anything, or names what does not exist.
    #[error("route {index}: {message}")]
    Route {
        /// The route's position in the file, from 1.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No route at all: every request would be refused.
    #[error("the file defines no [[route]]")]
    Empty,
}

impl ExtAuthzRoutes {
    /// Reads the TOML of a routes file: `[[route]]` tables with `path_prefix` (required,
    /// starting with `/`), `host`, `methods`, `scopes` (names, e.g. `agents:read`) and `tag`.
    pub fn parse(text: &str) -> Result<ExtAuthzRoutes, RoutesError> {
        let file: RoutesFile = toml::from_str(text)?;
        if file.route.is_empty() {
            return Err(RoutesError::Empty);
        }
        let routes = file
            .route
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                Route::from_entry(entry).map_err(|message| RoutesError::Route {
                    index: index + 1,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ExtAuthzRoutes { routes })
    }

    /// The first route matching the request: its host (compared without a port and in any
    /// case), its method, and its path, whose query is ignored. A prefix matches whole
    /// segments: `/v1/chat` matches `/v1/chat` and `/v1/chat/x` but not `/v1/chatter`; a prefix
    /// ending in `/` matches everything under it.
    pub fn find(&self, host: &str, method: &str, path: &str) -> Option<&Route> {
        let host = host_without_port(host);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.routes.iter().find(|route| {
            route
                .host
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(host))
                && (route.methods.is_empty()
                    || route
                        .methods
                        .iter()
                        .any(|wanted| wanted.eq_ignore_ascii_case(method)))
                && prefix_matches(&route.path_prefix, path)
        })
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is none (never, for parsed routes).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Route {
    fn from_entry(entry: RouteEntry) -> Result<Route, String> {
        if !entry.path_prefix.starts_with('/') {
            return Err(format!(
                "path_prefix {:?} does not start with /",
                entry.path_prefix
            ));
        }
        let scopes = entry
            .scopes
            .iter()
            .map(|name| Scope::parse(name).map_err(|_| format!("unknown scope {name:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let host = match entry.host {
            Some(host) if host.is_empty() || host.contains(['/', ' ']) => {
                return Err(format!("host {host:?} is not a host name"));
            }
            host => host.map(|host| host.to_ascii_lowercase()),
        };
        let methods = entry
            .methods
            .into_iter()
            .map(|method| {
                if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(method.to_ascii_uppercase())
                } else {
                    Err(format!("method {method:?} is not an HTTP method"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The same rule as VerifyContext's, checked here once rather than dropped at every
        // request.
        let tag = match entry.tag {
            None => None,
            Some(tag)
                if (1..=MAX_TAG_LEN).contains(&tag.len())
                    && tag.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
            {
                Some(Arc::from(tag))
            }
            Some(tag) => {
                return Err(format!(
                    "tag {tag:?} is not 1 to {MAX_TAG_LEN} printable ASCII characters"
                ));
            }
        };
        Ok(Route {
            host,
            methods,
            path_prefix: entry.path_prefix,
            scopes,
            tag,
        })
    }

    /// The scopes a key needs on this route.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// `example.com:8443` → `example.com`, `[2001:db8::1]:443` → `[2001:db8::1]`.
fn host_without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon)
            if !host[colon..].contains(']')
                && host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..colon]
        }
        _ => host,
    }
}

/// How the client's address is found from the address a proxy reports and the
/// `X-Forwarded-For` entries (leftmost first): the binary passes its `--trusted-proxies` walk.
pub type ClientAddresses = Arc<dyn Fn(IpAddr, &[&str]) -> IpAddr + Send + Sync>;

/// One authorization request, decoded from the proxy's.
#[derive(Debug, Clone, Default)]
pub struct AuthzRequest<'a> {
    /// The bearer credential of the request; `None` when it sent none (or another scheme).
    pub key: Option<&'a str>,
    /// The request's host (`:authority`).
    pub host: &'a str,
    /// Its method.
    pub method: &'a str,
    /// Its path, possibly with a query.
    pub path: &'a str,
    /// The address of the proxy's downstream peer, if it told.
    pub source: Option<IpAddr>,
    /// The request's `X-Forwarded-For` entries, leftmost first.
    pub forwarded_for: Vec<&'a str>,
    /// Who asked (the proxy itself): the brute-force guard counts by it when no source is told.
    pub peer: Option<IpAddr>,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug)]
pub enum Decision {
    /// The key may proceed; the verification names it and its scopes.
    Allow(Verification),
    /// Refused with `error`; `verification` is there when a key was verified (its verdict
    /// tells a rate limit's retry time).
    Deny {
        /// What the client is told.
        error: Error,
        /// The verification, when one was made.
        verification: Option<Verification>,
    },
}

/// Answers ext_authz checks: the routes, the verifier VerifyKey uses, and how clients are found.
#[derive(Clone)]
pub struct ExtAuthz {
    verifier: Verifier,
    routes: Arc<ExtAuthzRoutes>,
    clients: ClientAddresses,
}

impl fmt::Debug for ExtAuthz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtAuthz")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

/// The refusal of a request that matches no route.
pub const NO_ROUTE_MESSAGE: &str = "no ext_authz route matches this request";

impl ExtAuthz {
    /// Checks with `verifier`, against `routes`; the client is the reported source address
    /// itself until [`ExtAuthz::with_client_addresses`] says how to walk `X-Forwarded-For`.
    pub fn new(verifier: Verifier, routes: ExtAuthzRoutes) -> ExtAuthz {
        ExtAuthz {
            verifier,
            routes: Arc::new(routes),
            clients: Arc::new(|source, _| source),
        }
    }

    /// Finds clients with `clients` (the trusted proxies' walk of `X-Forwarded-For`).
    pub fn with_client_addresses(mut self, clients: ClientAddresses) -> ExtAuthz {
        self.clients = clients;
        self
    }

    /// Decides a request: the first matching route names the scopes (no route: refused,
    /// before the key is read), a missing credential is refused as forward-auth refuses it,
    /// and anything else is one verification, counted and limited as VerifyKey's. `Err` only
    /// when the verification cannot be made (the store is unavailable).
    pub async fn check(&self, request: &AuthzRequest<'_>) -> Result<Decision, Error> {
        let Some(route) = self.routes.find(request.host, request.method, request.path) else {
            return Ok(Decision::Deny {
                error: Error::Forbidden(NO_ROUTE_MESSAGE.to_owned()),
                verification: None,
            });
        };
        let Some(key) = request.key else {
            return Ok(Decision::Deny {
                error: Error::MissingApiKey,
                verification: None,
            });
        };
        let context = VerifyContext {
            client_ip: request
                .source
                .map(|source| (self.clients)(source, &request.forwarded_for)),
            peer: request.peer,
            country: None,
            tag: route.tag.clone(),
            cost: 1,
        };
        let verification = self
            .verifier
            .verify(key, &route.scopes, &context, Mode::Request)
            .await?;
        Ok(match verification.error() {
            None => Decision::Allow(verification),
            Some(error) => Decision::Deny {
                error,
                verification: Some(verification),
            },
        })
    }
}

impl Decision {
    /// The verdict's wait before a retry, for a rate limit or a cooling-off client.
    pub fn retry_after(&self) -> Option<chrono::TimeDelta> {
        match self {
            Decision::Deny {
                verification: Some(verification),
                ..
            } => match verification.verdict {
                Verdict::RateLimited { retry_after, .. }
                | Verdict::TooManyFailures { retry_after, .. } => Some(retry_after),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = r#"
        [[route]]
        host = "api.example.com"
        methods = ["post"]
        path_prefix = "/v1/agents"
        scopes = ["agents:write"]
        tag = "POST /v1/agents"

        [[route]]
        path_prefix = "/v1/agents"
        scopes = ["agents:read"]

        [[route]]
        path_prefix = "/public/"
    "#;

    fn scopes(route: Option<&Route>) -> Option<Vec<&str>> {
        route.map(|route| route.scopes().iter().map(|scope| scope.as_str()).collect())
    }

    #[test]
    fn the_first_matching_route_decides() {
        let routes = ExtAuthzRoutes::parse(ROUTES).unwrap();
        assert_eq!(routes.len(), 3);
        let find = |host, method, path| scopes(routes.find(host, method, path));
        assert_eq!(
            find("API.example.com:8443", "POST", "/v1/agents/7?x=1"),
            Some(vec!["agents:write"])
        );
        assert_eq!(
            find("api.example.com", "GET", "/v1/agents"),
            Some(vec!["agents:read"])
        );
        assert_eq!(
            find("other.example", "POST", "/v1/agents"),
            Some(vec!["agents:read"])
        );
        assert_eq!(find("x", "GET", "/public/"), Some(vec![]));
        assert_eq!(find("x", "GET", "/public/a/b"), Some(vec![]));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let routes = ExtAuthzRoutes::parse(ROUTES).unwrap();
        assert_eq!(routes.find("x", "GET", "/v1/agentsx"), None);
        assert_eq!(routes.find("x", "GET", "/v1/agent"), None);
        assert_eq!(routes.find("x", "GET", "/public"), None);
        assert_eq!(routes.find("x", "GET", "/"), None);
    }

    #[test]
    fn hosts_lose_their_port_only() {
        assert_eq!(host_without_port("example.com:80"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(host_without_port("[2001:db8::1]"), "[2001:db8::1]");
    }

    #[test]
    fn mistakes_in_the_file_are_refused_with_the_route_named() {
        for (text, expected) in [
            ("", "no [[route]]"),
            ("[[route]]\npath_prefix = \"v1\"", "route 1: path_prefix"),
            (
                "[[route]]\npath_prefix = \"/\"\nscopes = [\"agents:fly\"]",
                "route 1: unknown scope",
            ),
            (
                "[[route]]\npath_prefix = \"/\"\nmethods = [\"GE T\"]",
                "route 1: method",
            ),
            ("[[route]]\npath_prefix = \"/\"\ntag = \"\"", "route 1: tag"),
            (
                "[[route]]\npath_prefix = \"/\"\nhost = \"\"",
                "route 1: host",
            ),
            (
                "[[route]]\npath_prefix = \"/\"\nscope = [\"chat\"]",
                "unknown field",
            ),
            ("[[route]]\nscopes = [\"chat\"]", "missing field"),
        ] {
            let error = ExtAuthzRoutes::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
