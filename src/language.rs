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
    /// A project: its program is the job's files and no source of its own
    /// (Judge0's "Multi-file program", whose `compile` and `run` scripts
    /// are among them).
    #[serde(default)]
    pub project: bool,
    /// How the Judge0 API knows it.
    #[serde(default)]
    pub judge0: Option<Judge0Entry>,
    /// Its name in Piston's API (`/api/v2/runtimes`), where Piston's
    /// differs from its id (`c++`); its id and aliases are accepted too.
    #[serde(default)]
    pub piston: Option<String>,
}

/// A language's place in the Judge0 API: the ids clients send as
/// `language_id`, and the name `GET /languages` shows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Judge0Entry {
    /// Judge0 CE's ids for it (several where Judge0 has several versions);
    /// 1000 and up for languages Judge0 CE does not have.
    pub ids: Vec<u32>,
    /// The name with `{version}` where the version goes; by default the
    /// language's name with the version inside its parentheses.
    #[serde(default)]
    pub name: Option<String>,
}

impl Language {
    /// A command with its placeholders filled in for these files.
    pub fn expand(&self, command: &[String], files: &[String]) -> Vec<String> {
        self.expand_with(command, files, &[])
    }

    /// Whether its compilation takes a job's `compiler_options` (its
    /// compile command has the `{options}` placeholder).
    pub fn takes_compiler_options(&self) -> bool {
        self.compile
            .as_ref()
            .is_some_and(|c| c.iter().any(|a| a == "{options}"))
    }

