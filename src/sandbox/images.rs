//! Which languages this worker can run now: those whose image is on its
//! engine. On a fresh machine the images build one after another (the core
//! languages first), so a worker starts serving before all are there and
//! picks each one up as it appears; each image says the versions it
//! provides in its `code-runner.versions` label (set by
//! `docker/build-images.sh`).

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use super::{Sandbox, SandboxError};
use crate::language::LanguageTable;

/// The label on a runner image naming the versions it provides: a JSON
/// object, language id → version.
pub const LABEL_VERSIONS: &str = "code-runner.versions";

/// The languages whose image this worker's engine has, with their versions;
/// shared by the dispatcher (which runs only those), the heartbeat (which
/// tells the API processes the others) and the watch that refreshes it.
#[derive(Debug, Default)]
pub struct LanguageImages {
    state: RwLock<Readiness>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Readiness {
    /// Checked at least once.
    checked: bool,
    /// Ready language id → the version its image provides.
    versions: HashMap<String, String>,
    /// Language ids whose image is missing.
    missing: BTreeSet<String>,
}

impl LanguageImages {
    /// Asks the engine which images are there, and returns the languages
    /// that became ready since the last check.
    pub async fn check(
        &self,
        sandbox: &Sandbox,
        languages: &LanguageTable,
    ) -> Result<Vec<String>, SandboxError> {
        let mut by_image: HashMap<&str, Option<HashMap<String, String>>> = HashMap::new();
        for language in languages.all() {
            if !by_image.contains_key(language.image.as_str()) {
                let versions = sandbox.image_versions(&language.image).await?;
                by_image.insert(&language.image, versions);
            }
        }
        let mut next = Readiness {
            checked: true,
            ..Readiness::default()
        };
        for language in languages.all() {
            match &by_image[language.image.as_str()] {
                Some(versions) => {
                    // An image built without the label (by hand) provides
                    // the declared version.
                    let version = versions
                        .get(&language.id)
                        .cloned()
                        .unwrap_or_else(|| language.version.clone());
                    next.versions.insert(language.id.clone(), version);
                }
                None => {
                    next.missing.insert(language.id.clone());
                }
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let newly: Vec<String> = next
            .versions
            .keys()
            .filter(|id| !state.versions.contains_key(*id))
            .cloned()
            .collect();
        *state = next;
        Ok(newly)
    }

    /// Whether the language's image is here (false before the first check).
    pub fn is_ready(&self, language: &str) -> bool {
        self.read().versions.contains_key(language)
    }

    /// The version this worker's image of the language provides.
    pub fn version(&self, language: &str) -> Option<String> {
        self.read().versions.get(language).cloned()
    }

    /// Every ready language's version.
    pub fn versions(&self) -> HashMap<String, String> {
        self.read().versions.clone()
    }

    /// The languages whose image is missing; `None` before the first check.
    pub fn missing(&self) -> Option<Vec<String>> {
        let state = self.read();
        state
            .checked
            .then(|| state.missing.iter().cloned().collect())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Readiness> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}
