//! A model ready to use: architecture, weights, tokenizer and chat template, loaded from a GGUF
//! file or a Hugging Face folder.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::Device;

use crate::chat::ChatTemplate;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::generate::TokenInfo;
use crate::llama::Model;
use crate::tokenizer::Tokenizer;

/// Everything needed to run a model.
pub struct LoadedModel {
    pub config: Config,
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// The file or folder it was loaded from.
    pub source: PathBuf,
    pub device: Device,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("config", &self.config)
            .field("source", &self.source)
            .field("device", &self.device)
            .field("chat_template", &self.chat_template.is_some())
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// A copy of this model (sharing its weights) whose products with quantized blocks use
    /// `precision` (see [`crate::llama::Model::set_activation_precision`]).
    pub fn with_activation_precision(
        &self,
        precision: crate::quant::ActivationPrecision,
    ) -> LoadedModel {
        let mut model = self.model.clone();
        model.set_activation_precision(precision);
        LoadedModel {
            config: self.config.clone(),
            model,
            tokenizer: self.tokenizer.clone(),
            chat_template: self.chat_template.clone(),
            source: self.source.clone(),
            device: self.device.clone(),
        }
    }

    /// Runs `f` with this model's token facts for generation ([`TokenInfo`]): its EOS ids,
    /// its padding id and its tokenizer's decoding (special tokens skipped).
    pub fn with_token_info<T>(&self, f: impl FnOnce(&TokenInfo<'_>) -> T) -> T {
        let tok = &self.tokenizer;
        let decode = |ids: &[u32]| tok.decode(ids, true);
        let info = TokenInfo {
            eos_ids: tok.eos_token_ids(),
            pad_id: tok.pad_token_id(),
            decode: &decode,
        };
        f(&info)
    }
}

/// Loads a `.gguf` file or a Hugging Face folder (config.json, *.safetensors, tokenizer.json,
/// tokenizer_config.json) onto `device`; weights become f32.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    if path.is_dir() {
        load_hf_folder(path, device)
    } else if path.is_file() {
        load_gguf(path, device)
    } else {
        Err(ModelError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such model file or folder (expected a .gguf file or a Hugging Face folder)",
            ),
        ))
    }
}

/// Loads a GGUF file: weights, tokenizer and chat template all come from the file.
pub fn load_gguf(path: &Path, device: &Device) -> Result<LoadedModel> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        ModelError::malformed(format!("{}: not a readable GGUF file", path.display()), e)
    })?;
    let (config, model) = crate::gguf::load_model(path, &content, device)?;
    let tokenizer = Tokenizer::from_gguf(&content)?;
    let chat_template = ChatTemplate::from_gguf(&content)?;
    Ok(LoadedModel {
        config,
        model,
        tokenizer,
        chat_template,
        source: path.to_path_buf(),
        device: device.clone(),
    })
}

/// Loads a Hugging Face folder.
pub fn load_hf_folder(dir: &Path, device: &Device) -> Result<LoadedModel> {
    let tokenizer_json = dir.join("tokenizer.json");
    if !tokenizer_json.is_file() {
        return Err(ModelError::Format(format!(
            "{}: no tokenizer.json in the model folder",
            dir.display()
        )));
    }
    let (config, model) = crate::hf::load_model(dir, device)?;
    let tokenizer = Tokenizer::from_file(&tokenizer_json)?;
    let tokenizer_config = dir.join("tokenizer_config.json");
    let mut chat_template = if tokenizer_config.is_file() {
        ChatTemplate::from_tokenizer_config(&tokenizer_config)?
    } else {
        None
    };
    let jinja = dir.join("chat_template.jinja");
    if chat_template.is_none() && jinja.is_file() {
        let source = std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?;
        let bos = tokenizer.bos_token().unwrap_or_default();
        let eos = tokenizer.eos_token().unwrap_or_default();
        chat_template = Some(ChatTemplate::new(&source, &bos, &eos)?);
    }
    Ok(LoadedModel {
        config,
        model,
        tokenizer,
        chat_template,
        source: dir.to_path_buf(),
        device: device.clone(),
    })
}

// A loaded model is shared by server threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<LoadedModel>();
};
