//! AdamW over the LoRA variables, global-norm gradient clipping and the learning-rate schedule.
//!
//! The update is PyTorch's `AdamW`: decoupled weight decay `p ← p − lr·wd·p`, then
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, `p ← p − lr·m̂/(√v̂ + ε)` with the bias
//! corrections `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`. The moments are plain tensors that
//! [`AdamW::save`] and [`AdamW::load`] write and read, so a resumed run continues exactly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};

use crate::config::Schedule;
use crate::error::{Result, TrainError};

/// AdamW's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW state: first and second moments per variable and the number of steps taken.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// The constants.
    pub params: AdamWParams,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(vars: &[Var], params: AdamWParams) -> Result<AdamW> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            params,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The first moments, in the order of the variables.
    pub fn first_moments(&self) -> &[Tensor] {
        &self.m
    }

    /// The second moments, in the order of the variables.
    pub fn second_moments(&self) -> &[Tensor] {
        &self.v
    }

    /// One update of `vars` with their gradients `grads` (same order) at learning rate `lr`.
    pub fn step(&mut self, vars: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        if vars.len() != self.m.len() || grads.len() != vars.len() {
            return Err(TrainError::Data(format!(
                "{} variables, {} gradients, optimizer state for {}",
                vars.len(),
                grads.len(),
                self.m.len()
            )));
        }
        self.step += 1;
        let p = self.params;
        let t = self.step as i32;
        let bc1 = 1.0 - p.beta1.powi(t);
        let bc2 = 1.0 - p.beta2.powi(t);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let g = g.to_dtype(DType::F32)?;
            let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let mut w = var.as_tensor().detach();
            if p.weight_decay != 0.0 {
                w = (&w * (1.0 - lr * p.weight_decay))?;
            }
            let denom = ((&v / bc2)?.sqrt()? + p.eps)?;
            let update = ((&m / bc1)? / denom)?;
            var.set(&(w - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Writes the state to `path` (safetensors: `m.{i}`, `v.{i}`, and the step count).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            map.insert(format!("m.{i}"), m.clone());
            map.insert(format!("v.{i}"), v.clone());
        }
        map.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?,
        );
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }

    /// Reads a state written by [`AdamW::save`] for `vars` (shapes must match).
    pub fn load(path: &Path, vars: &[Var], params: AdamWParams) -> Result<AdamW> {
        let bad = |m: String| TrainError::Checkpoint(format!("{}: {m}", path.display()));
        let device = vars
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let map = candle_core::safetensors::load(path, &device)
            .map_err(|e| bad(format!("unreadable optimizer state: {e}")))?;
        if map.len() != 2 * vars.len() + 1 {
            return Err(bad(format!(
                "{} tensors, expected {} for {} variables",
                map.len(),
                2 * vars.len() + 1,
                vars.len()
            )));
        }
        let get = |k: String, var: &Var| -> Result<Tensor> {
            let t = map.get(&k).ok_or_else(|| bad(format!("{k} is missing")))?;
            if t.dims() != var.dims() {
                return Err(bad(format!(
                    "{k} is {:?}, the variable is {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let mut m = Vec::with_capacity(vars.len());
        let mut v = Vec::with_capacity(vars.len());
        for (i, var) in vars.iter().enumerate() {
            m.push(get(format!("m.{i}"), var)?);
            v.push(get(format!("v.{i}"), var)?);
        }
        let step = map
            .get("step")
            .ok_or_else(|| bad("step is missing".into()))?
            .to_device(&candle_core::Device::Cpu)?
            .to_vec1::<u32>()
            .map_err(|e| bad(format!("step: {e}")))?;
        let step = step
            .first()
            .copied()
            .ok_or_else(|| bad("step is empty".into()))? as usize;
        Ok(AdamW { params, m, v, step })
    }
}

/// Scales `grads` in place so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`, factor `max_norm / (norm + 1e-6)` when the norm exceeds it; `max_norm`
/// 0 leaves them alone). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += g
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * factor)?;
        }
    }
    Ok(norm)
}

