//! Layering the sources: defaults < the TOML file < `CREDVAULT_*` variables < flags, each value
//! parsed by its [`Setting`], and remembered with where it came from so `config check` can say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::settings::{self, Setting, OTHER_ENV, SETTINGS};
use super::{file, Config, ConfigError};
use crate::auth;

/// Where the settings come from. Tests build one by hand; the binary from its process.
#[derive(Debug, Default)]
pub struct Sources {
    /// The TOML file (`--config` or `CREDVAULT_CONFIG`), if any.
    pub file: Option<PathBuf>,
    /// The `CREDVAULT_*` environment variables (others are ignored).
    pub env: BTreeMap<String, String>,
    /// Flags, by setting name (`server.listen`): they override everything else.
    pub flags: Vec<(&'static str, String)>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { line: usize },
    Env(&'static str),
    Flag,
}

/// The effective config, and what a loader should warn about.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Unknown `CREDVAULT_*` variables: warned about, never fatal (Kubernetes injects
    /// `CREDVAULT_PORT`, `CREDVAULT_SERVICE_HOST`, ... into every pod of a Service named credvault).
    pub warnings: Vec<String>,
    origins: Vec<Origin>,
    file: Option<PathBuf>,
}

impl Sources {
    /// The process's environment, with the file named by `CREDVAULT_CONFIG` unless `file` is given.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("CREDVAULT_"))
            .collect();
        let file = file.or_else(|| {
            env.get("CREDVAULT_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        Self {
            file,
            env,
            flags: Vec::new(),
        }
    }

    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut config = Config::with_data_dir("credvault-data");
        let mut origins = vec![Origin::Default; SETTINGS.len()];
        let mut set = |setting: &'static Setting, text: &str, origin: Origin, place: String| {
            (setting.set)(&mut config, text).map_err(|reason| ConfigError {
                place,
                reason: format!("invalid {}: {reason}", setting.name),
            })?;
            origins[index(setting)] = origin;
            Ok::<_, ConfigError>(())
        };
        let mut callers = Vec::new();
        if let Some(path) = &self.file {
            let parsed = file::read(path)?;
            for entry in parsed.entries {
                let place = format!("{} line {}", path.display(), entry.line);
                let origin = Origin::File { line: entry.line };
                set(entry.setting, &entry.text, origin, place)?;
            }
            callers = parsed.callers;
            // Unique names and tokens.
            auth::Callers::new(callers.clone()).map_err(|reason| ConfigError {
                place: path.display().to_string(),
                reason,
            })?;
        }
        for setting in SETTINGS {
            // An empty variable counts as unset, as shells and compose files often leave them.
            if let Some(text) = self.env.get(setting.env).filter(|v| !v.is_empty()) {
                set(setting, text, Origin::Env(setting.env), setting.env.into())?;
            }
        }
        for (name, text) in &self.flags {
            let setting = settings::find(name).expect("flags name known settings");
            set(setting, text, Origin::Flag, format!("the flag for {name}"))?;
        }
        let warnings = self
            .env
            .keys()
            .filter(|k| !SETTINGS.iter().any(|s| s.env == *k) && !OTHER_ENV.contains(&k.as_str()))
            .map(|k| format!("ignoring unknown environment variable {k} (not a credvault setting)"))
            .collect();
        config.callers = callers;
        config.check()?;
        Ok(Loaded {
            config,
            warnings,
            origins,
            file: self.file.clone(),
        })
    }
}

