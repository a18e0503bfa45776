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

/// The interquartile mean of `v` (sorted in place): the mean of the
/// samples from the 25th to the 75th percentile. As robust to outliers as
/// the median, but not stuck to the timer's quantum: where every sample is
/// a multiple of a coarse tick, the median moves in whole ticks while this
/// averages over the jitter between neighbouring ticks. `NaN` for no samples.
pub fn interquartile_mean(v: &mut [f64]) -> f64 {
    sort(v);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lo, hi) = (n / 4, n - n / 4);
    let mid = &v[lo..hi.max(lo + 1)];
    mid.iter().sum::<f64>() / mid.len() as f64
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
    fn interquartile() {
        // Outliers on both sides do not count; the middle half is averaged.
        let mut v = vec![1000.0, 60.0, 65.0, 60.0, 65.0, 65.0, 0.0, 60.0];
        assert_eq!(interquartile_mean(&mut v), 62.5);
        assert_eq!(interquartile_mean(&mut [7.0]), 7.0);
        assert!(interquartile_mean(&mut []).is_nan());
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