/// The learning rate of optimizer step `step` (0-based) out of `total`, as in the Hugging Face
/// schedulers: `peak · step / warmup` during the warm-up, then cosine (`½(1 + cos πp)`) or linear
/// (`1 − p`) decay to 0, `p` the fraction of the post-warm-up steps done.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64, schedule: Schedule) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    let factor = match schedule {
        Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        Schedule::Linear => 1.0 - progress,
    };
    peak * factor.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn params(wd: f64) -> AdamWParams {
        AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        }
    }

    fn var(v: &[f32]) -> Var {
        Var::new(v, &Device::Cpu).unwrap()
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1().unwrap()
    }

    #[test]
    fn two_steps_match_the_hand_computation() {
        let w = var(&[1.0, -2.0]);
        let vars = [w.clone()];
        let mut opt = AdamW::new(&vars, params(0.1)).unwrap();
        let (lr, g1, g2) = (0.01f64, [0.5f64, -1.0], [0.1f64, 0.3]);
        let mut p = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for (t, g) in [g1, g2].iter().enumerate() {
            let gt = Tensor::new(&[g[0] as f32, g[1] as f32], &Device::Cpu).unwrap();
            opt.step(&vars, &[gt], lr).unwrap();
            let t = (t + 1) as i32;
            for i in 0..2 {
                p[i] *= 1.0 - lr * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            let got = values(&w);
            for i in 0..2 {
                assert!((got[i] as f64 - p[i]).abs() < 1e-6, "{got:?} vs {p:?}");
            }
        }
        // First step of Adam moves each weight by about lr·sign(g) (plus decay).
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn state_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = var(&[0.3, 0.2, -0.1]);
        let b = var(&[0.3, 0.2, -0.1]);
        let mut oa = AdamW::new(std::slice::from_ref(&a), params(0.0)).unwrap();
        let g = Tensor::new(&[0.4f32, -0.2, 0.9], &Device::Cpu).unwrap();
        oa.step(std::slice::from_ref(&a), std::slice::from_ref(&g), 0.05)
            .unwrap();
        let path = dir.path().join("opt.safetensors");
        oa.save(&path).unwrap();
        b.set(a.as_tensor()).unwrap();
        let mut ob = AdamW::load(&path, std::slice::from_ref(&b), params(0.0)).unwrap();
        assert_eq!(ob.steps(), 1);
        let g2 = Tensor::new(&[-0.3f32, 0.5, 0.1], &Device::Cpu).unwrap();
        oa.step(std::slice::from_ref(&a), std::slice::from_ref(&g2), 0.05)
            .unwrap();
        ob.step(std::slice::from_ref(&b), &[g2], 0.05).unwrap();
        assert_eq!(values(&a), values(&b));
        // A state for other shapes is refused.
        let other = var(&[1.0, 2.0]);
        assert!(matches!(
            AdamW::load(&path, &[other], params(0.0)),
            Err(TrainError::Checkpoint(_))
        ));
    }

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let mut grads = vec![
            Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap(),
            Tensor::new(&[0.0f32, 4.0], &Device::Cpu).unwrap(),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let a: Vec<f32> = grads[0].to_vec1().unwrap();
        let b: Vec<f32> = grads[1].to_vec1().unwrap();
        assert!((a[0] - 0.6).abs() < 1e-5 && (b[1] - 0.8).abs() < 1e-5);
        // Under the limit: unchanged.
        let norm = clip_grad_norm(&mut grads, 10.0).unwrap();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!((grads[0].to_vec1::<f32>().unwrap()[0] - 0.6).abs() < 1e-5);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let peak = 1e-3;
        assert_eq!(lr_at(0, 100, 10, peak, Schedule::Cosine), 0.0);
        assert!((lr_at(5, 100, 10, peak, Schedule::Cosine) - 5e-4).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, peak, Schedule::Cosine) - peak).abs() < 1e-12);
        // Halfway through the decay: cosine and linear both at half the peak.
        assert!((lr_at(55, 100, 10, peak, Schedule::Cosine) - 5e-4).abs() < 1e-12);
        assert!((lr_at(55, 100, 10, peak, Schedule::Linear) - 5e-4).abs() < 1e-12);
        // A quarter of the way: cosine is above linear.
        let c = lr_at(32, 100, 10, peak, Schedule::Cosine);
        let l = lr_at(32, 100, 10, peak, Schedule::Linear);
        assert!((l - 7.555_555e-4).abs() < 1e-9 && c > l, "{c} {l}");
        assert!(lr_at(100, 100, 10, peak, Schedule::Linear).abs() < 1e-15);
    }
}
