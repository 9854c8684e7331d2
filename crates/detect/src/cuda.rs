//! Why the CUDA execution provider cannot run, in words a user can act on: ONNX Runtime's message names a library
//! the dynamic loader could not find, or CUDA's own error code says the driver or the GPU is missing.

/// The CUDA libraries the CUDA build of ONNX Runtime 1.31 loads, by the name they start with, and where they
/// come from.
const LIBRARIES: &[(&str, &str)] = &[
    (
        "libcudnn",
        "cuDNN 9 for CUDA 13 is missing (pip install nvidia-cudnn-cu13, or NVIDIA's cudnn9-cuda-13 package)",
    ),
    (
        "libcublas",
        "the CUDA 13 libraries are missing (cuBLAS; pip install nvidia-cublas, or the CUDA 13 toolkit)",
    ),
    (
        "libcudart",
        "the CUDA 13 runtime is missing (pip install nvidia-cuda-runtime, or the CUDA 13 toolkit)",
    ),
    (
        "libcufft",
        "the CUDA 13 libraries are missing (cuFFT; pip install nvidia-cufft, or the CUDA 13 toolkit)",
    ),
    (
        "libcurand",
        "the CUDA 13 libraries are missing (cuRAND; pip install nvidia-curand, or the CUDA 13 toolkit)",
    ),
    (
        "libnvrtc",
        "the CUDA 13 libraries are missing (NVRTC; pip install nvidia-cuda-nvrtc, or the CUDA 13 toolkit)",
    ),
    (
        "libcuda.so",
        "no NVIDIA driver is installed (libcuda.so.1 comes with the driver)",
    ),
    (
        "libonnxruntime_providers_cuda",
        "this ONNX Runtime has no usable CUDA provider library beside it (wrong ONNX Runtime build: use onnxruntime-gpu 1.31.1, scripts/setup.sh --gpu)",
    ),
    (
        "libonnxruntime_providers_shared",
        "this ONNX Runtime has no provider bridge library beside it (wrong ONNX Runtime build: use onnxruntime-gpu 1.31.1, scripts/setup.sh --gpu)",
    ),
];

/// The shared library a loader message says it could not open (`libcublasLt.so.13: cannot open shared object
/// file`).
fn missing_library(message: &str) -> Option<&str> {
    let at = message.find(": cannot open shared object file")?;
    let head = &message[..at];
    let start = head
        .rfind(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '(')
        .map_or(0, |i| i + 1);
    let lib = &head[start..];
    lib.contains(".so").then_some(lib)
}

/// What an ONNX Runtime error says is wrong with CUDA on this machine, or `None` when it is not about CUDA.
pub fn diagnose(message: &str) -> Option<String> {
    let message = message.trim();
    if let Some(lib) = missing_library(message) {
        let name = lib.rsplit('/').next().unwrap_or(lib);
        let why = LIBRARIES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map_or(
                "a library the CUDA provider needs is missing",
                |(_, why)| why,
            );
        return Some(format!(
            "{why}: {name} cannot be loaded (ONNX Runtime: {message})"
        ));
    }
    let lower = message.to_ascii_lowercase();
    let driver = [
        "cuda driver version is insufficient",
        "no cuda-capable device",
        "cudaerrornodevice",
        "cudaerrorinsufficientdriver",
        "forward compatibility was attempted",
    ];
    if driver.iter().any(|p| lower.contains(p)) {
        return Some(format!(
            "the NVIDIA driver or GPU cannot be used: no GPU is visible, or the driver is older than CUDA 13 needs (580 or newer) (ONNX Runtime: {message})"
        ));
    }
    (lower.contains("cuda") || lower.contains("cudnn"))
        .then(|| format!("the CUDA execution provider failed: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as ONNX Runtime 1.31.1 (onnxruntime-gpu) prints them on a machine without the CUDA libraries or
    /// the driver.
    #[test]
    fn names_the_missing_piece() {
        // Seen on this project's CPU machine with onnxruntime-gpu 1.31.1's library and `--device cuda`.
        let m = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library /var/tmp/ortgpu/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory";
        assert_eq!(
            diagnose(&format!("{m}\n")).unwrap(),
            format!(
                "the CUDA 13 libraries are missing (cuBLAS; pip install nvidia-cublas, or the CUDA 13 toolkit): libcublasLt.so.13 cannot be loaded (ONNX Runtime: {m})"
            )
        );
        // The same with the CUDA libraries present but not cuDNN; CUDA's own error strings (cudaGetErrorString)
        // for the driver cases.
        let m = "Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: No such file or directory";
        assert!(diagnose(m).unwrap().starts_with(
            "cuDNN 9 for CUDA 13 is missing (pip install nvidia-cudnn-cu13, or NVIDIA's cudnn9-cuda-13 package): libcudnn.so.9 cannot be loaded"
        ));
        let m = "Failed to load library /opt/ort/libonnxruntime_providers_cuda.so with error: /opt/ort/libonnxruntime_providers_cuda.so: cannot open shared object file: No such file or directory";
        assert!(
            diagnose(m)
                .unwrap()
                .starts_with("this ONNX Runtime has no usable CUDA provider library beside it (wrong ONNX Runtime build")
        );
        let m = "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ; GPU=0 ; hostname=x";
        assert!(
            diagnose(m)
                .unwrap()
                .starts_with("the NVIDIA driver or GPU cannot be used")
        );
        let m = "CUDA failure 100: no CUDA-capable device is detected ; GPU=-1";
        assert!(
            diagnose(m)
                .unwrap()
                .starts_with("the NVIDIA driver or GPU cannot be used")
        );
        assert_eq!(
            diagnose("Load model from m.onnx failed: Protobuf parsing failed."),
            None
        );
    }
}
