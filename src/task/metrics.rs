//! Metrics of a task on one split, and the plain functions that compute
//! them (on the host, from outputs read back once per evaluation).

/// One named metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Its name, as a column header: "accuracy", "rmse", "auc", …
    pub name: &'static str,
    /// Its name for people, with its units: "RMSE (original units)", "ROC AUC".
    pub label: &'static str,
    pub value: f64,
    pub higher_is_better: bool,
}

impl Metric {
    pub fn new(
        name: &'static str,
        label: &'static str,
        value: f64,
        higher_is_better: bool,
    ) -> Metric {
        Metric {
            name,
            label,
            value,
            higher_is_better,
        }
    }
}

/// Metrics of one task on one split: the mean loss, and the kind's metrics
/// with the primary one (what Δm% compares) first.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskMetrics {
    pub loss: f64,
    /// The primary metric first.
    pub metrics: Vec<Metric>,
}

impl TaskMetrics {
    /// The metric Δm% uses and whether higher is better.
    pub fn primary(&self) -> (f64, bool) {
        let m = self.primary_metric();
        (m.value, m.higher_is_better)
    }
    /// The metric Δm% uses.
    pub fn primary_metric(&self) -> &Metric {
        &self.metrics[0]
    }
    pub fn loss(&self) -> f64 {
        self.loss
    }
    /// The metric named `name`, if the task reports it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// Accuracy of argmax over `outputs` (rows×C) on rows with mask > 0.5.
pub fn accuracy(outputs: &[f32], c: usize, labels: &[u32], mask: &[f32]) -> f64 {
    let (mut right, mut n) = (0usize, 0usize);
    for (r, &m) in mask.iter().enumerate() {
        if m <= 0.5 {
            continue;
        }
        let row = &outputs[r * c..(r + 1) * c];
        let arg = (0..c).fold(0, |best, j| if row[j] > row[best] { j } else { best });
        right += (arg as u32 == labels[r]) as usize;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        right as f64 / n as f64
    }
}

/// (RMSE, MAE, R²) of predictions against truth on rows with mask > 0.5.
pub fn regression(pred: &[f64], truth: &[f64], mask: &[f32]) -> (f64, f64, f64) {
    let rows: Vec<usize> = (0..mask.len()).filter(|&r| mask[r] > 0.5).collect();
    if rows.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = rows.len() as f64;
    let mean = rows.iter().map(|&r| truth[r]).sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for &r in &rows {
        let e = pred[r] - truth[r];
        se += e * e;
        ae += e.abs();
        tot += (truth[r] - mean) * (truth[r] - mean);
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    ((se / n).sqrt(), ae / n, r2)
}

/// Area under the ROC curve of `scores` for the rows with mask > 0.5 whose
/// `positive` flag says which class they are: the probability that a random
/// positive scores above a random negative, ties counting one half (the
/// Mann–Whitney U statistic over average ranks). 0.5 when one class is absent.
pub fn roc_auc(scores: &[f64], positive: &[bool], mask: &[f32]) -> f64 {
    let mut rows: Vec<usize> = (0..mask.len()).filter(|&r| mask[r] > 0.5).collect();
    rows.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = rows.iter().filter(|&&r| positive[r]).count();
    let n_neg = rows.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return 0.5;
    }
    // Sum of the positives' ranks (1-based), each run of tied scores sharing its average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && scores[rows[j + 1]] == scores[rows[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * rows[i..=j].iter().filter(|&&r| positive[r]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    u / (n_pos as f64 * n_neg as f64)
}

/// Mean log-loss −[y ln p + (1−y) ln(1−p)] of probabilities `p`, computed
/// from the logits `z` stably (p = σ(z)), on rows with mask > 0.5.
pub fn log_loss(z: &[f32], positive: &[bool], mask: &[f32]) -> f64 {
    let (mut total, mut n) = (0.0, 0usize);
    for (r, &m) in mask.iter().enumerate() {
        if m <= 0.5 {
            continue;
        }
        let z = z[r] as f64;
        let y = if positive[r] { 1.0 } else { 0.0 };
        total += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}
