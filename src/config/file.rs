//! The TOML config file: groups of settings (`[server]`, `[store]`, `[twilio]`, `[limits]`,
//! `[log]`). Every key must be one [`super::settings`] knows; anything else is an error naming the
//! key, the file and the line, so a typo never silently leaves a default in force.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::settings::{self, Setting};
use super::ConfigError;
use crate::auth::Caller;

/// One value the file sets.
pub(super) struct Entry {
    pub setting: &'static Setting,
    pub text: String,
    pub line: usize,
}

/// What the file holds: settings, and the `[[callers]]` (checked).
#[derive(Default)]
pub(super) struct Parsed {
    pub entries: Vec<Entry>,
    pub callers: Vec<Caller>,
}

pub(super) fn read(path: &Path) -> Result<Parsed, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        place: path.display().to_string(),
        reason: format!("cannot read the config file: {e}"),
    })?;
    parse(path, &text)
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ConfigError> {
    let at = |span: std::ops::Range<usize>| Place { path, text, span };
    let doc = DeTable::parse(text).map_err(|e| {
        at(e.span().unwrap_or(0..0)).error(format!("not valid TOML: {}", e.message()))
    })?;
    let mut entries = Vec::new();
    let mut callers = Vec::new();
    for (group, table) in doc.get_ref() {
        if group.get_ref() == "callers" {
            callers = super::callers::parse(table, &at)?;
            continue;
        }
        let DeValue::Table(table) = table.get_ref() else {
            return Err(at(group.span()).error(format!(
                "`{}` must be a [group]: settings live in {}",
                group.get_ref(),
                known_groups()
            )));
        };
        if !settings::groups().any(|g| g == group.get_ref().as_ref()) {
            return Err(at(group.span()).error(format!(
                "unknown group [{}] (known groups: {})",
                group.get_ref(),
                known_groups()
            )));
        }
        for (key, value) in table {
            let name = format!("{}.{}", group.get_ref(), key.get_ref());
            let Some(setting) = settings::find(&name) else {
                return Err(at(key.span()).error(format!(
                    "unknown key `{name}` (known keys in [{}]: {})",
                    group.get_ref(),
                    known_keys(group.get_ref())
                )));
            };
            let text = scalar(value.get_ref()).ok_or_else(|| {
                at(value.span()).error(format!(
                    "`{name}` must be a string or a number, not {}",
                    value.get_ref().type_str()
                ))
            })?;
            entries.push(Entry {
                setting,
                text,
                line: at(key.span()).line(),
            });
        }
    }
    // The map is sorted by key; report and apply in the file's order.
    entries.sort_by_key(|e| e.line);
    Ok(Parsed { entries, callers })
}

/// Where in the file something is.
pub(super) struct Place<'a> {
    path: &'a Path,
    text: &'a str,
    span: std::ops::Range<usize>,
}

impl Place<'_> {
    pub fn line(&self) -> usize {
        let end = self.span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn error(&self, reason: String) -> ConfigError {
        self.error_at(self.line(), reason)
    }

    /// An error about something that starts on `line` of this file.
    pub fn error_at(&self, line: usize, reason: String) -> ConfigError {
        ConfigError {
            place: format!("{} line {line}", self.path.display()),
            reason,
        }
    }
}

