//! TASKGRAD_BACKEND is read by `Gpu::new`; an unknown name is a typed error.
//! Alone in its own test binary because it sets a process-wide variable.

#[test]
fn unknown_backend_in_environment_is_a_typed_error() {
    std::env::set_var("TASKGRAD_BACKEND", "cuda");
    let err = match taskgrad::Gpu::new() {
        Err(e) => e,
        Ok(g) => panic!("TASKGRAD_BACKEND=cuda should fail, got {}", g.report),
    };
    assert!(
        matches!(err, taskgrad::Error::UnknownBackend { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vulkan, gl, metal, dx12"), "{err}");
}
