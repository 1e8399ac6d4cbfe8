//! The language table: which languages can run, in which image, compiled
//! and run how. It is data (`docker/languages.toml`, built into the binary,
//! or a file named by `CODE_RUNNER_LANGUAGES_FILE`), not code: adding a
//! language is an entry there and, unless an image has its packages already,
//! a recipe `docker/images/<image>/packages` (Debian packages).
//!
//! Commands are argument lists (no shell). In them, `{source}` is the entry
//! file's name, `{stem}` that name without its extension, and `{sources}`
//! expands to every submitted file with one of the language's extensions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::limits::LanguageLimits;

/// The table built into the binary.
const BUILT_IN: &str = include_str!("../docker/languages.toml");

/// One runnable language.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// What clients send as `"language"`.
    pub id: String,
    /// A core language: its image is built first (`docker/build-images.sh
    /// --core-first`, what `make run` does on a fresh machine).
    #[serde(default)]
    pub core: bool,
    /// Other names accepted for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Display name.
    pub name: String,
    /// The version the image provides, as declared here.
    pub version: String,
    /// A shell command printing the version the image really provides;
    /// `docker/build-images.sh` runs it in the image and labels the image
    /// with what it prints (read back by [`crate::sandbox::Sandbox::image_versions`]).
    #[serde(default)]
    pub version_command: Option<String>,
    /// Image folder under `docker/` and image name.
    pub image: String,
    /// File name given to a job's `code` (the entry point).
    pub source_file: String,
    /// Extensions of the files `{sources}` takes (without the dot).
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Command that compiles the sources in the work directory, if any.
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    /// Command that runs the program; the job's `args` follow it.
    pub run: Vec<String>,
    /// Environment variables the programs need (their whole environment is
    /// these plus PATH, HOME, LANG and TMPDIR).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LanguageLimits,
    /// OCI runtime for this language's containers (`runsc` for gVisor),
    /// instead of the server's `CODE_RUNNER_RUNTIME`.
    #[serde(default)]
    pub runtime: Option<String>,
}

impl Language {
    /// A command with its placeholders filled in for these files.
    pub fn expand(&self, command: &[String], files: &[String]) -> Vec<String> {
        let entry = files
            .first()
            .map(String::as_str)
            .unwrap_or(&self.source_file);
        let stem = entry.rsplit_once('.').map_or(entry, |(stem, _)| stem);
        let mut out = Vec::with_capacity(command.len() + files.len());
        for arg in command {
            if arg == "{sources}" {
                out.extend(
                    files
                        .iter()
                        .filter(|f| {
                            self.extensions.is_empty()
                                || f.rsplit_once('.').is_some_and(|(_, ext)| {
                                    self.extensions.iter().any(|e| e == ext)
                                })
                        })
                        .cloned(),
                );
            } else {
                out.push(arg.replace("{source}", entry).replace("{stem}", stem));
            }
        }
        out
    }

    /// The environment of its programs, as the monitor sets it.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("HOME".to_string(), "/tmp/box".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("TMPDIR".to_string(), "/tmp".to_string()),
        ];
        for (name, value) in &self.env {
            if let Some(existing) = env.iter_mut().find(|(n, _)| n == name) {
                existing.1 = value.clone();
            } else {
                env.push((name.clone(), value.clone()));
            }
        }
        env
    }
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
            let invalid = |what: &str| {
                Err(LanguageTableError::Invalid(format!(
                    "{}: {what}",
                    language.id
                )))
            };
            if language.run.is_empty() || language.compile.as_ref().is_some_and(Vec::is_empty) {
                return invalid("commands must not be empty");
            }
            if !monitor_protocol::valid_file_name(&language.source_file) {
                return invalid("source_file must be a plain file name");
            }
            for (name, value) in &language.env {
                if !monitor_protocol::valid_env_name(name) || value.contains('\n') {
                    return invalid(&format!("env {name} is not a valid variable"));
                }
            }
            for name in std::iter::once(&language.id).chain(&language.aliases) {
                if by_name.insert(name.to_ascii_lowercase(), index).is_some() {
                    return invalid(&format!("{name} names two languages"));
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
    fn languages_are_found_by_id_and_alias() {
        let table = LanguageTable::built_in();
        assert_eq!(table.find("python").unwrap().id, "python");
        assert_eq!(table.find("Python3").unwrap().id, "python");
        assert!(table.find("intercal").is_none());
        for id in [
            "python",
            "c",
            "cpp",
            "javascript",
            "bash",
            "go",
            "rust",
            "java",
        ] {
            assert!(table.find(id).is_some(), "{id} missing from the table");
        }
    }

    #[test]
    fn placeholders_expand() {
        let table = LanguageTable::built_in();
        let c = table.find("c").unwrap();
        let files = vec![
            "main.c".to_string(),
            "util.c".to_string(),
            "util.h".to_string(),
        ];
        let compile = c.expand(c.compile.as_ref().unwrap(), &files);
        assert!(compile.contains(&"main.c".to_string()));
        assert!(compile.contains(&"util.c".to_string()));
        assert!(!compile.contains(&"util.h".to_string()));
        let java = table.find("java").unwrap();
        let run = java.expand(&java.run, &["Hello.java".to_string()]);
        assert_eq!(run.last().unwrap(), "Hello");
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
