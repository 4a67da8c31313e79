//! `[[callers]]` in the config file: each table one caller, every key known (an unknown one is
//! an error with its line), checked by `auth::CallerSpec::check` with the line in its error.

use toml::de::{DeArray, DeValue};
use toml::Spanned;

use super::file::Place;
use super::ConfigError;
use crate::auth::{Caller, CallerSpec};

const KEYS: &str = "name, token_sha256, cert_identity, scopes, owners, test_recipients";

pub(super) fn parse<'a>(
    value: &Spanned<DeValue<'_>>,
    at: &impl Fn(std::ops::Range<usize>) -> Place<'a>,
) -> Result<Vec<Caller>, ConfigError> {
    let DeValue::Array(tables) = value.get_ref() else {
        return Err(at(value.span()).error(
            "`callers` must be an array of tables: write each caller as [[callers]]".into(),
        ));
    };
    let mut callers = Vec::new();
    for table in tables {
        let line = at(table.span()).line();
        let DeValue::Table(table) = table.get_ref() else {
            return Err(at(table.span()).error("each of `callers` must be a table".into()));
        };
        let mut spec = CallerSpec::default();
        for (key, value) in table {
            let place = at(key.span());
            let text = |what: &str| {
                super::file::scalar(value.get_ref())
                    .ok_or_else(|| place.error(format!("callers.{what} must be a string")))
            };
            match key.get_ref().as_ref() {
                "name" => spec.name = text("name")?,
                "token_sha256" => spec.token_sha256 = Some(text("token_sha256")?),
                "cert_identity" => spec.cert_identity = Some(text("cert_identity")?),
                "scopes" => spec.scopes = strings(value, "scopes", at)?,
                "owners" => spec.owners = strings(value, "owners", at)?,
                "test_recipients" => {
                    spec.test_recipients = Some(strings(value, "test_recipients", at)?)
                }
                other => {
                    return Err(place.error(format!(
                        "unknown key `callers.{other}` (known keys in [[callers]]: {KEYS})"
                    )))
                }
            }
        }
        let caller = spec.check().map_err(|problem| {
            let who = if spec.name.is_empty() {
                String::new()
            } else {
                format!(" '{}'", spec.name)
            };
            at(0..0).error_at(line, format!("caller{who}: {problem}"))
        })?;
        callers.push(caller);
    }
    Ok(callers)
}

fn strings<'a>(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    at: &impl Fn(std::ops::Range<usize>) -> Place<'a>,
) -> Result<Vec<String>, ConfigError> {
    let not_strings =
        || at(value.span()).error(format!("callers.{key} must be an array of strings"));
    let DeValue::Array(items) = value.get_ref() else {
        return Err(not_strings());
    };
    items_as_strings(items).ok_or_else(not_strings)
}

fn items_as_strings(items: &DeArray<'_>) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| match item.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}
