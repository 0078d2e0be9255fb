//! Folding an adapter into the base weights and back ([`merge_adapter`],
//! [`unmerge_adapter`]) for single-adapter serving at base speed.

use candle_core::Tensor;

use super::{LoraAdapter, LoraModule, Result};
use crate::llama::{Linear, Model};

/// `W0 + scale·B·A` for a base weight `[out, in]`.
pub fn merged_weight(w0: &Tensor, m: &LoraModule) -> candle_core::Result<Tensor> {
    w0 + m.delta_weight()?.to_dtype(w0.dtype())?
}

/// `W - scale·B·A`: undoes [`merged_weight`].
pub fn unmerged_weight(w: &Tensor, m: &LoraModule) -> candle_core::Result<Tensor> {
    w - m.delta_weight()?.to_dtype(w.dtype())?
}

fn apply_to_weights(
    model: &mut Model,
    adapter: &LoraAdapter,
    f: fn(&Tensor, &LoraModule) -> candle_core::Result<Tensor>,
) -> Result<()> {
    adapter.check_fits(model)?;
    let device = model.device().clone();
    for lin in model.linears_mut() {
        if let Some(m) = adapter.module(lin.name()) {
            let m = LoraModule {
                a: m.a.to_device(&device)?,
                b: m.b.to_device(&device)?,
                scale: m.scale,
                alpha: m.alpha,
            };
            let w = f(lin.weight(), &m)?;
            *lin = Linear::new(w, lin.bias().cloned(), lin.name());
        }
    }
    Ok(())
}

/// Folds `adapter` into the base weights (`W = W0 + scale·B·A`) for single-adapter serving.
/// The model then runs at base speed with the adapter's behaviour; [`unmerge_adapter`] undoes it.
pub fn merge_adapter(model: &mut Model, adapter: &LoraAdapter) -> Result<()> {
    apply_to_weights(model, adapter, merged_weight)
}

/// Subtracts a previously merged `adapter` from the base weights (`W0 = W - scale·B·A`).
pub fn unmerge_adapter(model: &mut Model, adapter: &LoraAdapter) -> Result<()> {
    apply_to_weights(model, adapter, unmerged_weight)
}
