//! What a web browser may do with the listeners. A browser on the
//! operator's machine reaches loopback too, and it sends requests for any
//! page it shows, so two checks come before anything else on both
//! listeners:
//!
//! - **`Host`** (DNS rebinding): a page on `rebind.attacker.example` that
//!   resolves its name to 127.0.0.1 sends `Host: rebind.attacker.example`.
//!   A listener answers only an address, `localhost`, or a name it was
//!   given (`CODE_RUNNER_API_HOSTS`, `CODE_RUNNER_ADMIN_HOSTS`). The job
//!   API checks it only when no keys are configured: with keys, a page
//!   holds none, and the API may be published under any name.
//! - **`Origin`** (cross-site requests): a browser names the page that made
//!   a request in `Origin`, on every `POST`, every WebSocket upgrade and
//!   every cross-origin `fetch`. A request that carries one must come from
//!   the listener's own pages (the playground, the dashboard: the origin's
//!   host is the request's `Host`) or, on the job API, from an origin the
//!   operator lists (`CODE_RUNNER_CORS_ORIGINS`); anything else is refused
//!   with 403 before it is routed. "Simple" cross-site `POST`s (a form, or
//!   `fetch` with `text/plain`) need no CORS preflight, and WebSockets have
//!   no CORS at all, so checking `Origin` is what stops them. Clients that
//!   are not browsers send no `Origin` and are unaffected.
//!
//! The listed origins also get real CORS ([`cors_layer`]): preflights
//! answered, `Access-Control-Allow-Origin` on answers, the headers a client
//! needs exposed, so a web front end elsewhere can call the API with its
//! key. Credentials (cookies) are never allowed: the API authenticates by
//! header, and `*` is allowed only when keys are configured.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{ApiError, Family};

/// Origins the job API accepts from other sites (besides its own pages).
#[derive(Debug, Clone, PartialEq)]
pub enum CorsOrigins {
    /// `scheme://host[:port]`, lowercased, as browsers send them.
    List(Vec<String>),
    /// Any origin (`*`): only with API keys.
    Any,
}

/// What a browser may do with one listener.
#[derive(Debug, Clone)]
pub struct BrowserPolicy {
    /// Names besides addresses and `localhost` that `Host` may carry;
    /// `None`: any name (the job API with keys).
    hosts: Option<Arc<Vec<String>>>,
    /// The setting that lists them, for the refusal's message.
    hosts_setting: &'static str,
    /// Origins besides the listener's own pages (CORS).
    origins: CorsOrigins,
}

impl BrowserPolicy {
    /// The job API's policy: `hosts` checked only without keys
    /// (`keys_on`), `origins` as `CODE_RUNNER_CORS_ORIGINS` lists them.
    /// Refuses `*` without keys, and anything that is not an origin.
    pub fn api(hosts: &[String], origins: &[String], keys_on: bool) -> Result<Self, String> {
        let origins = parse_origins(origins)?;
        if origins == CorsOrigins::Any && !keys_on {
            return Err(
                "CODE_RUNNER_CORS_ORIGINS=* lets every web page use the API: it is \
                        allowed only with API keys (CODE_RUNNER_API_KEYS); list the origins \
                        instead"
                    .into(),
            );
        }
        Ok(BrowserPolicy {
            hosts: (!keys_on).then(|| Arc::new(host_names(hosts))),
            hosts_setting: "CODE_RUNNER_API_HOSTS",
            origins,
        })
    }

    /// The admin listener's: `hosts` always checked, only its own pages.
    pub fn admin(hosts: &[String]) -> Self {
        BrowserPolicy {
            hosts: Some(Arc::new(host_names(hosts))),
            hosts_setting: "CODE_RUNNER_ADMIN_HOSTS",
            origins: CorsOrigins::List(Vec::new()),
        }
    }

    /// The origins CORS answers (for [`cors_layer`]).
    pub fn cors_origins(&self) -> &CorsOrigins {
        &self.origins
    }

