//! Evaluation arithmetic for verification: accuracy at a threshold and the area under the ROC
//! curve, from the similarities of labelled same-person ("genuine") and different-person
//! ("impostor") pairs.

/// Accuracy at `threshold` in [0, 1]: the share of genuine pairs with similarity ≥ threshold plus
/// impostor pairs below it, over all pairs. `NaN` when there are no pairs.
pub fn accuracy_at(genuine: &[f32], impostor: &[f32], threshold: f32) -> f64 {
    let n = genuine.len() + impostor.len();
    if n == 0 {
        return f64::NAN;
    }
    let tp = genuine.iter().filter(|&&s| s >= threshold).count();
    let tn = impostor.iter().filter(|&&s| s < threshold).count();
    (tp + tn) as f64 / n as f64
}

/// Area under the ROC curve in [0, 1]: the probability that a random genuine pair scores above a
/// random impostor pair, ties counting one half (the Mann–Whitney U statistic over n₁·n₂).
/// `NaN` when either list is empty. O((n₁ + n₂) log(n₁ + n₂)).
pub fn roc_auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    // Rank all scores together (average ranks for ties); U = R_genuine − n₁(n₁+1)/2.
    let mut all: Vec<(f32, bool)> = genuine.iter().map(|&s| (s, true)).chain(impostor.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (n1, n2) = (genuine.len() as f64, impostor.len() as f64);
    (rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_computed() {
        // Perfect separation.
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2, 0.3]), 1.0);
        // Fully inverted.
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        // genuine {0.5, 0.9}, impostor {0.4, 0.6}: pairs (0.5>0.4), (0.5<0.6), (0.9>0.4), (0.9>0.6) → 3/4.
        assert_eq!(roc_auc(&[0.5, 0.9], &[0.4, 0.6]), 0.75);
        // A tie counts one half: genuine {0.5}, impostor {0.5, 0.1} → (0.5 + 1) / 2.
        assert_eq!(roc_auc(&[0.5], &[0.5, 0.1]), 0.75);
        assert!(roc_auc(&[], &[0.1]).is_nan());
    }

    #[test]
    fn accuracy_hand_computed() {
        // threshold 0.5: genuine 0.6 ✓, 0.4 ✗; impostor 0.3 ✓, 0.5 ✗ (≥ threshold counts as same).
        assert_eq!(accuracy_at(&[0.6, 0.4], &[0.3, 0.5], 0.5), 0.5);
        assert_eq!(accuracy_at(&[0.6], &[0.3], 0.5), 1.0);
    }
}
