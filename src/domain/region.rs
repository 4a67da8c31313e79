//! Where a credential works: its Twilio Region (auth tokens and API keys are valid only in the
//! Region they were created in) and the edge location its requests enter Twilio through.

use std::fmt;

use super::Invalid;

/// A Twilio processing Region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Region {
    /// The United States: `api.twilio.com`, the Region of every credential stored before Regions.
    #[default]
    Us1,
    /// Ireland.
    Ie1,
    /// Australia.
    Au1,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Us1, Region::Ie1, Region::Au1];
    /// The rule, as the proto comments and the README state it.
    pub const RULE: &'static str = "one of \"us1\", \"ie1\", \"au1\" (empty: \"us1\")";

    /// A Region by its Twilio name; empty is US1 (the default of old clients).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "" | "us1" => Ok(Region::Us1),
            "ie1" => Ok(Region::Ie1),
            "au1" => Ok(Region::Au1),
            _ => Err(Invalid::must_be(Self::RULE)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us1 => "us1",
            Region::Ie1 => "ie1",
            Region::Au1 => "au1",
        }
    }

    /// The edge requests take when the credential names none: Twilio's documented pairs
    /// (`api.dublin.ie1.twilio.com`, `api.sydney.au1.twilio.com`); US1 needs none
    /// (`api.twilio.com`).
    pub fn default_edge(self) -> Option<Edge> {
        match self {
            Region::Us1 => None,
            Region::Ie1 => Some(Edge("dublin")),
            Region::Au1 => Some(Edge("sydney")),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Twilio edge location (Twilio's public list, "Edge Locations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge(&'static str);

impl Edge {
    pub const ALL: [&'static str; 9] = [
        "ashburn",
        "dublin",
        "frankfurt",
        "roaming",
        "sao-paulo",
        "singapore",
        "sydney",
        "tokyo",
        "umatilla",
    ];
    /// The rule, as the proto comments and the README state it.
    pub const RULE: &'static str = "empty (the Region's default edge) or one of \"ashburn\", \
        \"dublin\", \"frankfurt\", \"roaming\", \"sao-paulo\", \"singapore\", \"sydney\", \
        \"tokyo\", \"umatilla\"";

    /// An edge by its Twilio name; empty is `None` (the Region's default).
    pub fn parse(s: &str) -> Result<Option<Self>, Invalid> {
        if s.is_empty() {
            return Ok(None);
        }
        Self::ALL
            .iter()
            .find(|e| **e == s)
            .map(|e| Some(Edge(e)))
            .ok_or_else(|| Invalid::must_be(Self::RULE))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// A credential's Region and the edge it was given (`None`: the Region's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Location {
    pub region: Region,
    pub edge: Option<Edge>,
}

impl Location {
    /// The edge requests go through: the one given, or the Region's default.
    pub fn edge(self) -> Option<Edge> {
        self.edge.or(self.region.default_edge())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_edges_parse_by_twilio_name() {
        assert_eq!(Region::parse("").unwrap(), Region::Us1);
        for r in Region::ALL {
            assert_eq!(Region::parse(r.as_str()).unwrap(), r);
        }
        for bad in ["US1", "jp1", "us2", " ie1", "eu"] {
            let e = Region::parse(bad).unwrap_err();
            assert!(e.rule.contains("\"ie1\""), "{bad}: {e}");
        }
        assert_eq!(Edge::parse("").unwrap(), None);
        for e in Edge::ALL {
            assert_eq!(Edge::parse(e).unwrap().unwrap().as_str(), e);
        }
        assert!(Edge::parse("Dublin")
            .unwrap_err()
            .rule
            .contains("sao-paulo"));
    }

    #[test]
    fn a_region_without_an_edge_takes_its_default() {
        let ie1 = Location {
            region: Region::Ie1,
            edge: None,
        };
        assert_eq!(ie1.edge().map(Edge::as_str), Some("dublin"));
        let au1 = Location {
            region: Region::Au1,
            edge: None,
        };
        assert_eq!(au1.edge().map(Edge::as_str), Some("sydney"));
        assert_eq!(Location::default().edge(), None);
        let chosen = Location {
            region: Region::Ie1,
            edge: Edge::parse("frankfurt").unwrap(),
        };
        assert_eq!(chosen.edge().map(Edge::as_str), Some("frankfurt"));
    }
}
