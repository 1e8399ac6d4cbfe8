//! The language table: which languages can run, in which image, with which
//! command. It is data (`docker/languages.toml`, built into the binary, or a
//! file named by `CODE_RUNNER_LANGUAGES_FILE`), not code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

/// The table built into the binary.
const BUILT_IN: &str = include_str!("../docker/languages.toml");

/// One runnable language.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// What clients send as `"language"`.
    pub id: String,
    /// Other names accepted for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Display name.
    pub name: String,
    /// The version its image provides.
    pub version: String,
    /// Image folder under `docker/` and image name.
    pub image: String,
    /// File the submitted code is written to, in the job's work directory.
    pub source_file: String,
    /// Command that runs it, with no shell in between.
    pub run: Vec<String>,
    /// Environment variables the program needs (its whole environment is
    /// these plus PATH, HOME, LANG and TMPDIR).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    language: Vec<Language>,
}

/// Errors loading a language table.
#[derive(Debug, thiserror::Error)]
pub enum LanguageTableError {
    #[error("cannot read language table {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("language table is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("language table: {0}")]
    Invalid(String),
}

/// All languages, found by id or alias (case-insensitive).
#[derive(Debug, Clone)]
pub struct LanguageTable {
    languages: Vec<Language>,
    by_name: HashMap<String, usize>,
}

impl LanguageTable {
    /// The table built into the binary.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).expect("the built-in language table is valid")
    }

    /// The table in `path`, or the built-in one when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, LanguageTableError> {
        match path {
            None => Ok(Self::built_in()),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| LanguageTableError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                Self::parse(&text)
            }
        }
    }

    pub fn parse(text: &str) -> Result<Self, LanguageTableError> {
        let file: TableFile = toml::from_str(text)?;
        let mut by_name = HashMap::new();
        for (index, language) in file.language.iter().enumerate() {
            if language.run.is_empty() {
                return Err(LanguageTableError::Invalid(format!(
                    "{}: run must name a command",
                    language.id
                )));
            }
            let file_name = &language.source_file;
            if file_name.is_empty() || file_name.contains('/') || file_name.starts_with('.') {
                return Err(LanguageTableError::Invalid(format!(
                    "{}: source_file must be a plain file name",
                    language.id
                )));
            }
            for (name, value) in &language.env {
                let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_name || value.contains('\n') {
                    return Err(LanguageTableError::Invalid(format!(
                        "{}: env {name} is not a valid variable",
                        language.id
                    )));
                }
            }
            for name in std::iter::once(&language.id).chain(&language.aliases) {
                if by_name.insert(name.to_ascii_lowercase(), index).is_some() {
                    return Err(LanguageTableError::Invalid(format!(
                        "{name} names two languages"
                    )));
                }
            }
        }
        Ok(LanguageTable {
            languages: file.language,
            by_name,
        })
    }

    /// The language with this id or alias.
    pub fn find(&self, name: &str) -> Option<&Language> {
        self.by_name
            .get(&name.trim().to_ascii_lowercase())
            .map(|&i| &self.languages[i])
    }

    pub fn all(&self) -> &[Language] {
        &self.languages
    }

    /// Ids of all languages, for error messages.
    pub fn ids(&self) -> Vec<&str> {
        self.languages.iter().map(|l| l.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_is_found_by_id_and_alias() {
        let table = LanguageTable::built_in();
        assert_eq!(table.find("python").unwrap().id, "python");
        assert_eq!(table.find("Python3").unwrap().id, "python");
        assert!(table.find("cobol").is_none());
    }

    #[test]
    fn a_name_used_twice_is_refused() {
        let text = r#"
            [[language]]
            id = "a"
            name = "A"
            version = "1"
            image = "a"
            source_file = "a"
            run = ["a"]
            [[language]]
            id = "b"
            aliases = ["a"]
            name = "B"
            version = "1"
            image = "b"
            source_file = "b"
            run = ["b"]
        "#;
        assert!(LanguageTable::parse(text).is_err());
    }
}
