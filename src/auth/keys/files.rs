//! The configured key files (`[[tokens.keys]]`, SPEC §9): each read as the configured
//! algorithm ([`KeyMaterial::load`]), every problem reported at once with its key path
//! (`tokens.keys[1].file`) and the file's name, as the config loader reports the rest.
//!
//! Rules beyond one file: only a `retired` key may be a public key alone (the `next` key
//! will sign, the `active` one does); two entries may not hold the same key (one `kid`
//! would name two entries).

use std::path::PathBuf;
use std::sync::Arc;

use super::material::KeyMaterial;
use crate::config::{KeyState, Problem, TokenSettings};

/// A loaded `[[tokens.keys]]` entry.
#[derive(Debug, Clone)]
pub struct ConfiguredKey {
    pub material: Arc<KeyMaterial>,
    pub state: KeyState,
    pub file: PathBuf,
}

/// Reads every `[[tokens.keys]]` file of `settings` as `settings.algorithm`.
pub fn load(settings: &TokenSettings) -> Result<Vec<ConfiguredKey>, Vec<Problem>> {
    let mut keys: Vec<ConfiguredKey> = Vec::with_capacity(settings.keys.len());
    let mut problems = Vec::new();
    // The `[[tokens.keys]]` index of each loaded key, to name the first of two duplicates.
    let mut entries: Vec<usize> = Vec::with_capacity(settings.keys.len());
    for (index, entry) in settings.keys.iter().enumerate() {
        let path = format!("tokens.keys[{index}].file");
        let material = match KeyMaterial::load(&entry.file, settings.algorithm) {
            Ok(material) => material,
            Err(problem) => {
                problems.push(Problem { path, problem });
                continue;
            }
        };
        if !material.can_sign() && entry.state != KeyState::Retired {
            problems.push(Problem {
                path,
                problem: format!(
                    "{}: holds a public key, but a `{}` key signs tokens and needs its PKCS#8 private key (only a `retired` key may be its public key alone)",
                    entry.file.display(),
                    entry.state.as_str()
                ),
            });
            continue;
        }
        if let Some(same) = keys
            .iter()
            .position(|known| known.material.kid() == material.kid())
        {
            problems.push(Problem {
                path,
                problem: format!(
                    "{}: holds the same key (kid {}) as tokens.keys[{}]; each entry must be another key",
                    entry.file.display(),
                    material.kid(),
                    entries[same]
                ),
            });
            continue;
        }
        entries.push(index);
        keys.push(ConfiguredKey {
            material: Arc::new(material),
            state: entry.state,
            file: entry.file.clone(),
        });
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

/// Each `[[tokens.keys]]` entry as `gatehouse keys list` shows it: its kid, algorithm and
/// state, or why its file does not load (with its key path). Unlike [`load`], one bad
/// file does not hide the others.
pub fn describe(settings: &TokenSettings) -> Vec<Result<super::KeyEntry, Problem>> {
    settings
        .keys
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            KeyMaterial::load(&entry.file, settings.algorithm)
                .map(|material| super::KeyEntry {
                    kid: material.kid().to_string(),
                    algorithm: material.algorithm(),
                    state: entry.state,
                    file: Some(entry.file.clone()),
                    private: material.can_sign(),
                })
                .map_err(|problem| Problem {
                    path: format!("tokens.keys[{index}].file"),
                    problem,
                })
        })
        .collect()
}

/// Writes a new private key file: created exclusively (an existing file is never
/// overwritten) with mode 0600 from the start, flushed to disk.
pub fn write_private_key(path: &std::path::Path, pem: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => format!(
            "{} exists already; choose another file (a key file is never overwritten)",
            path.display()
        ),
        _ => format!("cannot create {}: {err}", path.display()),
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}
