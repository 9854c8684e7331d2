//! The per-request settings of `nsod serve`: query parameters of `/v1/detect` and `parameters` of a KServe
//! request, read into pipeline [`Overrides`] and checked against the server's configuration. Which settings a
//! request may change, and under which names, is declared once, in the settings table
//! ([`nsod_pipeline::settings::SETTINGS`], each setting's `request`).

use nsod_pipeline::settings::request_parameters;
use nsod_pipeline::{Overrides, PipelineConfig};
use serde_json::Value;

/// Refuses a parameter that is neither a per-request setting nor one of `also`.
pub fn known_keys<'a>(keys: impl Iterator<Item = &'a String>, also: &[&str]) -> Result<(), String> {
    let settings = request_parameters();
    for k in keys {
        if !settings.contains(&k.as_str()) && !also.contains(&k.as_str()) {
            let mut allowed = settings.clone();
            allowed.extend(also.iter().filter(|a| **a == "name"));
            return Err(format!("unknown parameter {k:?} ({})", allowed.join(", ")));
        }
    }
    Ok(())
}

/// The per-request settings `get` finds (query parameters as strings, KServe parameters as JSON values), applied
/// over `config` and validated: an error names the parameter and the key.
pub fn overrides(
    config: &PipelineConfig,
    has_rules: bool,
    get: &dyn Fn(&str) -> Option<Value>,
) -> Result<Overrides, String> {
    let mut params = Vec::new();
    for k in request_parameters() {
        let text = match get(k) {
            None => continue,
            Some(Value::String(t)) => t,
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => return Err(format!("parameter {k}: {other} is not a single value")),
        };
        params.push((k.to_owned(), text));
    }
    let o = Overrides::new(config, params).map_err(|e| e.to_string())?;
    // Rules asked for where none were loaded would be silently skipped: refused instead.
    if !has_rules && o.apply(config).is_ok_and(|c| c.rules.enabled) && get("rules").is_some() {
        return Err(
            "parameter rules: this server runs without a rule base (started with --no-symbolic, or its model's \
             classes have none)"
                .into(),
        );
    }
    Ok(o)
}
