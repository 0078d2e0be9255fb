//! Per-row rules for which token may come next: the hook of constrained decoding.
//!
//! A decoder that is given a [`Constraint`] for a row picks that row's next token only among
//! the tokens the constraint [`allows`](Constraint::allows), then tells it which one was
//! chosen ([`accept`](Constraint::accept)). The model crate knows nothing about what is being
//! constrained (SQL over a schema lives in `sqlora-constrain`); it only guarantees that every
//! decoding loop (batched generation, beam search, the shared-prefix path and the server's
//! engine) asks the same questions in the same order, so a constrained row generates exactly
//! what it would generate alone.
//!
//! Checks are lazy, in the order of the row's logits (best first): a greedy step usually asks
//! about one or two tokens, never the whole vocabulary. This is the approach of PICARD
//! (Scholak et al., 2021: reject the highest-scoring tokens that do not parse, keep the best
//! that does), with an incremental state instead of re-parsing the prefix.

/// Which tokens one row may generate next.
///
/// The end-of-sequence tokens are ordinary token ids here: a constraint allows one of them only
/// when the text so far may end (e.g. a complete statement).
pub trait Constraint: Send + Sync {
    /// Whether `token` may be the next token of this row.
    fn allows(&self, token: u32) -> bool;
    /// Moves past `token`, the token chosen for this row (one that [`allows`](Self::allows)
    /// accepted).
    fn accept(&mut self, token: u32);
    /// An independent copy of the current state (beam search forks rows).
    fn boxed_clone(&self) -> Box<dyn Constraint>;
}

/// The best token of `logits` that `constraint` allows, asking in order of decreasing logit
/// (ties: the lowest id first, as [`crate::generate::argmax`]); `None` when nothing with a
/// finite logit is allowed.
///
/// Without a constraint this is the argmax. Only the tokens that are better than the chosen
/// one are asked about.
pub fn best_allowed(logits: &[f32], constraint: Option<&dyn Constraint>) -> Option<u32> {
    let best = crate::generate::argmax(logits);
    let Some(c) = constraint else {
        return Some(best);
    };
    // Most steps the model's own choice is allowed: one question, no ranking.
    if logits.get(best as usize).is_some_and(|v| v.is_finite()) && c.allows(best) {
        return Some(best);
    }
    ranked_allowed(logits, c, 1).into_iter().next()
}

/// Up to `n` tokens that `constraint` allows, best logit first (ties: lowest id first),
/// skipping tokens whose logit is not finite.
///
/// The vocabulary is ranked lazily, in tiers: the best 64 candidates are sorted and asked
/// about, and only when fewer than `n` of them are allowed the next best 448, then the next
/// 3,584, and only then the rest (a step whose favourite tokens are refused no longer sorts
/// all 151,936 logits of a Qwen vocabulary). The answer is the same as asking in the order of
/// a full sort.
pub fn ranked_allowed(logits: &[f32], constraint: &dyn Constraint, n: usize) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let order = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for tier in [64usize, 512, 4096, usize::MAX] {
        let end = ids.len().min(tier.max(start + n));
        if end <= start {
            continue;
        }
        // The best `end - start` of what is left, in order.
        let rest = &mut ids[start..];
        let k = end - start;
        if k < rest.len() {
            rest.select_nth_unstable_by(k, order);
        }
        rest[..k].sort_unstable_by(order);
        for &t in &rest[..k] {
            if constraint.allows(t) {
                out.push(t);
                if out.len() == n {
                    return out;
                }
            }
        }
        start = end;
        if start == ids.len() {
            break;
        }
    }
    out
}