    /// [`Language::expand`], with `{options}` replaced by `options` (each
    /// one argument; none when empty).
    pub fn expand_with(
        &self,
        command: &[String],
        files: &[String],
        options: &[String],
    ) -> Vec<String> {
        let entry = files
            .first()
            .map(String::as_str)
            .unwrap_or(&self.source_file);
        let stem = entry.rsplit_once('.').map_or(entry, |(stem, _)| stem);
        let mut out = Vec::with_capacity(command.len() + files.len());
        for arg in command {
            if arg == "{options}" {
                out.extend(options.iter().cloned());
            } else if arg == "{sources}" {
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

    /// The version the workers' images report for it (the first), else the
    /// one the table declares.
    pub fn reported_version<'a>(&'a self, versions: &'a HashMap<String, Vec<String>>) -> &'a str {
        versions
            .get(&self.id)
            .and_then(|v| v.first())
            .map_or(self.version.as_str(), String::as_str)
    }

    /// Its name as the Judge0 API shows it, e.g. `C (GCC 12.2.0)` or
    /// `Python (3.11.2)`: Judge0 clients read versions from names.
    pub fn judge0_name(&self, version: &str) -> String {
        if let Some(name) = self.judge0.as_ref().and_then(|j| j.name.as_deref()) {
            return name.replace("{version}", version);
        }
        match self.name.strip_suffix(')') {
            Some(open) => format!("{open} {version})"),
            None => format!("{} ({version})", self.name),
        }
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
    by_judge0_id: BTreeMap<u32, usize>,
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
        let mut by_judge0_id = BTreeMap::new();
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
            for &id in language.judge0.iter().flat_map(|j| &j.ids) {
                if by_judge0_id.insert(id, index).is_some() {
                    return invalid(&format!("Judge0 id {id} names two languages"));
                }
            }
            if language.compile.is_none() && language.run.iter().any(|a| a == "{options}") {
                return invalid("{options} belongs in a compile command");
            }
        }
        Ok(LanguageTable {
            languages: file.language,
            by_name,
            by_judge0_id,
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

    /// The language with this Judge0 language id.
    pub fn find_judge0(&self, id: u32) -> Option<&Language> {
        self.by_judge0_id.get(&id).map(|&i| &self.languages[i])
    }

    /// Every Judge0 language id, ascending, with its language.
    pub fn judge0_ids(&self) -> impl Iterator<Item = (u32, &Language)> {
        self.by_judge0_id
            .iter()
            .map(|(&id, &i)| (id, &self.languages[i]))
    }

    /// Ids of all languages, for error messages.
    pub fn ids(&self) -> Vec<&str> {
        self.languages.iter().map(|l| l.id.as_str()).collect()
    }
}

/// A version as SemVer, the way Piston names its runtimes: Debian's epoch
/// (`1:`) and revision (`-1`) dropped, then the leading numbers, at most
/// three, padded with zeros (`3.11.2`, `2022.12` → `2022.12.0`,
/// `2.2.9.debian` → `2.2.9`). `None` when it does not start with a number.
pub fn semver_of(version: &str) -> Option<semver::Version> {
    let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
    let upstream = upstream.rsplit_once('-').map_or(upstream, |(head, _)| head);
    let mut numbers = upstream
        .split('.')
        .map_while(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty())
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        })
        .take(3);
    let major = numbers.next()?;
    Some(semver::Version::new(
        major,
        numbers.next().unwrap_or(0),
        numbers.next().unwrap_or(0),
    ))
}

/// Whether `version` satisfies `selector`, a node-semver range as Piston
/// takes them (and `/v1` since): `*`, a version or a part of one (`3`,
/// `3.11`, `3.11.x`: that version's X-range), `^`/`~` ranges, comparators
/// (`>=3.0.0 <4.0.0`), hyphen ranges (`3.0 - 3.11`) and alternatives
/// (`a || b`). The version is read by [`semver_of`]; the range by the
/// `semver` crate after its node-semver spelling is turned into Cargo's.
/// A selector that is not a range matches only the same text.
pub fn version_matches(version: &str, selector: &str) -> bool {
    if version == selector.trim() {
        return true;
    }
    let Some(version) = semver_of(version) else {
        return false;
    };
    selector
        .split("||")
        .any(|range| node_range(range).is_some_and(|req| req.matches(&version)))
}

/// One node-semver range (no `||`) as a Cargo requirement.
fn node_range(range: &str) -> Option<semver::VersionReq> {
    let words: Vec<&str> = range.split_whitespace().collect();
    let comparators: Vec<String> = match words.as_slice() {
        [] => vec!["*".into()],
        // A hyphen range: inclusive at both ends (a partial upper end
        // covers its whole X-range, as `<=` does in the `semver` crate).
        [low, "-", high] => vec![format!(">={low}"), format!("<={high}")],
        _ => {
            // An operator may stand apart from its version (`>= 3.0`).
            let mut joined: Vec<String> = Vec::new();
            let mut pending = String::new();
            for word in words {
                if word.chars().all(|c| "<>=~^".contains(c)) {
                    pending.push_str(word);
                } else {
                    joined.push(format!("{pending}{word}"));
                    pending.clear();
                }
            }
            if !pending.is_empty() {
                return None;
            }
            joined
        }
    };
    let cargo: Vec<String> = comparators
        .into_iter()
        .map(|c| {
            let c = c.strip_prefix('v').unwrap_or(&c).to_string();
            let bare = c.starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '*');
            let wildcard = c.split('.').any(|part| matches!(part, "*" | "x" | "X"));
            match c.as_str() {
                // node-semver's wildcards, any version.
                "*" | "x" | "X" => "*".to_string(),
                // `3.x`: the `semver` crate's wildcard comparator.
                _ if bare && wildcard => c,
                // A bare version is node's X-range, Cargo's `=` (Cargo's
                // bare version would be a caret range).
                _ if bare => format!("={c}"),
                _ => c
                    .replacen("=v", "=", 1)
                    .replacen(">v", ">", 1)
                    .replacen("<v", "<", 1),
            }
        })
        .collect();
    semver::VersionReq::parse(&cargo.join(", ")).ok()
}

/// The full name of language image folder `image` under `prefix`.
pub fn image_name(prefix: &str, image: &str) -> String {
    format!("{prefix}/{image}:latest")
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
    fn every_language_has_a_judge0_id_and_judge0s_own_ids_mean_theirs() {
        let table = LanguageTable::built_in();
        for language in table.all() {
            assert!(
                language.judge0.as_ref().is_some_and(|j| !j.ids.is_empty()),
                "{} has no Judge0 id",
                language.id
            );
        }
        // Judge0 CE's ids for the core languages, as its clients hard-code them.
        for (id, language) in [
            (71, "python"),
            (50, "c"),
            (54, "cpp"),
            (63, "javascript"),
            (46, "bash"),
            (60, "go"),
            (73, "rust"),
            (62, "java"),
        ] {
            assert_eq!(table.find_judge0(id).unwrap().id, language, "id {id}");
        }
        assert!(table.find_judge0(70).is_none(), "Python 2 is not here");
    }

    #[test]
    fn judge0_names_carry_the_version() {
        let table = LanguageTable::built_in();
        let name = |id: &str, version: &str| table.find(id).unwrap().judge0_name(version);
        assert_eq!(name("python", "3.11.2"), "Python (3.11.2)");
        assert_eq!(name("c", "12.2.0"), "C (GCC 12.2.0)");
        assert_eq!(
            name("javascript", "18.20.4"),
            "JavaScript (Node.js 18.20.4)"
        );
        assert_eq!(name("assembly", "2.16.01"), "Assembly (NASM 2.16.01)");
    }

    #[test]
    fn compiler_options_go_where_the_table_says() {
        let table = LanguageTable::built_in();
        let c = table.find("c").unwrap();
        let files = ["main.c".to_string()];
        let options = ["-O0".to_string(), "-DX=1".to_string()];
        let compile = c.expand_with(c.compile.as_ref().unwrap(), &files, &options);
        let at = compile.iter().position(|a| a == "-O0").unwrap();
        assert_eq!(compile[at + 1], "-DX=1");
        assert!(at > compile.iter().position(|a| a == "-O2").unwrap());
        assert!(
            !c.expand(c.compile.as_ref().unwrap(), &files)
                .contains(&"{options}".to_string())
        );
        assert!(c.takes_compiler_options());
        assert!(!table.find("python").unwrap().takes_compiler_options());
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

    #[test]
    fn versions_are_selected_as_node_semver_selects_them() {
        for (selector, ok) in [
            ("*", true),
            ("", true),
            ("x", true),
            ("18", true),
            ("18.20", true),
            ("18.20.4", true),
            ("v18.20.4", true),
            ("=18.20.4", true),
            ("18.x", true),
            ("18.20.x", true),
            ("^18.1.0", true),
            ("~18.20.1", true),
            (">=18.0.0 <19.0.0", true),
            (">= 18 < 19", true),
            ("17 - 18.20", true),
            ("17 - 18.19", false),
            ("16 || 18", true),
            ("16 || 17", false),
            ("~18.21.0", false),
            ("^19.0.0", false),
            ("18.2", false),
            ("17", false),
            ("not a range", false),
        ] {
            assert_eq!(version_matches("18.20.4", selector), ok, "{selector:?}");
        }
        // node-semver's caret keeps the minor below 1.0.
        assert!(!version_matches("0.9.0", "^0.2"));
        assert!(version_matches("0.2.7", "^0.2"));
        // Python 3.11.2, as the issue asks.
        assert!(!version_matches("3.11.2", "^3.99"));
        for selector in [">=3.0.0 <4.0.0", "3.x", "~3.11.0", "*", "2 || 3", "3"] {
            assert!(version_matches("3.11.2", selector), "{selector}");
        }
        // Debian's versions, as Piston would name them.
        assert!(version_matches("2.2.9.debian", "2.2"));
        assert!(version_matches("2022.12", "2022"));
        assert!(version_matches("1:2.3.4-1", "2.3.4"));
        assert_eq!(semver_of("1:2.3.4-1"), Some(semver::Version::new(2, 3, 4)));
        assert_eq!(semver_of("5.2"), Some(semver::Version::new(5, 2, 0)));
        assert_eq!(semver_of("debian"), None);
    }
}
