//! The image layers (`conv`, `maxpool`, `avgpool`, `flatten`;
//! `nn::layer::image`) as a network builds them: whole two-task networks
//! over NHWC images against central finite differences of the same network
//! written in f64 with the CPU reference (the direct seven-loop convolution,
//! not im2col), with the image ending in the trunk or inside the towers;
//! and the shape errors a spec that does not fit its image gets before any
//! GPU work. The kernels themselves are tested in tests/kernels.rs and
//! tests/gradcheck.rs.

mod common;

use common::fd::{check, upload, Fixture, P};
use common::{random, rng};
use taskgrad::kernels::im2col::ConvGeometry;
use taskgrad::nn::layer::Image;
use taskgrad::nn::{LayerSpec, MultiTaskNet, NetSpec, ParamBuilder};
use taskgrad::reference as cpu;
use taskgrad::{Error, Gpu, Tape, Tensor};

/// One layer of the f64 twin of a stack.
#[derive(Clone, Copy)]
enum L {
    /// out channels, kernel, stride, padding, ReLU fused
    Conv(usize, usize, usize, usize, bool),
    Max(usize),
    Avg(usize),
    Relu,
    Flatten,
    /// width, ReLU fused
    Linear(usize, bool),
    /// A residual block: its layers, and whether the skip path is projected
    /// (a 1×1 convolution over an image, a linear layer over features).
    Res(&'static [L], bool),
}

/// Values flowing through the twin: (data, per-example image or width).
struct Flow {
    v: Vec<f64>,
    image: Option<(usize, usize, usize)>,
    width: usize,
}

/// Run `layers` in f64 on `b` examples, reading parameters from `p` from `*at` on.
fn twin(layers: &[L], mut f: Flow, b: usize, p: &P, at: &mut usize) -> Flow {
    for &l in layers {
        match l {
            L::Conv(out, k, s, pad, relu) => {
                let (h, w, c) = f.image.unwrap();
                let g = ConvGeometry::new((b, h, w, c), k, s, pad).unwrap();
                let mut y = cpu::conv2d(&f.v, &p[*at], &p[*at + 1], &g, out);
                if relu {
                    y = cpu::relu(&y);
                }
                *at += 2;
                f = Flow {
                    v: y,
                    image: Some((g.out_h(), g.out_w(), out)),
                    width: out,
                };
            }
            L::Max(k) | L::Avg(k) => {
                let (h, w, c) = f.image.unwrap();
                let g = ConvGeometry::new((b, h, w, c), k, k, 0).unwrap();
                let y = match l {
                    L::Max(_) => cpu::max_pool(&f.v, &g).0,
                    _ => cpu::avg_pool(&f.v, &g),
                };
                f = Flow {
                    v: y,
                    image: Some((g.out_h(), g.out_w(), c)),
                    width: c,
                };
            }
            L::Relu => f.v = cpu::relu(&f.v),
            L::Flatten => {
                let (h, w, c) = f.image.take().unwrap();
                f.width = h * w * c;
            }
            L::Res(inner, proj) => {
                let x = Flow {
                    v: f.v.clone(),
                    image: f.image,
                    width: f.width,
                };
                let y = twin(inner, x, b, p, at);
                let skip = match (proj, f.image) {
                    (false, _) => f.v.clone(),
                    (true, Some((h, w, c))) => {
                        let g = ConvGeometry::new((b, h, w, c), 1, 1, 0).unwrap();
                        cpu::conv2d(&f.v, &p[*at], &p[*at + 1], &g, y.width)
                    }
                    (true, None) => {
                        let (d, n) = (f.width, y.width);
                        cpu::matmul(
                            &f.v,
                            &p[*at],
                            b,
                            d,
                            n,
                            false,
                            false,
                            Some(&p[*at + 1]),
                            false,
                        )
                    }
                };
                if proj {
                    *at += 2;
                }
                f = Flow {
                    v: y.v.iter().zip(&skip).map(|(a, s)| a + s).collect(),
                    image: y.image,
                    width: y.width,
                };
            }
            L::Linear(n, relu) => {
                let (v, d) = (&f.v, f.width);
                let y = cpu::matmul(v, &p[*at], b, d, n, false, false, Some(&p[*at + 1]), relu);
                *at += 2;
                f = Flow {
                    v: y,
                    image: None,
                    width: n,
                };
            }
        }
    }
    f
}

/// A two-task network (3 classes by cross-entropy, one regression by MSE)
/// over `b` images of `image`, built from the layer lists, checked against
/// its twin (`trunk`, `tower` written as `L`s).
fn check_network(gpu: &Gpu, image: Image, lists: (&str, &str), twins: (&[L], &[L]), seed: u64) {
    let (b, d) = (3, image.len());
    let spec = NetSpec {
        inputs: d,
        image: Some(image),
        embeddings: vec![],
        trunk: vec![],
        tower: vec![],
        trunk_layers: LayerSpec::parse_list(lists.0).unwrap(),
        tower_layers: LayerSpec::parse_list(lists.1).unwrap(),
        expert_layers: vec![],
        outputs: vec![3, 1],
        head_names: vec!["digit".into(), "size".into()],
        activation: Default::default(),
        arch: Default::default(),
    };
    let mut builder = ParamBuilder::new(gpu);
    let net = MultiTaskNet::new(&mut builder, spec, seed).unwrap();
    let params = builder.build(gpu).unwrap();
    let host: P = (params.read_all(gpu).unwrap().into_iter())
        .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
        .collect();
    let fx = Fixture { params, host };

    let mut r = rng(seed + 1);
    let x = random(&mut r, b * d);
    let labels = vec![2u32, 0, 1];
    let target = random(&mut r, b);
    let mask = [1.0f32; 3];
    let seeds = upload(gpu, &[2], &[1.0, 1.0]);
    let losses = Tensor::zeros(gpu, &[2], "losses").unwrap();
    let mut tape = Tape::new(gpu);
    let xv = tape.input(&upload(gpu, &[b, d], &x));
    let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
    let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
    let m = upload(gpu, &[b], &mask);
    let l0 = tape
        .softmax_ce(outs[0], &gl, &m, &seeds, &losses, 0)
        .unwrap();
    let t = upload(gpu, &[b, 1], &target);
    let l1 = tape.mse(outs[1], &t, &m, &seeds, &losses, 1).unwrap();
    tape.backward(&[l0, l1]).unwrap();

    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    let ones = vec![1.0f64; b];
    let what = format!("{} | {}", lists.0, lists.1);
    check(gpu, &tape, &fx, &what, |p| {
        let mut at = 0;
        let input = Flow {
            v: x64.clone(),
            image: Some((image.height, image.width, image.channels)),
            width: image.channels,
        };
        let z = twin(twins.0, input, b, p, &mut at);
        let mut head = |out: usize| {
            let z = Flow {
                v: z.v.clone(),
                image: z.image,
                width: z.width,
            };
            let h = twin(twins.1, z, b, p, &mut at);
            let y = cpu::matmul(
                &h.v,
                &p[at],
                b,
                h.width,
                out,
                false,
                false,
                Some(&p[at + 1]),
                false,
            );
            at += 2;
            y
        };
        let ce = cpu::softmax_ce(&head(3), &labels, &ones, b, 3, 1.0).loss;
        let mse = cpu::mse(&head(1), &t64, &ones, b, 1, 1.0).0;
        ce + mse
    });
}

#[test]
fn a_convolutional_trunk_with_pooling_and_dense_towers() {
    // 7×6 images of 2 channels: conv 3×3 padded (ReLU fused), max-pool 2,
    // conv 2×2 stride 1, average-pool 2, ReLU, flatten, linear; towers linear.
    let gpu = gpu_or_skip!();
    let image = Image::new(7, 6, 2).unwrap();
    check_network(
        gpu,
        image,
        (
            "conv:3x3p1,relu,maxpool:2,conv:4x2,avgpool:2,relu,flatten,linear:5,relu",
            "linear:4,relu",
        ),
        (
            &[
                L::Conv(3, 3, 1, 1, true),
                L::Max(2),
                L::Conv(4, 2, 1, 0, false),
                L::Avg(2),
                L::Relu,
                L::Flatten,
                L::Linear(5, true),
            ],
            &[L::Linear(4, true)],
        ),
        100,
    );
}

#[test]
fn residual_blocks_over_an_image_and_over_features_with_and_without_projection() {
    // 5×4 images of 2 channels: a block that keeps 2 channels (identity
    // skip), one that makes 3 (a 1×1 convolution on the skip); towers with a
    // block that keeps the width and one that changes it (a linear skip).
    let gpu = gpu_or_skip!();
    let image = Image::new(5, 4, 2).unwrap();
    check_network(
        gpu,
        image,
        (
            "res(conv:2x3p1,relu,conv:2x3p1),relu,res(conv:3x3p1),maxpool:2,flatten,linear:4,relu",
            "res(linear:4,relu,linear:4),res(linear:3,relu)",
        ),
        (
            &[
                L::Res(
                    &[L::Conv(2, 3, 1, 1, true), L::Conv(2, 3, 1, 1, false)],
                    false,
                ),
                L::Relu,
                L::Res(&[L::Conv(3, 3, 1, 1, false)], true),
                L::Max(2),
                L::Flatten,
                L::Linear(4, true),
            ],
            &[
                L::Res(&[L::Linear(4, true), L::Linear(4, false)], false),
                L::Res(&[L::Linear(3, true)], true),
            ],
        ),
        104,
    );
}

#[test]
fn the_image_goes_on_into_each_tower() {
    // The trunk ends on an image (the representation per-task gradient
    // methods read is then 4×4×3 per example); each tower convolves it
    // again at stride 2 and flattens it.
    let gpu = gpu_or_skip!();
    let image = Image::new(5, 5, 1).unwrap();
    check_network(
        gpu,
        image,
        ("conv:3x2p0", "conv:2x2s2,relu,flatten"),
        (
            &[L::Conv(3, 2, 1, 0, false)],
            &[L::Conv(2, 2, 2, 0, true), L::Flatten],
        ),
        110,
    );
}

fn build_error(gpu: &Gpu, image: &str, trunk: &str, tower: &str) -> String {
    let image = Image::parse(image).unwrap();
    let spec = NetSpec {
        inputs: image.len(),
        image: Some(image),
        embeddings: vec![],
        trunk: vec![],
        tower: vec![],
        trunk_layers: LayerSpec::parse_list(trunk).unwrap(),
        tower_layers: LayerSpec::parse_list(tower).unwrap(),
        expert_layers: vec![],
        outputs: vec![10],
        head_names: vec!["digit".into()],
        activation: Default::default(),
        arch: Default::default(),
    };
    match MultiTaskNet::size(gpu, spec) {
        Err(Error::InvalidConfig(m)) => m,
        Err(other) => panic!("{trunk} | {tower}: not a configuration error: {other}"),
        Ok(_) => panic!("{trunk} | {tower}: built"),
    }
}

#[test]
fn a_spec_that_does_not_fit_its_image_says_which_layer_and_which_sizes() {
    let gpu = gpu_or_skip!();
    let m = build_error(
        gpu,
        "12x12",
        "conv:10x5,maxpool:2,conv:20x5,flatten,linear:50",
        "",
    );
    assert!(
        m.contains("conv:20x5") && m.contains("trunk") && m.contains("4x4x10") && m.contains("5×5"),
        "{m}"
    );
    let m = build_error(gpu, "28x28", "conv:10x5,linear:50", "");
    assert!(
        m.contains("linear:50") && m.contains("24x24x10") && m.contains("flatten"),
        "{m}"
    );
    let m = build_error(gpu, "28x28", "conv:10x5,maxpool:2", "");
    assert!(
        m.contains("12x12x10") && m.contains("--trunk with flatten"),
        "{m}"
    );
    let m = build_error(gpu, "28x28", "conv:10x5", "relu");
    assert!(m.contains("--tower with flatten"), "{m}");
    let m = build_error(gpu, "28x28", "flatten,maxpool:2", "");
    assert!(m.contains("maxpool:2") && m.contains("784 features"), "{m}");
    let m = build_error(gpu, "28x28", "conv:10", "");
    assert!(m.contains("OUTxK"), "{m}");
    let m = build_error(gpu, "28x28", "maxpool:2p1", "");
    assert!(m.contains("no padding"), "{m}");
}

#[test]
fn a_residual_block_must_keep_its_input_and_reads_back_as_written() {
    let gpu = gpu_or_skip!();
    let e = build_error(gpu, "6x6", "res(conv:2x3),flatten", "");
    assert!(
        e.contains("res(conv:2x3)") && e.contains("4x4") && e.contains("keeps"),
        "{e}"
    );
    let e = build_error(gpu, "6x6", "res(conv:2x3p1,flatten)", "");
    assert!(e.contains("kind") && e.contains("flatten outside"), "{e}");
    let e = build_error(gpu, "6x6", "flatten,res()", "");
    assert!(e.contains("res needs its layers"), "{e}");
    // A block's spec prints in parentheses and parses back to itself.
    let specs = LayerSpec::parse_list("linear:8, RES(linear:8,relu,res(linear:8)) ,relu").unwrap();
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[1].to_string(), "res(linear:8,relu,res(linear:8))");
    assert_eq!(LayerSpec::parse(&specs[1].to_string()).unwrap(), specs[1]);
    for bad in ["res(linear:8", "relu)", "res(linear:8))"] {
        assert!(LayerSpec::parse_list(bad).is_err(), "{bad}");
    }
}