/// A `[[callers]]` block, as the file would hold it (the token only as its hash).
pub fn render_caller(c: &auth::Caller) -> String {
    let list = |items: Vec<String>| {
        let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = format!("\n[[callers]]\nname = {:?}\n", c.name);
    if let Some(hash) = &c.token_sha256 {
        out.push_str(&format!("token_sha256 = \"{}\"\n", hash.hex()));
    }
    if let Some(id) = &c.cert_identity {
        out.push_str(&format!("cert_identity = {id:?}\n"));
    }
    out.push_str(&format!(
        "scopes = {}\n",
        list(c.scopes().map(|s| s.to_string()).collect())
    ));
    out.push_str(&format!(
        "owners = {}\n",
        list(c.owners.iter().map(|p| p.to_string()).collect())
    ));
    if let Some(recipients) = &c.test_recipients {
        out.push_str(&format!(
            "test_recipients = {}\n",
            list(recipients.iter().map(|p| p.to_string()).collect())
        ));
    }
    out
}

fn index(setting: &Setting) -> usize {
    SETTINGS
        .iter()
        .position(|s| std::ptr::eq(s, setting))
        .expect("settings come from SETTINGS")
}

impl Loaded {
    /// Where `name` (`group.key`) got its value.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        settings::find(name).map(|s| &self.origins[index(s)])
    }

    /// The effective config as a TOML file, each value annotated with its source. Secrets never
    /// appear: they are only ever read from the files that `*_file` settings name.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!(
                "# effective config: {} < environment < flags\n",
                file.display()
            ));
        } else {
            out.push_str("# effective config: defaults < environment < flags (no file)\n");
        }
        for group in settings::groups() {
            out.push_str(&format!("\n[{group}]\n"));
            for (s, origin) in SETTINGS.iter().zip(&self.origins) {
                if s.group() != group {
                    continue;
                }
                let line = format!("{} = {}", s.key(), (s.show)(&self.config));
                let from = match origin {
                    Origin::Default => "default".to_string(),
                    Origin::File { line } => format!("{} line {line}", self.file_name()),
                    Origin::Env(var) => format!("env {var}"),
                    Origin::Flag => "flag".to_string(),
                };
                out.push_str(&format!("{line:<48} # {from}\n"));
            }
        }
        for c in &self.config.callers {
            out.push_str(&render_caller(c));
        }
        out
    }

    fn file_name(&self) -> String {
        self.file
            .as_deref()
            .map_or_else(String::new, |p| Path::display(p).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credvault.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:1000\"\n[store]\ndata_dir = \"/from/file\"\ncache_mb = 8\n",
        )
        .unwrap();
        let loaded = Sources {
            file: Some(path.clone()),
            env: env(&[
                ("CREDVAULT_LISTEN", "127.0.0.1:2000"),
                ("CREDVAULT_DATA_DIR", "/from/env"),
                ("CREDVAULT_CACHE_MB", ""),
                ("CREDVAULT_PORT", "tcp://10.0.0.1:50051"),
            ]),
            flags: vec![("server.listen", "127.0.0.1:3000".into())],
        }
        .load()
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.cache_bytes, 8 << 20);
        assert_eq!(loaded.origin("server.listen"), Some(&Origin::Flag));
        assert_eq!(
            loaded.origin("store.data_dir"),
            Some(&Origin::Env("CREDVAULT_DATA_DIR"))
        );
        assert_eq!(
            loaded.origin("store.cache_mb"),
            Some(&Origin::File { line: 5 })
        );
        assert_eq!(
            loaded.origin("limits.max_in_flight"),
            Some(&Origin::Default)
        );
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("CREDVAULT_PORT"));

        let shown = loaded.render();
        assert!(shown.contains("listen = \"127.0.0.1:3000\""), "{shown}");
        assert!(shown.contains("# env CREDVAULT_DATA_DIR"), "{shown}");
        assert!(
            shown.contains(&format!("# {} line 5", path.display())),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_value_names_its_place() {
        let e = Sources {
            env: env(&[("CREDVAULT_MAX_CONNECTIONS", "0")]),
            ..Sources::default()
        }
        .load()
        .unwrap_err();
        assert_eq!(e.place, "CREDVAULT_MAX_CONNECTIONS");
        assert!(e.to_string().contains("must be at least 1"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[log]\n\nformat = \"xml\"\n").unwrap();
        let e = Sources {
            file: Some(path.clone()),
            ..Sources::default()
        }
        .load()
        .unwrap_err();
        assert_eq!(e.place, format!("{} line 3", path.display()));
        assert!(e.reason.contains("invalid log.format"), "{e}");
    }
}
