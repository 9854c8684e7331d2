//! The per-request settings of `nsod serve`: query parameters of `/v1/detect` and `parameters` of a KServe
//! request, read into pipeline [`Overrides`] and checked against the server's configuration.

use nsod_pipeline::{Overrides, PipelineConfig, error_chain};
use serde_json::Value;

/// The per-request settings, as query parameters of /v1/detect and `parameters` of a KServe request.
pub const SETTINGS: &[&str] = &[
    "conf",
    "iou",
    "slice",
    "overlap",
    "merge",
    "full_pass",
    "rules",
];

/// Refuses a parameter that is neither a setting nor one of `also`.
pub fn known_keys<'a>(keys: impl Iterator<Item = &'a String>, also: &[&str]) -> Result<(), String> {
    for k in keys {
        if !SETTINGS.contains(&k.as_str()) && !also.contains(&k.as_str()) {
            let mut allowed: Vec<&str> = SETTINGS.to_vec();
            allowed.extend(also.iter().filter(|a| **a == "name"));
            return Err(format!("unknown parameter {k:?} ({})", allowed.join(", ")));
        }
    }
    Ok(())
}

/// Settings from query or KServe parameters (see [`SETTINGS`]).
pub fn overrides(
    config: &PipelineConfig,
    get: &dyn Fn(&str) -> Option<Value>,
) -> Result<Overrides, String> {
    let num = |k: &str| -> Result<Option<f32>, String> {
        match get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64().map(|v| v as f32)),
            Some(Value::String(t)) => t
                .parse::<f32>()
                .map(Some)
                .map_err(|_| format!("parameter {k}: {t:?} is not a number")),
            Some(v) => Err(format!("parameter {k}: {v} is not a number")),
        }
    };
    let flag = |k: &str| -> Result<Option<bool>, String> {
        match get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(t)) if t == "true" || t == "1" => Ok(Some(true)),
            Some(Value::String(t)) if t == "false" || t == "0" => Ok(Some(false)),
            Some(v) => Err(format!("parameter {k}: {v} is not true or false")),
        }
    };
    let text = |k: &str| -> Option<String> {
        get(k).map(|v| match v {
            Value::String(t) => t,
            other => other.to_string(),
        })
    };
    let o = Overrides {
        conf: num("conf")?,
        iou: num("iou")?,
        overlap: num("overlap")?,
        slice: text("slice")
            .map(|t| {
                t.parse()
                    .map_err(|m: String| format!("parameter slice: {m}"))
            })
            .transpose()?,
        merge: text("merge")
            .map(|t| {
                t.parse()
                    .map_err(|m: String| format!("parameter merge: {m}"))
            })
            .transpose()?,
        full_pass: flag("full_pass")?,
        rules: flag("rules")?,
    };
    o.validate(config)
        .map_err(|e| format!("parameter {}", error_chain(&e)))?;
    Ok(o)
}