#[test]
fn lenet_sizes_follow_the_paper() {
    // Sener & Koltun's LeNet on 28×28 MultiMNIST: conv 1→10 k5, pool 2,
    // conv 10→20 k5, pool 2: 4×4×20 = 320 features, then 50.
    let gpu = gpu_or_skip!();
    let image = Image::parse("28x28").unwrap();
    let mut p = ParamBuilder::layout_only(gpu);
    let spec = NetSpec {
        inputs: 784,
        image: Some(image),
        embeddings: vec![],
        trunk: vec![],
        tower: vec![],
        trunk_layers: LayerSpec::parse_list(
            "conv:10x5,maxpool:2,relu,conv:20x5,maxpool:2,relu,flatten,linear:50,relu",
        )
        .unwrap(),
        tower_layers: LayerSpec::parse_list("linear:50,relu").unwrap(),
        expert_layers: vec![],
        outputs: vec![10, 10],
        head_names: vec!["left".into(), "right".into()],
        activation: Default::default(),
        arch: Default::default(),
    };
    let net = MultiTaskNet::new(&mut p, spec, 0).unwrap();
    let shapes: Vec<Vec<usize>> = p.layout().entries().iter().map(|e| e.2.clone()).collect();
    assert_eq!(shapes[0], vec![25, 10]);
    assert_eq!(shapes[2], vec![250, 20]);
    assert_eq!(shapes[4], vec![320, 50]);
    assert_eq!(net.trunk.output(), 50);
    // The widest buffer per example is conv 2's patches: 8·8 rows of 5·5·10
    // (conv 1's are 24·24 rows of 25, its output 24·24·10).
    assert_eq!(net.trunk.widest(), 8 * 8 * 250);
}