    /// Why a request with these `Host` and `Origin` headers is refused, if
    /// it is: the header at fault and what to say.
    fn refusal(&self, host: Option<&str>, origin: Option<&str>) -> Option<(&'static str, String)> {
        if let (Some(hosts), Some(host)) = (&self.hosts, host) {
            let name = host_part(host);
            let known = name.as_ref().is_some_and(|name| {
                name == "localhost"
                    || name.parse::<std::net::IpAddr>().is_ok()
                    || hosts.contains(name)
            });
            let name = name.unwrap_or_else(|| host.to_string());
            if !known {
                return Some((
                    "Host",
                    format!(
                        "this service does not answer to the host {name:?}: a web page may \
                         have renamed 127.0.0.1 (DNS rebinding); {} lists the names it may be \
                         reached by",
                        self.hosts_setting
                    ),
                ));
            }
        }
        let origin = origin?;
        let own = host.is_some_and(|host| same_authority(origin, host));
        let listed = match &self.origins {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin.trim())),
        };
        if own || listed {
            return None;
        }
        Some((
            "Origin",
            format!(
                "a request from the web page at {origin:?} is refused: only this service's own \
                 pages{} may call it from a browser",
                if self.hosts_setting == "CODE_RUNNER_API_HOSTS" {
                    " and the origins in CODE_RUNNER_CORS_ORIGINS"
                } else {
                    ""
                }
            ),
        ))
    }
}

/// The middleware of both listeners: refuses (403, in the wire format of
/// the API the route belongs to) a request for a foreign `Host` or from a
/// foreign `Origin`, before it is routed or authenticated.
pub async fn guard(
    State(policy): State<Arc<BrowserPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let refusal = {
        let text = |name: header::HeaderName| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        };
        policy.refusal(text(header::HOST), text(header::ORIGIN))
    };
    if let Some((field, message)) = refusal {
        let error = ApiError::new(StatusCode::FORBIDDEN, message).with_field(field);
        return Family::of(request.uri().path()).render(error);
    }
    next.run(request).await
}

