//! The `.env` file: found in the working directory or a parent, checked
//! whole, then loaded (variables already set in the environment win).
//!
//! A malformed line is reported by its number and variable name only: the
//! line itself may carry a secret (`ADMIN_PASS=...`), so it is never printed.

use std::path::{Path, PathBuf};

/// Why the `.env` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line} ({var}) cannot be parsed; the value is not shown")]
    Malformed {
        path: PathBuf,
        line: usize,
        var: String,
    },
}

/// The first `.env` in `dir` or its parents.
fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(".env"))
        .find(|candidate| candidate.is_file())
}

/// Loads `.env` if there is one; its path, or `None` when there is none.
pub fn load() -> Result<Option<PathBuf>, EnvFileError> {
    let Some(path) = std::env::current_dir().ok().and_then(|d| find(&d)) else {
        return Ok(None);
    };
    load_from(&path)?;
    Ok(Some(path))
}

/// Checks every line of the file, then loads it.
pub fn load_from(path: &Path) -> Result<(), EnvFileError> {
    let io = |source| EnvFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let content = std::fs::read_to_string(path).map_err(io)?;
    for item in dotenvy::from_read_iter(content.as_bytes()) {
        match item {
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(text, _)) => {
                return Err(malformed(path, &content, &text));
            }
            Err(dotenvy::Error::Io(e)) => return Err(io(e)),
            Err(_) => return Err(malformed(path, &content, "")),
        }
    }
    dotenvy::from_read(content.as_bytes()).map_err(|e| match e {
        dotenvy::Error::Io(e) => io(e),
        _ => malformed(path, &content, ""),
    })
}

/// The report for a malformed entry, of which dotenvy gives `text` (the
/// whole entry, or only its value): the number of the first line holding
/// it, outside comments, and the variable that line names.
fn malformed(path: &Path, content: &str, text: &str) -> EnvFileError {
    let start_of_line = |pos: usize| content[..pos].rfind('\n').map_or(0, |i| i + 1);
    let found = (!text.is_empty())
        .then(|| {
            content
                .match_indices(text)
                .map(|(pos, _)| start_of_line(pos))
                .find(|&start| !content[start..].trim_start().starts_with('#'))
        })
        .flatten();
    let (line, var) = match found {
        Some(start) => {
            let number = content[..start].matches('\n').count() + 1;
            let entry = content[start..].lines().next().unwrap_or_default();
            (number, variable_of(entry))
        }
        None => (0, None),
    };
    EnvFileError::Malformed {
        path: path.to_path_buf(),
        line,
        var: var.unwrap_or_else(|| "no variable name".to_string()),
    }
}

/// The variable an entry line names (`[export ]NAME=...`), if it looks like one.
fn variable_of(entry: &str) -> Option<String> {
    let entry = entry.trim_start();
    let entry = entry.strip_prefix("export ").unwrap_or(entry);
    let name = entry
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'));
    plausible.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_line_is_named_not_shown() {
        let content = "PORT=3000\n# hunter2 x\nADMIN_PASS=hunter2 x\nLOG_FORMAT=json\n";
        for reported in ["hunter2 x", "ADMIN_PASS=hunter2 x\nLOG_FORMAT=json"] {
            let text = malformed(Path::new(".env"), content, reported).to_string();
            assert!(text.contains("line 3 (ADMIN_PASS)"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