/// A small image data set: `n` random 5×6 one-channel images with a 3-class
/// task and a regression, encoded as training encodes an `--image` CSV.
fn image_data(n: usize) -> taskgrad::data::Dataset {
    use taskgrad::data::encode::{Missing, Schema};
    use taskgrad::data::{Table, TaskType};
    let mut r = rng(120);
    let mut text = (0..30)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",c,y\n";
    for i in 0..n {
        let px = random(&mut r, 30);
        let cells: Vec<String> = px
            .iter()
            .map(|v| format!("{:.0}", (v + 1.0) * 120.0))
            .collect();
        text += &format!("{},k{},{:.3}\n", cells.join(","), i % 3, px[7] - px[20]);
    }
    let table = Table::from_csv_text("images", &text).unwrap();
    let pixels: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    let inputs: Vec<&str> = pixels.iter().map(|s| s.as_str()).collect();
    let rows: Vec<usize> = (0..n).collect();
    let tasks = [("c", TaskType::CLASS), ("y", TaskType::REG)];
    Schema::fit(&table, &inputs, &tasks, &rows, Missing::Drop)
        .unwrap()
        .as_image(Image::new(5, 6, 1).unwrap(), &table, &rows)
        .unwrap()
        .encode(&table, &rows)
        .unwrap()
}

