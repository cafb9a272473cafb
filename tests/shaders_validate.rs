//! Every .wgsl file in shaders/ is parsed and validated by naga, as the crate
//! compiles it (with its prelude where it has one), and compiled to SPIR-V,
//! Metal and HLSL (the tensor-core matmul to SPIR-V only), with no GPU. The file list is read from the directory, so a new shader
//! cannot be missed, and it must match `kernels::SHADERS` and the registry.

use std::path::Path;

/// Every shader as the crate compiles it: the files of `kernels::SHADERS`,
/// each registered method's solve (prelude + file) or coordinate-wise
/// combination, and the kernels of the task kinds and layers that bring their own.
fn all_sources() -> Vec<(String, &'static str)> {
    let mut all: Vec<(String, &'static str)> = taskgrad::kernels::SHADERS
        .iter()
        .map(|(n, s)| (n.to_string(), *s))
        .collect();
    for m in taskgrad::mtl::REGISTRY {
        if let Some(shader) = m.shader {
            all.push((shader.file.to_string(), shader.source));
        }
    }
    let units = taskgrad::task::REGISTRY
        .iter()
        .filter_map(|k| k.shader)
        .chain(taskgrad::nn::layer::LAYERS.iter().filter_map(|l| l.shader))
        .chain(taskgrad::mtl::COMBINE_SHADERS.iter().copied().copied());
    for shader in units {
        all.push((shader.file.to_string(), shader.source));
    }
    all.extend(unrolled_sources());
    all.extend(lanes_sources());
    all
}

/// The subgroup matmul (`kernels::matmul_lanes`, generated per product):
/// both transposes, either mask with the bias gradient, each epilogue, one
/// lane's rows in one and in several row groups, whole and partial column
/// blocks, for one replica and for several.
fn lanes_sources() -> Vec<(String, &'static str)> {
    use taskgrad::kernels::matmul::Operand;
    use taskgrad::kernels::matmul_lanes::source;
    let mut all = Vec::new();
    for shape in [(5, 16, 8), (40, 36, 12)] {
        for trans in [(false, false), (true, false), (false, true), (true, true)] {
            for (mask, bias_grad, epilogue) in [
                (None, false, (true, true, false)),
                (Some(Operand::A), false, (false, false, true)),
                (Some(Operand::B), true, (false, false, false)),
                (Some(Operand::B), true, (false, false, true)),
            ] {
                for replicated in [false, true] {
                    let name = format!(
                        "matmul_lanes {shape:?} {trans:?} {mask:?} {bias_grad} {epilogue:?} \
                         replicated {replicated}"
                    );
                    let text = source(shape, trans, mask, bias_grad, epilogue, replicated, 8);
                    all.push((name, text.expect("fits")));
                }
            }
        }
    }
    all
}

/// The written-out matmul (`kernels::matmul_unrolled`, generated per
/// product): each way of laying out lanes, both transposes, either mask and
/// the bias gradient, on small awkward shapes.
fn unrolled_sources() -> Vec<(String, &'static str)> {
    use taskgrad::kernels::matmul::Operand;
    use taskgrad::kernels::matmul_unrolled::source;
    let mut all = Vec::new();
    // (m, n, k): lanes along rows, then along columns (k·n > k·m).
    for shape in [(5, 3, 8), (2, 64, 12)] {
        for trans in [(false, false), (true, false), (false, true), (true, true)] {
            for (mask, bias_grad, fours, c4) in [
                (None, false, false, None),
                (Some(Operand::A), false, false, None),
                (Some(Operand::B), true, false, None),
                (Some(Operand::B), true, true, None),
                (None, false, false, Some((true, true, false))),
                (Some(Operand::B), true, true, Some((false, false, true))),
            ] {
                let name = format!(
                    "matmul_unrolled {shape:?} {trans:?} {mask:?} {bias_grad} {fours} {c4:?}"
                );
                all.push((
                    name,
                    source(shape, trans, mask, bias_grad, fours, c4).expect("fits"),
                ));
            }
        }
    }
    all
}

#[test]
fn the_written_out_matmul_refuses_products_too_large_to_write_out() {
    use taskgrad::kernels::matmul_unrolled::{lanes_for, source, Lanes, MAX_TERMS};
    assert_eq!(lanes_for((120, 3, 64)), Some(Lanes::Rows), "a head");
    assert_eq!(
        lanes_for((2, 64, 120)),
        Some(Lanes::Cols),
        "a first layer's weight gradient"
    );
    assert_eq!(lanes_for((120, 64, 64)), None, "a hidden layer");
    // Whichever writes out fewer terms, up to MAX_TERMS.
    assert_eq!(lanes_for((MAX_TERMS + 88, MAX_TERMS, 1)), Some(Lanes::Rows));
    assert_eq!(lanes_for((1, MAX_TERMS, 1)), Some(Lanes::Cols));
    assert_eq!(lanes_for((MAX_TERMS + 1, MAX_TERMS + 1, 1)), None);
    for (name, src) in unrolled_sources() {
        validate(&name, src);
    }
    let e = source((120, 64, 64), (false, false), None, false, false, None).unwrap_err();
    assert!(e.to_string().contains("at most 512 terms"), "{e}");
}

/// Compile to SPIR-V with every override at its default, as the Vulkan
/// backend does: a shader naga validates can still make its SPIR-V writer
/// fail (for example a `coopLoad` whose index is computed inline in a loop).
fn to_spirv(name: &str, source: &str) -> Vec<u32> {
    let (module, info) = processed(name, source);
    let options = naga::back::spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    naga::back::spv::write_vec(&module, &info, &options, None)
        .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"))
}

#[test]
fn every_shader_compiles_to_spirv() {
    for (name, source) in all_sources() {
        // The writer panics on some inputs: name the shader when it does.
        let words = std::panic::catch_unwind(|| to_spirv(&name, source))
            .unwrap_or_else(|_| panic!("{name}: naga's SPIR-V writer panicked (see above)"));
        assert_eq!(words[0], 0x0723_0203, "{name}: not a SPIR-V module");
    }
}

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: WGSL parse error:\n{}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: validation error:\n{}", e.emit_to_string(source)));
    assert!(!module.entry_points.is_empty(), "{name} has no entry point");
}

