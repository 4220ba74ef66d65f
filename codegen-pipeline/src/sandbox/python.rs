//! Finding the Python interpreter programs run with, and what the sandbox must expose
//! of it.
//!
//! The default interpreter is the one `python3` on `PATH` runs. An ELF binary (or a
//! symlink to one) is that interpreter. A script is asked (`python3 -c 'import sys;
//! print(sys.executable)'`); pyenv's shims are bash scripts that take about 0.3 s to
//! answer, so their answer is cached in `$XDG_CACHE_HOME/weave/python3.json` (else
//! `~/.cache/weave/`), keyed by everything pyenv's choice depends on: the shim's path,
//! size and mtime, the `PYENV*`/`VIRTUAL_ENV` environment variables, the nearest
//! `.python-version` (from `$PYENV_DIR` or the working directory upwards) and, when
//! there is none, `$PYENV_ROOT/version`. Other scripts are asked every time.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{SandboxConfig, SandboxError};

/// Cached resolutions kept per cache file.
const CACHE_ENTRIES: usize = 16;

/// What the sandbox needs to know about an interpreter.
#[derive(Debug, Clone)]
pub(crate) struct PythonInfo {
    /// The real executable (symlinks followed).
    pub executable: PathBuf,
    /// Directories programs must be able to read (stdlib, extension modules,
    /// site-packages when enabled).
    pub read_paths: Vec<PathBuf>,
    /// `sys.base_prefix`.
    pub prefix: PathBuf,
    /// The directory of the stdlib's extension modules.
    pub dynload: Option<PathBuf>,
    /// Third-party `sys.path` entries (only with `site_packages`).
    pub site_dirs: Vec<PathBuf>,
}

/// The interpreter to use: the configured one, `WEAVE_PYTHON`, else `python3`'s.
pub(crate) fn resolve_python(config: &SandboxConfig) -> Result<PathBuf, SandboxError> {
    if let Some(p) = &config.python {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("WEAVE_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    static RESOLVED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RESOLVED
        .get_or_init(find_python3)
        .clone()
        .map_err(SandboxError::Python)
}

fn find_python3() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("python3"))
                .find(|p| is_executable(p))
        })
        .ok_or("no `python3` on PATH (set WEAVE_PYTHON to an interpreter)")?;
    let head = read_head(&path);
    if head.starts_with(b"\x7fELF") {
        return Ok(path);
    }
    let key = (head.starts_with(b"#!") && contains(&head, b"pyenv"))
        .then(|| pyenv_key(&path))
        .flatten();
    if let Some(key) = &key {
        if let Some(exe) = cache_lookup(key) {
            return Ok(exe);
        }
    }
    let exe = ask(&path)?;
    if let Some(key) = &key {
        cache_store(key, &exe);
    }
    Ok(exe)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

