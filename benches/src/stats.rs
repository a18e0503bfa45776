//! Order statistics over samples.

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted samples, nearest rank. `NaN` for
/// no samples.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// Sort samples (NaN last) in place.
pub fn sort(v: &mut [f64]) {
    v.sort_unstable_by(|a, b| a.total_cmp(b));
}

/// The median of `v` (sorted in place). `NaN` for no samples.
pub fn median(v: &mut [f64]) -> f64 {
    sort(v);
    quantile_sorted(v, 0.5)
}

/// The `q`-quantile of `v` (sorted in place).
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    sort(v);
    quantile_sorted(v, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&mut v), 3.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 5.0);
        assert!(median(&mut []).is_nan());
    }
}