#[test]
fn per_task_gradients_of_a_conv_trunk_sum_to_the_joint_gradient_in_both_spaces() {
    // With equal weights, Σ_k g_k over the per-task passes must be the joint
    // gradient: in parameter space each task's pass writes its row of the
    // conv trunk's gradients; in representation space the trunk's last
    // output is the representation, a row of features (ending flat) or an
    // image (the towers convolving it further).
    use taskgrad::mtl::{self, GradSpace};
    use taskgrad::optim::OptimizerConfig;
    use taskgrad::train::step::Program;
    let gpu = gpu_or_skip!();
    let data = image_data(8);
    for (trunk, tower) in [
        (
            "conv:3x3p1,relu,maxpool:2,flatten,linear:6,relu",
            "linear:4,relu",
        ),
        ("conv:3x2,relu", "avgpool:2,flatten,linear:4,relu"),
    ] {
        let step = |space: Option<GradSpace>| {
            let spec = NetSpec {
                inputs: 30,
                image: data.image,
                embeddings: vec![],
                trunk: vec![],
                tower: vec![],
                trunk_layers: LayerSpec::parse_list(trunk).unwrap(),
                tower_layers: LayerSpec::parse_list(tower).unwrap(),
                expert_layers: vec![],
                outputs: vec![3, 1],
                head_names: vec!["c".into(), "y".into()],
                activation: Default::default(),
                arch: Default::default(),
            };
            let mut b = ParamBuilder::new(gpu);
            let net = MultiTaskNet::new(&mut b, spec, 5).unwrap();
            let params = b.build(gpu).unwrap();
            let mut equal = mtl::Equal;
            let prog = Program::build(
                gpu,
                &net,
                &params,
                &data.tasks,
                30,
                8,
                &mut equal,
                space,
                OptimizerConfig::default(),
            )
            .unwrap();
            let rows: Vec<usize> = (0..8).collect();
            prog.write_batch(gpu, &data, &rows, &[0, 1]).unwrap();
            let mut ds = prog.train_dispatches();
            ds.pop(); // no optimizer step: look at the gradients
            gpu.run(&ds).unwrap();
            let got = gpu
                .read(&[&params.grads().unwrap().whole, &prog.tasks.gram])
                .unwrap();
            (got[0].clone(), got[1].clone())
        };
        let (joint, _) = step(None);
        assert!(joint.iter().any(|&g| g != 0.0));
        for space in [GradSpace::Parameters, GradSpace::Representation] {
            let (got, gram) = step(Some(space));
            common::assert_close(
                &format!("{trunk} | {tower}, {space:?}"),
                &got,
                &joint,
                1e-5,
                1e-4,
            );
            assert!(gram[0] > 0.0 && gram[3] > 0.0, "{gram:?}");
        }
    }
}