#[test]
fn every_shader_file_parses_and_validates() {
    // Each file of shaders/ is listed once: in kernels::SHADERS (the f32
    // matmul kernels with matmul_prelude.wgsl in front) or by the task kind
    // or layer it belongs to; each validates as compiled.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .filter(|n| n.ends_with(".wgsl") && n != "matmul_prelude.wgsl")
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let prelude = std::fs::read_to_string(dir.join("matmul_prelude.wgsl")).unwrap();
    for (name, source) in taskgrad::kernels::SHADERS {
        validate(name, source);
        let file = std::fs::read_to_string(dir.join(name)).expect("listed file exists");
        assert!(
            *source == file || *source == format!("{prelude}{file}"),
            "{name}: kernels::SHADERS holds something else than the file (with the prelude)"
        );
    }
    let units: Vec<taskgrad::kernels::Shader> = taskgrad::task::REGISTRY
        .iter()
        .filter_map(|k| k.shader)
        .chain(taskgrad::nn::layer::LAYERS.iter().filter_map(|l| l.shader))
        .collect();
    for unit in &units {
        validate(unit.file, unit.source);
        let file = std::fs::read_to_string(dir.join(unit.file)).expect("a unit's file exists");
        assert_eq!(
            unit.source, file,
            "{}: the unit holds something else",
            unit.file
        );
    }
    let mut listed: Vec<String> = taskgrad::kernels::SHADERS
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(units.iter().map(|u| u.file.to_string()))
        .collect();
    listed.sort();
    // Two layers of one unit may share its file (shift and flip).
    listed.dedup();
    assert_eq!(
        files, listed,
        "shaders/ and kernels::SHADERS with the units' files disagree"
    );
}

#[test]
fn every_method_solve_validates_with_its_prelude() {
    // Each file of shaders/mtl/ but the prelude is one registered method's
    // solve, compiled as prelude + file.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/mtl");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/mtl/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .filter(|n| n.ends_with(".wgsl") && n != "prelude.wgsl")
        .map(|n| format!("mtl/{n}"))
        .collect();
    files.sort();
    let mut listed = Vec::new();
    for m in taskgrad::mtl::REGISTRY {
        if let Some(shader) = m.shader {
            assert!(shader.source.starts_with(taskgrad::kernels::mtl::PRELUDE));
            validate(shader.file, shader.source);
            listed.push(shader.file.to_string());
        }
    }
    listed.sort();
    // Two layers of one unit may share its file (shift and flip).
    listed.dedup();
    assert_eq!(
        files, listed,
        "shaders/mtl/ and the registry's solves disagree"
    );
}

#[test]
fn every_coordinate_wise_combination_validates() {
    // Each file of shaders/combine/ is a kernel over the gradient rows (a
    // method's coordinate-wise combination, or the memory of past rows),
    // listed in mtl::COMBINE_SHADERS and compiled as it stands.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/combine");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/combine/ exists")
        .map(|e| {
            let name = e.expect("dir entry").file_name();
            format!("combine/{}", name.into_string().expect("utf-8 name"))
        })
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut listed = Vec::new();
    for shader in taskgrad::mtl::COMBINE_SHADERS {
        validate(shader.file, shader.source);
        let file = std::fs::read_to_string(dir.join(shader.file.trim_start_matches("combine/")))
            .expect("a listed file exists");
        assert_eq!(shader.source, file, "{}: holds something else", shader.file);
        listed.push(shader.file.to_string());
    }
    listed.sort();
    assert_eq!(
        files, listed,
        "shaders/combine/ and mtl::COMBINE_SHADERS disagree"
    );
}

#[test]
fn a_broken_shader_is_rejected() {
    // The check above must be able to fail: an out-of-scope identifier is caught.
    let bad = "@compute @workgroup_size(1) fn main() { let x = undefined_thing; }";
    assert!(naga::front::wgsl::parse_str(bad).is_err());
}

/// The module with every override at its default, validated, as a backend
/// writer receives it.
fn processed(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source).expect(name);
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .expect(name);
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        None,
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    (module.into_owned(), info.into_owned())
}

#[test]
fn every_portable_shader_compiles_to_metal_and_hlsl() {
    // The README promises Metal and DX12: each shader but the tensor-core
    // matmul (Vulkan's cooperative matrices, used only where the adapter
    // offers them) goes through naga's MSL and HLSL writers, as wgpu does.
    for (name, source) in all_sources() {
        if name.contains("coop") {
            continue;
        }
        let (module, info) = processed(&name, source);
        naga::back::msl::write_string(
            &module,
            &info,
            &naga::back::msl::Options::default(),
            &naga::back::msl::PipelineOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));
        let mut hlsl = String::new();
        naga::back::hlsl::Writer::new(
            &mut hlsl,
            &naga::back::hlsl::Options::default(),
            &naga::back::hlsl::PipelineOptions::default(),
        )
        .write(&module, &info, None)
        .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));
        assert!(
            hlsl.contains("numthreads"),
            "{name}: no compute entry in HLSL"
        );
    }
}
