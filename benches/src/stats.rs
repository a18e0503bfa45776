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

/// Chunk length for [`chunk_median`] over a run of `n` messages: about 32
/// chunks, at least 16 messages each.
pub fn chunk_len(n: u64) -> u64 {
    (n / 32).max(16)
}

/// Nanoseconds per message of a run from timestamps taken every `chunk`
/// messages: the median over chunks. A chunk during which a process was
/// preempted (by load outside the bench) is an outlier instead of an
/// addition to the mean. `NaN` with fewer than two timestamps.
pub fn chunk_median(stamps: &[u64], chunk: u64) -> f64 {
    let mut per: Vec<f64> = stamps
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64 / chunk as f64)
        .collect();
    median(&mut per)
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

    #[test]
    fn chunks() {
        assert_eq!(chunk_len(100), 16);
        assert_eq!(chunk_len(3200), 100);
        // Three chunks of 10 messages: 100, 5000 (preempted), 120 ns.
        let stamps = [0, 1000, 51_000, 52_200];
        assert_eq!(chunk_median(&stamps, 10), 120.0);
        assert!(chunk_median(&[5], 10).is_nan());
    }
}