/// The text of a string, integer or boolean, as an environment variable would hold it.
pub(super) fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn known_groups() -> String {
    settings::groups()
        .map(|g| format!("[{g}]"))
        .chain(["[[callers]]".to_string()])
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_keys(group: &str) -> String {
    settings::SETTINGS
        .iter()
        .filter(|s| s.group() == group)
        .map(Setting::key)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Parsed, ConfigError> {
        parse(Path::new("/etc/credvault.toml"), text)
    }

    #[test]
    fn reads_groups_and_values() {
        let entries = parse_str(
            "[server]\nlisten = \"127.0.0.1:7000\"\n\n[limits]\nmax_connections = 0x10\nrpc_timeout_ms = 1_500\n",
        )
        .unwrap()
        .entries;
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.setting.name, e.text.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("server.listen", "127.0.0.1:7000", 2),
                ("limits.max_connections", "16", 5),
                ("limits.rpc_timeout_ms", "1500", 6),
            ]
        );
    }

    #[test]
    fn callers_are_read_checked_and_their_errors_carry_a_line() {
        let hash = "ab".repeat(32);
        let parsed = parse_str(&format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n\n[[callers]]\nname = \"sender\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"resolve\"]\nowners = [\"acme\", \"gov.sg:*\"]\n\n[[callers]]\nname = \"ops\"\ncert_identity = \"spiffe://campaigns/ops\"\nscopes = [\"list\"]\nowners = [\"*\"]\ntest_recipients = [\"+65*\"]\n"
        ))
        .unwrap();
        let names: Vec<_> = parsed.callers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sender", "ops"]);
        use crate::auth::Pattern;
        assert_eq!(
            parsed.callers[0].owners,
            [
                Pattern::Exact("acme".into()),
                Pattern::Prefix("gov.sg:".into())
            ]
        );
        assert_eq!(
            parsed.callers[1].test_recipients,
            Some(vec![Pattern::Prefix("+65".into())])
        );

        let e = parse_str("[[callers]]\nname = \"x\"\ntokn = \"y\"\n")
            .err()
            .unwrap();
        assert_eq!(e.place, "/etc/credvault.toml line 3");
        assert!(e.reason.contains("unknown key `callers.tokn`"), "{e}");
        let e = parse_str("\n[[callers]]\nname = \"x\"\nscopes = [\"root\"]\nowners = [\"*\"]\ntoken_sha256 = \"{}\"\n".replace("{}", &hash).as_str())
            .err()
            .unwrap();
        assert!(
            e.reason.contains("caller 'x': unknown scope \"root\""),
            "{e}"
        );
        assert!(
            e.place.ends_with("line 2") || e.place.ends_with("line 3"),
            "{e}"
        );
        let e = parse_str("callers = 3\n").err().unwrap();
        assert!(e.reason.contains("[[callers]]"), "{e}");
    }

    #[test]
    fn an_unknown_key_names_the_key_the_file_and_the_line() {
        let e = parse_str("[limits]\nmax_connections = 10\nmax_conections = 10\n")
            .err()
            .unwrap();
        assert_eq!(e.place, "/etc/credvault.toml line 3");
        assert!(
            e.reason.contains("unknown key `limits.max_conections`"),
            "{e}"
        );
        assert!(e.reason.contains("max_connections"), "{e}");

        let e = parse_str("\n[serveur]\nlisten = \"x\"\n").err().unwrap();
        assert_eq!(e.place, "/etc/credvault.toml line 2");
        assert!(e.reason.contains("unknown group [serveur]"), "{e}");

        let e = parse_str("listen = \"127.0.0.1:1\"\n").err().unwrap();
        assert!(e.reason.contains("must be a [group]"), "{e}");

        let e = parse_str("[server]\nlisten = [1]\n").err().unwrap();
        assert_eq!(e.place, "/etc/credvault.toml line 2");

        let e = parse_str("[server\n").err().unwrap();
        assert!(e.reason.starts_with("not valid TOML"), "{e}");
    }
}

#[cfg(test)]
mod example {
    use super::*;
    use crate::config::Config;

    /// `examples/credvault.toml` sets every setting once, to its default, and names its variable.
    #[test]
    fn the_example_file_documents_every_setting_with_its_default() {
        let text = include_str!("../../examples/credvault.toml");
        let entries = parse(Path::new("examples/credvault.toml"), text)
            .unwrap()
            .entries;
        let defaults = Config::with_data_dir("credvault-data");
        for s in settings::SETTINGS {
            let set: Vec<_> = entries
                .iter()
                .filter(|e| std::ptr::eq(e.setting, s))
                .collect();
            assert_eq!(
                set.len(),
                1,
                "{} in the example {} times",
                s.name,
                set.len()
            );
            let mut c = Config::with_data_dir("x");
            (s.set)(&mut c, &set[0].text).unwrap();
            assert_eq!(
                (s.show)(&c),
                (s.show)(&defaults),
                "{}: not the default",
                s.name
            );
            assert!(
                text.contains(s.env),
                "{} is not named in the example",
                s.env
            );
        }
    }

    /// The README's configuration table has a row for every setting.
    #[test]
    fn the_readme_lists_every_setting() {
        let readme = include_str!("../../README.md");
        for s in settings::SETTINGS {
            let row = format!("| `{}` | `{}` |", s.name, s.env);
            assert!(readme.contains(&row), "README.md has no row {row}");
        }
    }
}
