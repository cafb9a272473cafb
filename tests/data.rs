//! CSV loading and metrics: no GPU needed.

use std::io::Write;

use taskgrad::data::{Dataset, Split, Table, TaskSpec, TaskType};
use taskgrad::task::Class;
use taskgrad::train::metrics::{delta_m, regression};
use taskgrad::Error;

fn csv(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("taskgrad-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

#[test]
fn non_numeric_value_names_file_line_and_column() {
    let path = csv("bad.csv", "a,b,y\n1,2,3\n4,oops,6\n");
    let table = Table::from_csv(&path).unwrap();
    let err =
        Dataset::from_table(&table, &["a", "b"], &[("y", TaskType::REG)], &[0, 1]).unwrap_err();
    match &err {
        Error::Data {
            path: p,
            line,
            column,
            ..
        } => {
            assert_eq!((p, *line, column.as_str()), (&path, 3, "b"));
        }
        e => panic!("expected a data error, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("bad.csv:3:b") && msg.contains("\"oops\" is not a number"),
        "{msg}"
    );
}

#[test]
fn ragged_row_empty_file_header_only_and_unknown_column() {
    let ragged = Table::from_csv(csv("ragged.csv", "a,b\n1,2\n3\n")).unwrap_err();
    assert!(matches!(ragged, Error::Data { line: 3, .. }), "{ragged}");
    assert!(matches!(
        Table::from_csv(csv("empty.csv", "")).unwrap_err(),
        Error::Data { .. }
    ));
    let header_only = Table::from_csv(csv("header.csv", "a,b\n")).unwrap_err();
    assert!(
        header_only.to_string().contains("no data rows"),
        "{header_only}"
    );
    let table = Table::from_csv(csv("ok.csv", "a,b\n1,2\n")).unwrap();
    let err = Dataset::from_table(&table, &["zzz"], &[("b", TaskType::REG)], &[0]).unwrap_err();
    assert!(err.to_string().contains("no such column"), "{err}");
    assert!(matches!(
        Table::from_csv("/no/such/file.csv"),
        Err(Error::Io { .. })
    ));
}

#[test]
fn infinity_in_data_is_refused() {
    let table = Table::from_csv(csv("inf.csv", "a,y\n1,2\ninf,3\n")).unwrap();
    let err = Dataset::from_table(&table, &["a"], &[("y", TaskType::REG)], &[0, 1]).unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
}

#[test]
fn missing_labels_mask_only_their_task_and_standardisation_uses_train_rows() {
    // Rows 0..3 train. a: mean 2, std sqrt(2/3) over train rows [1, 2, 3].
    let table =
        Table::from_csv(csv("mask.csv", "a,c,y\n1,x,10\n2,NA,\n3,z,30\n100,x,40\n")).unwrap();
    let data = Dataset::from_table(
        &table,
        &["a"],
        &[("c", TaskType::CLASS), ("y", TaskType::REG)],
        &[0, 1, 2],
    )
    .unwrap();
    let classes = Class {
        classes: vec!["x".into(), "z".into()],
    };
    assert_eq!(data.tasks[0], TaskSpec::new("c", classes));
    assert_eq!(data.targets[0].mask(), &[1.0, 0.0, 1.0, 1.0]);
    assert_eq!(data.targets[1].mask(), &[1.0, 0.0, 1.0, 1.0]);
    let std = (2.0f32 / 3.0).sqrt();
    assert!((data.x[0] - (1.0 - 2.0) / std).abs() < 1e-6);
    assert!(
        (data.x[3] - (100.0 - 2.0) / std).abs() < 1e-4,
        "test rows use training statistics"
    );
}

#[test]
fn single_class_or_all_missing_task_is_refused() {
    let table = Table::from_csv(csv("one.csv", "a,c,y\n1,x,NA\n2,x,NA\n")).unwrap();
    let e = Dataset::from_table(&table, &["a"], &[("c", TaskType::CLASS)], &[0, 1]).unwrap_err();
    assert!(e.to_string().contains("at least two classes"), "{e}");
    let e = Dataset::from_table(&table, &["a"], &[("y", TaskType::REG)], &[0, 1]).unwrap_err();
    assert!(
        e.to_string()
            .contains("every value of this task is missing"),
        "{e}"
    );
}

#[test]
fn split_is_seeded_and_disjoint() {
    let a = Split::new(150, 0.2, 0.2, 7).unwrap();
    let b = Split::new(150, 0.2, 0.2, 7).unwrap();
    assert_eq!((a.train.len(), a.val.len(), a.test.len()), (90, 30, 30));
    assert_eq!(a.train, b.train);
    let mut all: Vec<usize> = a
        .train
        .iter()
        .chain(&a.val)
        .chain(&a.test)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, (0..150).collect::<Vec<_>>());
    assert_ne!(Split::new(150, 0.2, 0.2, 8).unwrap().train, a.train);
    assert!(Split::new(10, 0.6, 0.5, 0).is_err());
}

#[test]
fn regression_metrics_and_delta_m_by_hand() {
    // pred [1, 2, 4] vs truth [1, 3, 3]: errors [0, -1, 1] → RMSE sqrt(2/3), MAE 2/3;
    // truth mean 7/3, SS_tot = 16/9 + 4/9 + 4/9 = 8/3, R² = 1 - 2/(8/3) = 0.25.
    let (rmse, mae, r2) = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 3.0], &[1.0, 1.0, 1.0]);
    assert!(
        (rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-12
            && (mae - 2.0 / 3.0).abs() < 1e-12
            && (r2 - 0.25).abs() < 1e-12
    );
    // Δm: accuracy 0.9 vs 0.8 (+12.5%), RMSE 0.5 vs 0.4 (worse: -25%) → mean -6.25%.
    let d = delta_m(&[(0.9, true), (0.5, false)], &[(0.8, true), (0.4, false)]);
    assert!((d - (-6.25)).abs() < 1e-9, "{d}");
}