/// `Arch::Mtan` over `image` (or flat features when None) with the trunk
/// `trunk` and its twin cut into stages, two tasks: every parameter (the
/// shared stages, the carries, each task's masks, the heads) against central
/// differences of the same network in f64.
fn check_mtan(gpu: &Gpu, image: Option<Image>, d: usize, trunk: &str, stages: &[&[L]], seed: u64) {
    use taskgrad::nn::Arch;
    let b = 3;
    let spec = NetSpec {
        inputs: d,
        image,
        embeddings: vec![],
        trunk: vec![],
        tower: vec![],
        trunk_layers: LayerSpec::parse_list(trunk).unwrap(),
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1],
        head_names: vec!["digit".into(), "size".into()],
        activation: Default::default(),
        arch: Arch::Mtan,
    };
    let mut builder = ParamBuilder::new(gpu);
    let net = MultiTaskNet::new(&mut builder, spec, seed).unwrap();
    let params = builder.build(gpu).unwrap();
    let names = params.names.clone();
    // The shared part (stages, carries) lies in one segment, the masks after it.
    net.shared_segment(&params).unwrap();
    let host: P = (params.read_all(gpu).unwrap().into_iter())
        .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
        .collect();
    let fx = Fixture { params, host };
    let mut r = rng(seed + 1);
    let x = random(&mut r, b * d);
    let labels = vec![2u32, 0, 1];
    let target = random(&mut r, b);
    let m = upload(gpu, &[b], &[1.0f32; 3]);
    let seeds = upload(gpu, &[2], &[1.0, 0.5]);
    let losses = Tensor::zeros(gpu, &[2], "losses").unwrap();
    let mut tape = Tape::new(gpu);
    let xv = tape.input(&upload(gpu, &[b, d], &x));
    let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
    let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
    let l0 = tape
        .softmax_ce(outs[0], &gl, &m, &seeds, &losses, 0)
        .unwrap();
    let t = upload(gpu, &[b, 1], &target);
    let l1 = tape.mse(outs[1], &t, &m, &seeds, &losses, 1).unwrap();
    tape.backward(&[l0, l1]).unwrap();

    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    let ones = vec![1.0f64; b];
    let first = |prefix: &str| names.iter().position(|n| n.starts_with(prefix));
    check(gpu, &tape, &fx, &format!("mtan over {trunk}"), |p| {
        let mut h = Flow {
            v: x64.clone(),
            image: image.map(|im| (im.height, im.width, im.channels)),
            width: image.map_or(d, |im| im.channels),
        };
        let mut att: Vec<Option<Flow>> = vec![None, None];
        for (s, stage) in stages.iter().enumerate() {
            let mut at = first(&format!("mtan.{s}.shared.")).unwrap_or(0);
            h = twin(stage, h, b, p, &mut at);
            let c = h.width;
            for (k, task) in att.iter_mut().enumerate() {
                let reads = match task.take() {
                    None => h.v.clone(),
                    Some(prev) => {
                        let mut at = first(&format!("mtan.{s}.carry.")).unwrap_or(0);
                        let carried = twin(stage, prev, b, p, &mut at);
                        (h.v.chunks(c).zip(carried.v.chunks(c)))
                            .flat_map(|(a, b)| a.iter().chain(b).copied())
                            .collect()
                    }
                };
                let wide = reads.len() / (h.v.len() / c);
                let layers: [L; 2] = match h.image {
                    Some(_) => [L::Conv(c, 1, 1, 0, true), L::Conv(c, 1, 1, 0, false)],
                    None => [L::Linear(c, true), L::Linear(c, false)],
                };
                let read = Flow {
                    v: reads,
                    image: h.image.map(|(hh, ww, _)| (hh, ww, wide)),
                    width: wide,
                };
                let mut at = first(&format!("mtan.{s}.att{k}.")).unwrap();
                let logits = twin(&layers, read, b, p, &mut at);
                let mask = cpu::sigmoid(&logits.v);
                *task = Some(Flow {
                    v: mask.iter().zip(&h.v).map(|(a, v)| a * v).collect(),
                    image: h.image,
                    width: h.width,
                });
            }
        }
        let head = |k: usize, name: &str, out: usize| {
            let z = att[k].as_ref().unwrap();
            let at = first(&format!("head.{name}.out.")).unwrap();
            let (w, bias) = (&p[at], &p[at + 1]);
            cpu::matmul(&z.v, w, b, z.width, out, false, false, Some(bias), false)
        };
        let ce = cpu::softmax_ce(&head(0, "digit", 3), &labels, &ones, b, 3, 1.0).loss;
        let mse = cpu::mse(&head(1, "size", 1), &t64, &ones, b, 1, 1.0).0;
        ce + 0.5 * mse
    });
}

#[test]
fn mtan_over_an_image_and_over_features() {
    // Over 4×4 images of one channel: conv 3×3 padded (ReLU fused), max-pool
    // 2, flatten and linear: three stages, masks of 1×1 convolutions over the
    // first two (the second reads 2 + 2 channels: the shared features and the
    // carried task features), a linear mask over the third.
    let gpu = gpu_or_skip!();
    let image = Image::new(4, 4, 1).unwrap();
    check_mtan(
        gpu,
        Some(image),
        16,
        "conv:2x3p1,relu,maxpool:2,flatten,linear:3,relu",
        &[
            &[L::Conv(2, 3, 1, 1, true)],
            &[L::Max(2)],
            &[L::Flatten, L::Linear(3, true)],
        ],
        120,
    );
    // Over 5 features: linear 4 + ReLU, linear 3 + ReLU.
    check_mtan(
        gpu,
        None,
        5,
        "linear:4,relu,linear:3,relu",
        &[&[L::Linear(4, true)], &[L::Linear(3, true)]],
        121,
    );
}
