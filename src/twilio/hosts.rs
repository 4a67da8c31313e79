//! Where a credential's requests go. Twilio's rule: `{product}.{edge}.{region}.twilio.com`, or
//! `{product}.twilio.com` for US1 without an edge. The operator may set other bases per Region
//! (a proxy; in tests, a fake Twilio per Region), which then serve every edge of that Region.

use std::sync::Arc;

use super::errors::BuildError;
use crate::config::TwilioConfig;
use crate::domain::{Location, Region};

/// The two APIs credvault calls, and callers get from Resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls {
    /// The REST API (2010-04-01), no trailing slash.
    pub api: String,
    /// The Messaging v1 API, no trailing slash.
    pub messaging: String,
}

/// The operator's bases, by Region (`None`: Twilio's host).
#[derive(Debug, Clone)]
pub struct Hosts {
    overrides: Arc<[(Option<String>, Option<String>); 3]>,
}

impl Hosts {
    /// Checks every base the operator set: a typo stops startup instead of failing every
    /// validation later.
    pub fn new(cfg: &TwilioConfig) -> Result<Self, BuildError> {
        let pair = |api: (&str, &str), messaging: (&str, &str)| {
            Ok::<_, BuildError>((checked(api)?, checked(messaging)?))
        };
        Ok(Self {
            overrides: Arc::new([
                pair(
                    ("twilio.api_base (CREDVAULT_TWILIO_API_BASE)", &cfg.api_base),
                    (
                        "twilio.messaging_base (CREDVAULT_TWILIO_MESSAGING_BASE)",
                        &cfg.messaging_base,
                    ),
                )?,
                pair(
                    (
                        "twilio.ie1_api_base (CREDVAULT_TWILIO_IE1_API_BASE)",
                        &cfg.ie1_api_base,
                    ),
                    (
                        "twilio.ie1_messaging_base (CREDVAULT_TWILIO_IE1_MESSAGING_BASE)",
                        &cfg.ie1_messaging_base,
                    ),
                )?,
                pair(
                    (
                        "twilio.au1_api_base (CREDVAULT_TWILIO_AU1_API_BASE)",
                        &cfg.au1_api_base,
                    ),
                    (
                        "twilio.au1_messaging_base (CREDVAULT_TWILIO_AU1_MESSAGING_BASE)",
                        &cfg.au1_messaging_base,
                    ),
                )?,
            ]),
        })
    }

    /// The bases for a credential's Region and edge.
    pub fn for_location(&self, loc: Location) -> BaseUrls {
        let (api, messaging) = &self.overrides[index(loc.region)];
        BaseUrls {
            api: api.clone().unwrap_or_else(|| twilio_host("api", loc)),
            messaging: messaging
                .clone()
                .unwrap_or_else(|| twilio_host("messaging", loc)),
        }
    }
}

fn index(region: Region) -> usize {
    match region {
        Region::Us1 => 0,
        Region::Ie1 => 1,
        Region::Au1 => 2,
    }
}

fn twilio_host(product: &str, loc: Location) -> String {
    match loc.edge() {
        Some(edge) => format!(
            "https://{product}.{}.{}.twilio.com",
            edge.as_str(),
            loc.region.as_str()
        ),
        // Only US1 has no default edge.
        None => format!("https://{product}.twilio.com"),
    }
}

/// An operator's base, trimmed of its trailing slash; empty is `None` (Twilio's host).
fn checked((var, base): (&str, &str)) -> Result<Option<String>, BuildError> {
    if base.is_empty() {
        return Ok(None);
    }
    check_base(var, base)?;
    Ok(Some(base.trim_end_matches('/').to_owned()))
}

/// A base URL must be https, or http to this machine only (a fake or a mock in tests): basic
/// auth carries the secret and must not travel in clear.
fn check_base(var: &str, base: &str) -> Result<(), BuildError> {
    let url = reqwest::Url::parse(base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(url) = url.filter(|u| u.has_host()) else {
        return Err(BuildError(format!(
            "{var} must be an https URL, got {base:?}"
        )));
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(BuildError(format!(
            "{var} is plaintext http to a remote host ({base:?}): the auth token would travel in \
             clear; use https (http is accepted for 127.0.0.1, ::1 and localhost only)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Edge;

    fn at(region: Region, edge: &str) -> Location {
        Location {
            region,
            edge: Edge::parse(edge).unwrap(),
        }
    }

    #[test]
    fn twilio_hosts_follow_the_region_and_edge_rule() {
        let cfg = crate::Config::with_data_dir("unused").twilio;
        let hosts = Hosts::new(&cfg).unwrap();
        for (loc, api, messaging) in [
            (
                at(Region::Us1, ""),
                "https://api.twilio.com",
                "https://messaging.twilio.com",
            ),
            (
                at(Region::Ie1, ""),
                "https://api.dublin.ie1.twilio.com",
                "https://messaging.dublin.ie1.twilio.com",
            ),
            (
                at(Region::Au1, ""),
                "https://api.sydney.au1.twilio.com",
                "https://messaging.sydney.au1.twilio.com",
            ),
            (
                at(Region::Us1, "umatilla"),
                "https://api.umatilla.us1.twilio.com",
                "https://messaging.umatilla.us1.twilio.com",
            ),
        ] {
            let urls = hosts.for_location(loc);
            assert_eq!(
                (urls.api.as_str(), urls.messaging.as_str()),
                (api, messaging)
            );
        }
    }

    #[test]
    fn an_operator_base_serves_its_region_only() {
        let mut cfg = crate::Config::with_data_dir("unused").twilio;
        cfg.ie1_api_base = "http://127.0.0.1:4010/".into();
        let hosts = Hosts::new(&cfg).unwrap();
        let ie1 = hosts.for_location(at(Region::Ie1, "frankfurt"));
        assert_eq!(ie1.api, "http://127.0.0.1:4010");
        assert_eq!(ie1.messaging, "https://messaging.frankfurt.ie1.twilio.com");
        assert_eq!(
            hosts.for_location(at(Region::Us1, "")).api,
            "https://api.twilio.com"
        );
    }

    #[test]
    fn bad_base_urls_are_refused_at_startup() {
        let mut cfg = crate::Config::with_data_dir("unused").twilio;
        cfg.au1_messaging_base = "messaging.twilio.com".into();
        let err = Hosts::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("CREDVAULT_TWILIO_AU1_MESSAGING_BASE"), "{err}");
    }

    #[test]
    fn plaintext_http_is_for_loopback_only() {
        for ok in [
            "https://api.twilio.com",
            "http://127.0.0.1:4010",
            "http://127.1.2.3",
            "http://[::1]:9",
            "http://localhost:4010/",
        ] {
            assert!(check_base("V", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.twilio.com",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
        ] {
            assert!(check_base("V", bad).is_err(), "{bad}");
        }
        let err = check_base("V", "http://api.twilio.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clear"), "{err}");
    }
}