/// CORS for the job API's listed origins (tower-http's): preflights
/// answered for them, `Access-Control-Allow-Origin` added to their
/// answers, no credentials. Requests from other origins never reach it
/// (see [`guard`]), and same-origin ones need none of it.
pub fn cors_layer(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-auth-token"),
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            header::HeaderName::from_static("x-next-token"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// `CODE_RUNNER_CORS_ORIGINS` checked: `*`, or origins as browsers send
/// them (`https://app.example.com`, `http://localhost:5173`).
fn parse_origins(origins: &[String]) -> Result<CorsOrigins, String> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.contains(&"*") {
        return if origins.len() == 1 {
            Ok(CorsOrigins::Any)
        } else {
            Err("CODE_RUNNER_CORS_ORIGINS: `*` stands alone".into())
        };
    }
    origins
        .into_iter()
        .map(|origin| {
            let bad = || {
                format!(
                    "CODE_RUNNER_CORS_ORIGINS: {origin:?} is not an origin \
                     (http or https, a host, an optional port and no path: https://app.example.com)"
                )
            };
            let url = url::Url::parse(origin).map_err(|_| bad())?;
            let serialized = url.origin().ascii_serialization();
            let plain = matches!(url.scheme(), "http" | "https")
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none()
                && matches!(url.path(), "" | "/")
                && origin
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(&serialized);
            if plain { Ok(serialized) } else { Err(bad()) }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(CorsOrigins::List)
}

fn host_names(hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// The host of a `Host` header (an authority: `name[:port]`,
/// `[v6]:port`), lowercased, without an IPv6 address's brackets; `None`
/// when the header is not an authority.
fn host_part(host: &str) -> Option<String> {
    let authority: Authority = host.trim().parse().ok()?;
    Some(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

/// Whether the page at `origin` (`scheme://host[:port]`) is this `Host`:
/// its requests carry its own authority there (compared as `http` does,
/// ignoring case).
fn same_authority(origin: &str, host: &str) -> bool {
    let origin = origin.trim().parse::<Uri>().ok();
    let host = host.trim().parse::<Authority>().ok();
    match (origin.as_ref().and_then(Uri::authority), host) {
        (Some(origin), Some(host)) => *origin == host,
        _ => false,
    }
}

/// A refusal rendered without a request (for tests).
#[cfg(test)]
fn refused(
    policy: &BrowserPolicy,
    host: Option<&str>,
    origin: Option<&str>,
) -> Option<&'static str> {
    policy.refusal(host, origin).map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_header_is_read_as_an_authority() {
        assert_eq!(host_part("LocalHost:3000").as_deref(), Some("localhost"));
        assert_eq!(host_part(" 127.0.0.1 ").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_part("[::1]:3000").as_deref(), Some("::1"));
        assert_eq!(
            host_part("runner.internal").as_deref(),
            Some("runner.internal")
        );
        assert_eq!(host_part("evil.example/path"), None);
        assert_eq!(host_part("a b"), None);
        assert_eq!(host_part(""), None);
    }

    #[test]
    fn a_page_is_same_origin_when_its_authority_is_the_host() {
        assert!(same_authority("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(same_authority("http://LOCALHOST:3000/", "localhost:3000"));
        assert!(same_authority("http://[::1]:3000", "[::1]:3000"));
        assert!(!same_authority("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!same_authority("http://evil.example", "127.0.0.1:3000"));
        assert!(!same_authority("null", "127.0.0.1:3000"));
        assert!(!same_authority("http://127.0.0.1:3000", "not a host"));
    }

    #[test]
    fn without_keys_only_known_hosts_and_own_or_listed_origins_pass() {
        let policy = BrowserPolicy::api(
            &["runner.internal".into()],
            &["https://app.example.com".into()],
            false,
        )
        .unwrap();
        for host in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:3000",
            "runner.internal",
        ] {
            assert_eq!(refused(&policy, Some(host), None), None, "{host}");
        }
        assert_eq!(
            refused(&policy, Some("rebind.attacker.example:3000"), None),
            Some("Host")
        );
        // The playground's own origin; a listed one; foreign ones.
        let host = Some("127.0.0.1:3000");
        assert_eq!(refused(&policy, host, Some("http://127.0.0.1:3000")), None);
        assert_eq!(
            refused(&policy, host, Some("https://app.example.com")),
            None
        );
        for origin in ["http://evil.example", "null", "http://127.0.0.1:3001"] {
            assert_eq!(
                refused(&policy, host, Some(origin)),
                Some("Origin"),
                "{origin}"
            );
        }
        // No Origin: not a browser, or a same-origin GET.
        assert_eq!(refused(&policy, host, None), None);
    }

    #[test]
    fn with_keys_any_host_passes_but_origins_are_still_checked() {
        let policy = BrowserPolicy::api(&[], &[], true).unwrap();
        assert_eq!(refused(&policy, Some("api.example.com"), None), None);
        assert_eq!(
            refused(
                &policy,
                Some("api.example.com"),
                Some("https://api.example.com")
            ),
            None
        );
        assert_eq!(
            refused(
                &policy,
                Some("api.example.com"),
                Some("http://evil.example")
            ),
            Some("Origin")
        );
        let any = BrowserPolicy::api(&[], &["*".into()], true).unwrap();
        assert_eq!(
            refused(&any, Some("api.example.com"), Some("http://x.example")),
            None
        );
    }

    #[test]
    fn the_origins_setting_is_checked() {
        assert!(BrowserPolicy::api(&[], &["*".into()], false).is_err());
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "*, https://a.example",
        ] {
            let list: Vec<String> = bad.split(", ").map(str::to_string).collect();
            assert!(BrowserPolicy::api(&[], &list, true).is_err(), "{bad}");
        }
        let policy = BrowserPolicy::api(&[], &["HTTPS://App.Example.com/".into()], true).unwrap();
        assert_eq!(
            policy.cors_origins(),
            &CorsOrigins::List(vec!["https://app.example.com".into()])
        );
    }
}