#[test]
fn synthetic_task_correlation_follows_p() {
    use taskgrad::data::synthetic::{table, SyntheticSpec};
    // corr(y1, y2) over the rows: at p = 1 the tasks differ only by noise (σ = 0.1);
    // lower p gives less alike targets.
    let corr = |p: f64| {
        let t = table(&SyntheticSpec {
            rows: 3000,
            correlation: p,
            ..Default::default()
        });
        let d = t.headers.len();
        let col = |j: usize| {
            (0..t.n_rows())
                .map(|r| t.cell(r, j).parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        };
        let (a, b) = (col(d - 2), col(d - 1));
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    };
    let (c0, c5, c1) = (corr(0.0), corr(0.5), corr(1.0));
    assert!(c1 > 0.99, "p = 1: {c1}");
    assert!(
        c0 < c5 && c5 < c1,
        "corr at p = 0, 0.5, 1: {c0}, {c5}, {c1}"
    );
    // Same seed, same table.
    let spec = SyntheticSpec {
        rows: 10,
        ..Default::default()
    };
    let (a, b) = (table(&spec), table(&spec));
    assert_eq!(a.n_rows(), b.n_rows());
    assert!((0..a.n_rows()).all(|r| a.row(r).eq(b.row(r))));
}

#[test]
fn line_numbers_are_right_with_lf_crlf_and_cr_line_endings() {
    // Windows line endings: the error on the third line says line 3 (it said 2;
    // issue 11, item 10), and each row keeps its own line, blank lines counted.
    // Old Mac files end lines with a lone CR: every row was "line 1" (issue 24, item 9).
    for (name, nl) in [("lf.csv", "\n"), ("crlf.csv", "\r\n"), ("cr.csv", "\r")] {
        let body = ["a,b,y", "1,2,3", "", "4,oops,6", "7,8,9"].join(nl) + nl;
        let path = csv(name, &body);
        let table = Table::from_csv(&path).unwrap();
        assert_eq!(table.lines, vec![2, 4, 5], "{name}");
        let err =
            Dataset::from_table(&table, &["a", "b"], &[("y", TaskType::REG)], &[0, 2]).unwrap_err();
        assert!(matches!(err, Error::Data { line: 4, .. }), "{name}: {err}");
        let ragged = csv(&format!("ragged-{name}"), &["a,b", "1,2", "3"].join(nl));
        assert!(
            matches!(Table::from_csv(&ragged), Err(Error::Data { line: 3, .. })),
            "{name}"
        );
    }
}

#[test]
fn tiny_but_real_spreads_are_standardised() {
    // A column in units of 1e-30 was treated as constant (its spread was under
    // 1e-12) and trained to chance (issue 11, item 8); it standardises like the
    // same column in ordinary units. An exactly constant column stays at 0.
    let mut body = String::from("x,tiny,flat,y\n");
    for i in 0..20 {
        let x = i as f32 * 0.37 - 2.0;
        body += &format!("{x},{:e},5,{}\n", x * 1e-30, i % 2);
    }
    let path = csv("tiny.csv", &body);
    let table = Table::from_csv(&path).unwrap();
    let rows: Vec<usize> = (0..20).collect();
    let tasks = [("y", TaskType::CLASS)];
    let a = Dataset::from_table(&table, &["x"], &tasks, &rows).unwrap();
    let b = Dataset::from_table(&table, &["tiny"], &tasks, &rows).unwrap();
    for (u, v) in a.x.iter().zip(&b.x) {
        assert!((u - v).abs() < 1e-4 * (1.0 + u.abs()), "{u} vs {v}");
    }
    let c = Dataset::from_table(&table, &["flat"], &tasks, &rows).unwrap();
    assert!(c.x.iter().all(|&v| v == 0.0), "{:?}", c.x);
}

#[test]
fn one_rule_for_class_labels_and_missing_markers() {
    // `1` and `1.0` were two classes, and NaN or `?` became classes in a class
    // column while NaN was an error in a numeric one (issue 11, item 12).
    let path = csv("labels.csv", "x,y\n1,1\n2,1.0\n3,2\n4,?\n5,2.00\n");
    let table = Table::from_csv(&path).unwrap();
    let rows: Vec<usize> = (0..5).collect();
    let data = Dataset::from_table(&table, &["x"], &[("y", TaskType::CLASS)], &rows).unwrap();
    let classes = Class {
        classes: vec!["1".into(), "2".into()],
    };
    assert_eq!(data.tasks[0], TaskSpec::new("y", classes));
    assert_eq!(data.targets[0].mask(), &[1.0, 1.0, 1.0, 0.0, 1.0]);
    let nan = csv("nan-class.csv", "x,y\n1,a\n2,NaN\n3,b\n");
    let table = Table::from_csv(&nan).unwrap();
    let err = Dataset::from_table(&table, &["x"], &[("y", TaskType::CLASS)], &[0, 1, 2]);
    assert!(matches!(err, Err(Error::Data { line: 3, .. })), "{err:?}");
}

#[test]
fn a_large_file_streams_in_with_progress_and_keeps_every_cell() {
    // The table was a String per cell after reading the whole file into
    // memory (1M × 10 took 710 MB); now it streams, one buffer for all cells,
    // and tells how far it is. CRLF and quoted cells go through unchanged.
    let mut body = String::from("a,b,label\r\n");
    for i in 0..20_000 {
        body += &format!("{i},\"{}.5 \",k{}\r\n", i * 3, i % 7);
    }
    let path = csv("large.csv", &body);
    let size = std::fs::metadata(&path).unwrap().len();
    let mut seen: Vec<(u64, u64)> = Vec::new();
    let t = Table::from_csv_with_progress(&path, &mut |at, total| seen.push((at, total))).unwrap();
    assert_eq!(t.n_rows(), 20_000);
    assert_eq!(t.cell(12_345, 0), "12345");
    assert_eq!(
        t.cell(12_345, 1),
        format!("{}.5", 12_345 * 3),
        "trimmed, unquoted"
    );
    assert_eq!(t.cell(19_999, 2), format!("k{}", 19_999 % 7));
    assert_eq!(t.row(3).collect::<Vec<_>>(), vec!["3", "9.5", "k3"]);
    assert_eq!(t.lines[0], 2);
    assert_eq!(t.lines[19_999], 20_001, "CRLF counted once");
    // Progress: several reports, never backwards, the last one the whole file.
    assert!(seen.len() > 4, "{} reports", seen.len());
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(*seen.last().unwrap(), (size, size));
}

#[test]
fn an_embedded_column_encodes_as_its_level_index_after_the_others() {
    // Issue 20: `--embed city:4` puts one feature per embedded column last
    // in x: the level's index among the training rows' sorted values, −1
    // for a level unseen in training (or missing), which the network's
    // embedding reads as a row of zeros. 1 and 1.0 are one level.
    use taskgrad::data::encode::{InputColumn, Missing, Schema};
    let table = Table::from_csv(csv(
        "embed.csv",
        "zip,a,y\n10,1,1\n20,2,2\n10.0,3,3\n30,4,4\n",
    ))
    .unwrap();
    let schema = Schema::fit_embedding(
        &table,
        &["zip", "a"],
        &[("y", TaskType::REG)],
        &[0, 1, 2],
        Missing::Drop,
        &[("zip", 4)],
    )
    .unwrap();
    assert_eq!(schema.input_names(), ["a", "zip"], "embedded columns last");
    assert_eq!(
        schema.inputs[1],
        InputColumn::Embedded {
            name: "zip".into(),
            levels: vec!["10".into(), "20".into()],
            dim: 4
        }
    );
    let data = schema.encode(&table, &[0, 1, 2, 3]).unwrap();
    assert_eq!(data.d, 2);
    let zips: Vec<f32> = (0..4).map(|r| data.x[r * 2 + 1]).collect();
    assert_eq!(zips, [0.0, 1.0, 0.0, -1.0], "30 was not seen in training");
    assert_eq!(data.embeddings.len(), 1);
    assert_eq!((data.embeddings[0].levels, data.embeddings[0].dim), (2, 4));
    // Only an input can be embedded.
    let err = Schema::fit_embedding(
        &table,
        &["a"],
        &[("y", TaskType::REG)],
        &[0, 1, 2],
        Missing::Drop,
        &[("zip", 4)],
    )
    .unwrap_err();
    assert!(err.to_string().contains("not among the inputs"), "{err}");
}

#[test]
fn a_header_that_is_not_utf8_is_said_in_words() {
    // Issue 24, item 11: it printed csv's internal debug form
    // ("Utf8 { pos: …, err: Utf8Error { … } }").
    let path = std::env::temp_dir().join(format!("taskgrad-latin1-{}.csv", std::process::id()));
    std::fs::write(&path, b"caf\xe9,y\n1,2\n").unwrap();
    let err = Table::from_csv(&path).unwrap_err().to_string();
    assert!(
        err.contains("cannot read the header: it is not UTF-8 text (save the file as UTF-8)"),
        "{err}"
    );
    assert!(!err.contains("Utf8Error"), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_fixed_function_seed_keeps_the_function_across_seeds() {
    use taskgrad::data::synthetic::{table, SyntheticSpec};
    // Ma et al.'s runs share c, m, α, β and redraw u1, u2, x and ε (issue 26).
    // y = wᵀx + Σ sin(α_i wᵀx + β_i) + ε with wᵀx ~ N(0, c²) whatever u is, so
    // the labels' distribution depends on α and β alone: two data seeds over
    // one function seed give the same distribution (Kolmogorov–Smirnov
    // distance at sampling noise), two function seeds different ones.
    let labels = |seed: u64, function_seed: Option<u64>| {
        let t = table(&SyntheticSpec {
            rows: 4000,
            inputs: 8,
            seed,
            function_seed,
            ..Default::default()
        });
        let y = t.headers.len() - 2;
        let mut v: Vec<f64> = (0..t.n_rows())
            .map(|r| t.cell(r, y).parse::<f64>().unwrap())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let ks = |a: &[f64], b: &[f64]| {
        let cdf = |s: &[f64], x: f64| s.partition_point(|&v| v <= x) as f64 / s.len() as f64;
        a.iter()
            .chain(b)
            .map(|&x| (cdf(a, x) - cdf(b, x)).abs())
            .fold(0.0, f64::max)
    };
    let (a, b) = (labels(0, Some(3)), labels(1, Some(3)));
    assert_ne!(a, b, "a new data seed draws new rows");
    let same = ks(&a, &b);
    let other = ks(&a, &labels(0, Some(4)));
    assert!(same < 0.04, "one function, two data seeds: KS {same}");
    assert!(other > 0.1, "two functions: KS {other}");
    // Without a function seed, each seed is its own function (as before).
    assert!(ks(&labels(0, None), &labels(1, None)) > 0.1);
}
