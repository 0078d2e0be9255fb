//! The training loss: cross-entropy of the answer tokens only.
//!
//! The model runs with the adapter over the whole padded micro-batch; the hidden states of the
//! positions that predict an answer token (position `i` predicts token `i + 1`) are gathered
//! and only those rows go through the vocabulary projection, so the `[tokens, vocab]` logits
//! of the prompt are never built.

use candle_core::{DType, Tensor, D};
use sqlora_model::llama::Model;
use sqlora_model::lora::{AdapterBatch, LoraAdapter};

use crate::batch::Batch;
use crate::error::{Result, TrainError};

/// The summed (not averaged) cross-entropy of `batch`'s answer tokens, a scalar f32 tensor that
/// stays attached to the adapter's variables. With `training` the adapter's dropout is applied.
/// Divide by [`Batch::answer_tokens`] (or the total over accumulated micro-batches) for the
/// mean.
pub fn answer_loss_sum(
    model: &Model,
    adapter: &LoraAdapter,
    batch: &Batch,
    training: bool,
) -> Result<Tensor> {
    if batch.answer_tokens == 0 {
        return Err(TrainError::Data(
            "a micro-batch has no answer tokens".into(),
        ));
    }
    let adapters = if training {
        AdapterBatch::training(adapter)
    } else {
        AdapterBatch::single(adapter)
    };
    let hidden = model.forward_with(
        &batch.input_ids,
        &batch.positions,
        Some(&batch.attn_mask),
        None,
        Some(&adapters),
    )?;
    let h = hidden.dim(D::Minus1)?;
    let rows = hidden
        .reshape((batch.rows * batch.len, h))?
        .index_select(&batch.predict_at, 0)?;
    let logits = model.logits(&rows)?.to_dtype(DType::F32)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&batch.targets.unsqueeze(1)?, 1)?;
    Ok(picked.sum_all()?.neg()?)
}

/// The mean answer-token loss of `batch` as a number.
pub fn answer_loss_mean(
    model: &Model,
    adapter: &LoraAdapter,
    batch: &Batch,
    training: bool,
) -> Result<f64> {
    let sum = answer_loss_sum(model, adapter, batch, training)?;
    Ok(sum.to_scalar::<f32>()? as f64 / batch.answer_tokens as f64)
}