fn read_head(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(4096).read_to_end(&mut buf);
    }
    buf
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs `python3` (a script) to learn which interpreter it starts.
fn ask(path: &Path) -> Result<PathBuf, String> {
    let out = std::process::Command::new(path)
        .args(["-c", "import sys;print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text.trim();
    if !out.status.success() || exe.is_empty() {
        return Err(format!(
            "{} did not name its interpreter: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(exe))
}

/// Everything a pyenv shim's choice of interpreter depends on, as one string.
fn pyenv_key(shim: &Path) -> Option<String> {
    let meta = std::fs::metadata(shim).ok()?;
    let mut key = BTreeMap::new();
    key.insert("shim".to_string(), shim.display().to_string());
    key.insert(
        "shim_stat".to_string(),
        format!("{} {} {}", meta.len(), meta.mtime(), meta.mtime_nsec()),
    );
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PYENV") || name == "VIRTUAL_ENV" {
            key.insert(format!("env {name}"), value.to_string_lossy().into_owned());
        }
    }
    if std::env::var_os("PYENV_VERSION").is_none() {
        let start = std::env::var_os("PYENV_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok());
        let local = start.as_deref().and_then(|dir| {
            dir.ancestors()
                .map(|d| d.join(".python-version"))
                .find(|f| f.is_file())
        });
        match local {
            Some(file) => {
                key.insert("local".to_string(), file.display().to_string());
                key.insert(
                    "local_version".to_string(),
                    std::fs::read_to_string(&file).unwrap_or_default(),
                );
            }
            None => {
                let root = std::env::var_os("PYENV_ROOT")
                    .map(PathBuf::from)
                    .or_else(|| shim.parent()?.parent().map(Path::to_path_buf))?;
                key.insert(
                    "global_version".to_string(),
                    std::fs::read_to_string(root.join("version")).unwrap_or_default(),
                );
            }
        }
    }
    serde_json::to_string(&key).ok()
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weave").join("python3.json"))
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Cache {
    /// (key, executable), most recent last.
    entries: Vec<(String, PathBuf)>,
}

fn read_cache(file: &Path) -> Cache {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn cache_lookup(key: &str) -> Option<PathBuf> {
    let cache = read_cache(&cache_file()?);
    let exe = cache
        .entries
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, exe)| exe)?;
    // The interpreter may have been uninstalled since.
    is_executable(&exe).then_some(exe)
}

fn cache_store(key: &str, exe: &Path) {
    let Some(file) = cache_file() else { return };
    let result = (|| -> std::io::Result<()> {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut cache = read_cache(&file);
        cache.entries.retain(|(k, _)| k != key);
        cache.entries.push((key.to_string(), exe.to_path_buf()));
        let excess = cache.entries.len().saturating_sub(CACHE_ENTRIES);
        cache.entries.drain(..excess);
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(tmp.as_file(), &cache)?;
        tmp.persist(&file).map_err(|e| e.error)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::debug!(file = %file.display(), error = %e, "cannot cache the python3 resolution");
    }
}

/// Asks the interpreter where its standard library lives (and, with `site_packages`,
/// which third-party `sys.path` entries its `site` module adds).
pub(crate) fn query_python(exe: &Path, site_packages: bool) -> Result<PythonInfo, SandboxError> {
    let script = "import sys,os,sysconfig\n\
        print(os.path.realpath(sys.executable))\n\
        print(os.path.realpath(sys.base_prefix))\n\
        print(os.path.realpath(sysconfig.get_path('stdlib')))\n\
        print(os.path.realpath(sysconfig.get_path('platstdlib')))\n\
        print(os.path.realpath(sysconfig.get_config_var('DESTSHARED') or ''))\n\
        if sys.argv[1] == '1':\n\
        \x20   base = list(sys.path)\n\
        \x20   import site\n\
        \x20   site.main()\n\
        \x20   for p in sys.path:\n\
        \x20       if p not in base and os.path.isabs(p) and os.path.isdir(p):\n\
        \x20           print(p)\n";
    // -S: `site` only runs when asked (it adds the third-party entries).
    let out = std::process::Command::new(exe)
        .args(["-I", "-S", "-c", script])
        .arg(if site_packages { "1" } else { "0" })
        .env_clear()
        .output()
        .map_err(|e| SandboxError::Python(format!("{}: {e}", exe.display())))?;
    if !out.status.success() {
        return Err(SandboxError::Python(format!(
            "{} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<PathBuf> = text.lines().map(PathBuf::from).collect();
    if lines.len() < 5 {
        return Err(SandboxError::Python(format!(
            "{}: unexpected output {text:?}",
            exe.display()
        )));
    }
    let real_exe = lines[0].clone();
    let mut read_paths = vec![lines[1].clone(), lines[2].clone(), lines[3].clone()];
    if let Some(dir) = real_exe.parent() {
        read_paths.push(dir.to_path_buf());
    }
    let dynload = (lines[4].is_dir()).then(|| lines[4].clone());
    read_paths.extend(dynload.clone());
    let site_dirs: Vec<PathBuf> = lines[5..].to_vec();
    read_paths.extend(site_dirs.iter().cloned());
    Ok(PythonInfo {
        executable: real_exe,
        read_paths,
        prefix: lines[1].clone(),
        dynload,
        site_dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bytes() {
        assert!(contains(b"exec \"/root/.pyenv/libexec/pyenv\"", b"pyenv"));
        assert!(!contains(b"#!/bin/sh", b"pyenv"));
    }
}
