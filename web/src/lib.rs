//! taskgrad in the browser: the same WGSL kernels, tape, trainer and methods
//! through the browser's WebGPU, behind a small JavaScript API for the Iris
//! demo page (`web/www/`).
//!
//! Build and serve (see the README):
//!
//! ```text
//! scripts/build_web.sh        # → web/dist/ (static files)
//! scripts/serve_web.sh        # http://127.0.0.1:8000
//! ```
//!
//! From JavaScript:
//!
//! ```js
//! import init, { Demo } from "./pkg/taskgrad_web.js";
//! await init();
//! const demo = await Demo.start();          // rejects when there is no WebGPU adapter
//! demo.adapter();                          // "WebGPU adapter (BrowserWebGpu, Cpu)": browsers hide the name
//! const out = JSON.parse(await demo.train(JSON.stringify({ method: "pcgrad", epochs: 60 }),
//!                                         (p) => draw(JSON.parse(p))));
//! ```
//!
//! Nothing here blocks: every readback is awaited ([`taskgrad::train::fit_async`]),
//! so the page redraws between epochs.

pub mod demo;
/// The reference workloads of WORKLOADS.md: the very file the `workloads`
/// example and the benches use.
#[path = "../../examples/common/workloads.rs"]
pub mod workloads;

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use taskgrad::Gpu;

/// A GPU device in the page, ready to train.
#[wasm_bindgen]
pub struct Demo {
    gpu: Rc<Gpu>,
}

fn js_err(e: taskgrad::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

#[wasm_bindgen]
impl Demo {
    /// Open the browser's WebGPU adapter; rejects with taskgrad's message
    /// (which names what was tried) when there is none.
    pub async fn start() -> Result<Demo, JsValue> {
        let gpu = Gpu::new_async().await.map_err(js_err)?;
        Ok(Demo { gpu: Rc::new(gpu) })
    }

    /// The adapter, as `taskgrad info` names it.
    pub fn adapter(&self) -> String {
        self.gpu.report.to_string()
    }

    /// Whether the adapter runs f16 shaders (the `half` option).
    pub fn has_f16(&self) -> bool {
        self.gpu.has_f16()
    }

    /// The methods, as JSON `[[name, summary], ...]`.
    pub fn methods() -> String {
        serde_json::to_string(&demo::methods()).unwrap_or_default()
    }

    /// Train on Iris or MultiMNIST with `options` (JSON of [`demo::Options`]); calls
    /// `on_progress` with each epoch's JSON ([`demo::Progress`]); resolves to
    /// the outcome's JSON ([`demo::Outcome`]).
    pub fn train(&self, options: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let gpu = self.gpu.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let opts = demo::Options::from_json(&options).map_err(js_err)?;
            let mut tell = |p: &demo::Progress| {
                if let Ok(text) = serde_json::to_string(p) {
                    let _ = on_progress.call1(&JsValue::NULL, &JsValue::from_str(&text));
                }
            };
            let out = demo::train(&gpu, &opts, &mut tell).await.map_err(js_err)?;
            let text = serde_json::to_string(&out).map_err(|e| JsError::new(&e.to_string()))?;
            Ok(JsValue::from_str(&text))
        })
    }

    /// W-iris (WORKLOADS.md) steps per second over `steps` measured steps.
    pub fn bench_w_iris(&self, steps: u32) -> js_sys::Promise {
        let gpu = self.gpu.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let sps = demo::w_iris_steps_per_s(&gpu, steps.max(1) as usize)
                .await
                .map_err(js_err)?;
            Ok(JsValue::from_f64(sps))
        })
    }
}
