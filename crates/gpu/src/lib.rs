//! NVIDIA GPUs seen through NVML (`libnvidia-ml.so`, part of the NVIDIA driver), loaded at run time.
//!
//! The library is optional: on machines without the NVIDIA driver [`Gpus::open`] returns
//! [`GpuError::NoDriver`], which `nsod doctor` prints and telemetry treats as "no GPU metrics". The telemetry crate
//! reads [`Gpus::readings`] on each scrape.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// NVML could not be loaded: no NVIDIA driver on this machine.
    #[error("NVML not available ({0}): no NVIDIA driver on this machine")]
    NoDriver(String),
    /// NVML loaded but a call failed.
    #[error("NVML error: {0}")]
    Nvml(String),
}

impl From<NvmlError> for GpuError {
    fn from(e: NvmlError) -> Self {
        match e {
            NvmlError::LibloadingError(_)
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::DriverNotLoaded
            | NvmlError::LibraryNotFound => Self::NoDriver(e.to_string()),
            other => Self::Nvml(other.to_string()),
        }
    }
}

/// One GPU's identity and current state. Values NVML cannot give for this device are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReading {
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub temperature_celsius: Option<u32>,
    /// GPU busy time over NVML's last sample period, as a ratio in `[0, 1]`.
    pub utilization_ratio: Option<f64>,
    /// Power draw in watts.
    pub power_watts: Option<f64>,
}

/// An open NVML handle.
#[derive(Debug)]
pub struct Gpus {
    nvml: Nvml,
}

impl Gpus {
    /// Loads NVML.
    pub fn open() -> Result<Self, GpuError> {
        Ok(Self {
            nvml: Nvml::init()?,
        })
    }

    /// The driver version NVML reports.
    pub fn driver_version(&self) -> Result<String, GpuError> {
        Ok(self.nvml.sys_driver_version()?)
    }

    /// A reading of every GPU.
    pub fn readings(&self) -> Result<Vec<GpuReading>, GpuError> {
        let count = self.nvml.device_count()?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let dev = self.nvml.device_by_index(index)?;
            let mem = dev.memory_info().ok();
            out.push(GpuReading {
                index,
                name: dev.name().unwrap_or_else(|_| "unknown".into()),
                uuid: dev.uuid().ok(),
                memory_total_bytes: mem.as_ref().map(|m| m.total),
                memory_used_bytes: mem.as_ref().map(|m| m.used),
                temperature_celsius: dev.temperature(TemperatureSensor::Gpu).ok(),
                utilization_ratio: dev
                    .utilization_rates()
                    .ok()
                    .map(|u| f64::from(u.gpu) / 100.0),
                power_watts: dev.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_errors_mean_no_driver() {
        for e in [
            NvmlError::DriverNotLoaded,
            NvmlError::LibraryNotFound,
            NvmlError::FailedToLoadSymbol("nvmlInit_v2".into()),
        ] {
            let g = GpuError::from(e);
            assert!(matches!(g, GpuError::NoDriver(_)), "{g:?}");
            assert!(
                g.to_string().ends_with("no NVIDIA driver on this machine"),
                "{g}"
            );
        }
        assert!(matches!(
            GpuError::from(NvmlError::InvalidArg),
            GpuError::Nvml(_)
        ));
    }

    #[test]
    fn open_reads_every_gpu_or_says_why_not() {
        match Gpus::open() {
            Ok(gpus) => {
                for r in gpus.readings().unwrap() {
                    assert!(!r.name.is_empty());
                    assert!(r.utilization_ratio.is_none_or(|u| (0.0..=1.0).contains(&u)));
                    if let (Some(used), Some(total)) = (r.memory_used_bytes, r.memory_total_bytes) {
                        assert!(used <= total);
                    }
                }
            }
            Err(e) => assert!(matches!(e, GpuError::NoDriver(_)), "{e}"),
        }
    }
}