/// Sets the logits of the tokens `constraint` does not allow to minus infinity (for sampling,
/// where the whole distribution matters). Asks about every token with a finite logit.
pub fn mask_disallowed(logits: &mut [f32], constraint: &dyn Constraint) {
    for (i, v) in logits.iter_mut().enumerate() {
        if v.is_finite() && !constraint.allows(i as u32) {
            *v = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows only even ids.
    #[derive(Clone)]
    struct Even;
    impl Constraint for Even {
        fn allows(&self, token: u32) -> bool {
            token.is_multiple_of(2)
        }
        fn accept(&mut self, _: u32) {}
        fn boxed_clone(&self) -> Box<dyn Constraint> {
            Box::new(self.clone())
        }
    }

    #[test]
    fn best_allowed_skips_disallowed_tokens_in_logit_order() {
        let logits = [0.0, 5.0, 1.0, 4.0, 3.0];
        assert_eq!(best_allowed(&logits, None), Some(1));
        assert_eq!(best_allowed(&logits, Some(&Even)), Some(4));
        assert_eq!(ranked_allowed(&logits, &Even, 5), vec![4, 2, 0]);
    }

    #[test]
    fn ranking_beyond_the_first_candidates_is_exact() {
        // 200 tokens, only the worst-scored ones allowed: the lazy second pass must find them
        // in order.
        let logits: Vec<f32> = (0..200).map(|i| -(i as f32)).collect();
        struct Tail;
        impl Constraint for Tail {
            fn allows(&self, t: u32) -> bool {
                t >= 190
            }
            fn accept(&mut self, _: u32) {}
            fn boxed_clone(&self) -> Box<dyn Constraint> {
                Box::new(Tail)
            }
        }
        assert_eq!(ranked_allowed(&logits, &Tail, 3), vec![190, 191, 192]);
        let mut masked = logits.clone();
        mask_disallowed(&mut masked, &Tail);
        assert_eq!(best_allowed(&masked, None), Some(190));
    }

    #[test]
    fn every_ranking_tier_answers_as_a_full_sort_would() {
        // 20,000 logits with many ties; the allowed tokens fall in each tier (best 64, next
        // 448, next 3,584, the rest).
        let logits: Vec<f32> = (0..20_000u32)
            .map(|i| ((i * 7919) % 5_000) as f32 * 0.25)
            .collect();
        let mut full: Vec<u32> = (0..logits.len() as u32).collect();
        full.sort_by(|a, b| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        });
        struct Ranks(Vec<u32>);
        impl Constraint for Ranks {
            fn allows(&self, t: u32) -> bool {
                self.0.contains(&t)
            }
            fn accept(&mut self, _: u32) {}
            fn boxed_clone(&self) -> Box<dyn Constraint> {
                Box::new(Ranks(self.0.clone()))
            }
        }
        for ranks in [
            vec![3usize],
            vec![70],
            vec![600, 65],
            vec![5_000, 19_999, 100],
        ] {
            let allowed: Vec<u32> = ranks.iter().map(|&r| full[r]).collect();
            let c = Ranks(allowed.clone());
            let mut want: Vec<usize> = ranks.clone();
            want.sort_unstable();
            let want: Vec<u32> = want.iter().map(|&r| full[r]).collect();
            assert_eq!(ranked_allowed(&logits, &c, 10), want, "{ranks:?}");
            assert_eq!(best_allowed(&logits, Some(&c)), want.first().copied());
        }
    }

    #[test]
    fn ties_go_to_the_lowest_allowed_id_and_nothing_allowed_is_none() {
        let logits = [1.0, 2.0, 2.0, 2.0, f32::NEG_INFINITY, 2.0];
        assert_eq!(best_allowed(&logits, Some(&Even)), Some(2));
        let none = [f32::NEG_INFINITY, 1.0];
        struct Nothing;
        impl Constraint for Nothing {
            fn allows(&self, _: u32) -> bool {
                false
            }
            fn accept(&mut self, _: u32) {}
            fn boxed_clone(&self) -> Box<dyn Constraint> {
                Box::new(Nothing)
            }
        }
        assert_eq!(best_allowed(&none, Some(&Nothing)), None);
    }
}
