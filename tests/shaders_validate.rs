//! Every .wgsl file in shaders/ is parsed and validated by naga, with no GPU.
//! The file list is read from the directory, so a new shader cannot be missed,
//! and it must match `kernels::SHADERS` (what the crate actually compiles).

use std::path::Path;

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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for name in &files {
        let source = std::fs::read_to_string(dir.join(name)).expect("readable shader");
        validate(name, &source);
    }
    let mut listed: Vec<String> = taskgrad::kernels::SHADERS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    listed.sort();
    assert_eq!(files, listed, "shaders/ and kernels::SHADERS disagree");
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
    assert_eq!(
        files, listed,
        "shaders/mtl/ and the registry's solves disagree"
    );
}

#[test]
fn a_broken_shader_is_rejected() {
    // The check above must be able to fail: an out-of-scope identifier is caught.
    let bad = "@compute @workgroup_size(1) fn main() { let x = undefined_thing; }";
    assert!(naga::front::wgsl::parse_str(bad).is_err());
}
