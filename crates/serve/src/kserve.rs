//! The Open Inference Protocol (KServe v2 REST): the inference request in JSON or with the binary tensor data
//! extension (`Inference-Header-Content-Length`), the image as a BYTES input, detections as output tensors.

use base64::Engine;
use nsod_pipeline::ImageOutcome;
use serde_json::{Map, Value, json};

/// The model's input: one encoded image file.
pub const INPUT: &str = "image";

/// The outputs, their datatypes and per-detection shapes.
pub const OUTPUTS: &[(&str, &str, &[i64])] = &[
    ("boxes", "FP32", &[-1, 4]),
    ("obb", "FP32", &[-1, 5]),
    ("scores", "FP32", &[-1]),
    ("raw_scores", "FP32", &[-1]),
    ("class_ids", "INT32", &[-1]),
    ("class_names", "BYTES", &[-1]),
];

/// A parsed inference request.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    pub image: Vec<u8>,
    pub parameters: Map<String, Value>,
    /// The outputs asked for, each with whether it is wanted as binary data; all outputs when empty.
    pub outputs: Vec<(String, bool)>,
    /// `binary_data_output`: every output as binary data.
    pub binary_all: bool,
}

fn bad(m: impl Into<String>) -> String {
    m.into()
}

/// Parses a request body: JSON, or JSON followed by binary tensor data when `header_len` is given.
pub fn parse(body: &[u8], header_len: Option<&str>) -> Result<InferRequest, String> {
    let (json_part, binary) = match header_len {
        None => (body, &[][..]),
        Some(h) => {
            let n: usize = h.trim().parse().map_err(|_| {
                bad(format!(
                    "Inference-Header-Content-Length {h:?} is not a number"
                ))
            })?;
            if n > body.len() {
                return Err(bad(format!(
                    "Inference-Header-Content-Length {n} is larger than the body ({} bytes)",
                    body.len()
                )));
            }
            body.split_at(n)
        }
    };
    let v: Value =
        serde_json::from_slice(json_part).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("the request is not a JSON object"))?;
    let id = match obj.get("id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("id must be a string")),
    };
    let parameters = match obj.get("parameters") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("parameters must be an object")),
    };
    let strict_bool = |what: &str, v: Option<&Value>| -> Result<Option<bool>, String> {
        match v {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(bad(format!("{what}: {other} is not true or false"))),
        }
    };
    let binary_all =
        strict_bool("binary_data_output", parameters.get("binary_data_output"))?.unwrap_or(false);
    let inputs = obj
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("inputs: expected a list of tensors"))?;
    let [input] = &inputs[..] else {
        return Err(bad(format!(
            "inputs: expected one tensor ({INPUT:?}), found {}",
            inputs.len()
        )));
    };
    let name = input.get("name").and_then(Value::as_str).unwrap_or("");
    if name != INPUT {
        return Err(bad(format!(
            "input {name:?}: this model's input is {INPUT:?}"
        )));
    }
    let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
    if datatype != "BYTES" {
        return Err(bad(format!(
            "input {INPUT:?}: datatype {datatype:?}, expected \"BYTES\" (the encoded image file)"
        )));
    }
    let shape: Vec<i64> = input
        .get("shape")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_i64).collect())
        .ok_or_else(|| bad(format!("input {INPUT:?}: shape missing")))?;
    // Every dimension 1 (no product: a shape of huge dimensions would overflow it; found by the kserve fuzz target).
    if shape.is_empty() || shape.iter().any(|&d| d != 1) {
        return Err(bad(format!(
            "input {INPUT:?}: shape {shape:?}, expected [1] (one image per request)"
        )));
    }
    let size = input
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| bad("binary_data_size must be a number"))
        })
        .transpose()?;
    let image = match size {
        Some(n) => {
            let n = n as usize;
            if n != binary.len() {
                return Err(bad(format!(
                    "input {INPUT:?}: binary_data_size {n}, but {} bytes follow the JSON header",
                    binary.len()
                )));
            }
            // One BYTES element: a 4-byte little-endian length, then the bytes.
            let (len, rest) = binary.split_at_checked(4).ok_or_else(|| {
                bad(format!(
                    "input {INPUT:?}: binary data shorter than its length prefix"
                ))
            })?;
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if len != rest.len() {
                return Err(bad(format!(
                    "input {INPUT:?}: BYTES element of {len} bytes, but {} bytes follow",
                    rest.len()
                )));
            }
            rest.to_vec()
        }
        None => {
            let data = input
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("input {INPUT:?}: no data and no binary_data_size")))?;
            let [Value::String(s)] = &data[..] else {
                return Err(bad(format!(
                    "input {INPUT:?}: data must be one base64 string (the encoded image file)"
                )));
            };
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| bad(format!("input {INPUT:?}: data is not base64: {e}")))?
        }
    };
    let mut outputs = Vec::new();
    if let Some(list) = obj.get("outputs") {
        let list = list
            .as_array()
            .ok_or_else(|| bad("outputs must be a list"))?;
        for o in list {
            let n = o.get("name").and_then(Value::as_str).unwrap_or("");
            if !OUTPUTS.iter().any(|(k, _, _)| *k == n) {
                return Err(bad(format!(
                    "output {n:?} does not exist (outputs: {})",
                    OUTPUTS.iter().map(|o| o.0).collect::<Vec<_>>().join(", ")
                )));
            }
            let binary = strict_bool(
                &format!("output {n:?}: binary_data"),
                o.get("parameters").and_then(|p| p.get("binary_data")),
            )?
            .unwrap_or(binary_all);
            outputs.push((n.to_owned(), binary));
        }
    }
    Ok(InferRequest {
        id,
        image,
        parameters,
        outputs,
        binary_all,
    })
}

/// One output tensor: its datatype, shape and data (JSON values and the binary encoding).
fn tensor(name: &str, o: &ImageOutcome) -> (Vec<i64>, Vec<Value>, Vec<u8>) {
    let d = &o.detections;
    let n = d.len() as i64;
    let raw: Vec<f32> = raw_scores(o);
    let f32s = |v: Vec<f32>, cols: i64| -> (Vec<i64>, Vec<Value>, Vec<u8>) {
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let shape = if cols == 0 { vec![n] } else { vec![n, cols] };
        (shape, v.into_iter().map(|x| json!(x)).collect(), bytes)
    };
    match name {
        "boxes" => f32s(
            d.iter()
                .flat_map(|x| [x.bbox.x1, x.bbox.y1, x.bbox.x2, x.bbox.y2])
                .collect(),
            4,
        ),
        "obb" => f32s(
            d.iter()
                .flat_map(|x| {
                    let o = x.as_oriented();
                    [o.cx, o.cy, o.w, o.h, o.angle]
                })
                .collect(),
            5,
        ),
        "scores" => f32s(d.iter().map(|x| x.score).collect(), 0),
        "raw_scores" => f32s(raw, 0),
        "class_ids" => {
            let v: Vec<i32> = d
                .iter()
                .map(|x| x.class_id.min(i32::MAX as u32) as i32)
                .collect();
            (
                vec![n],
                v.iter().map(|x| json!(x)).collect(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        }
        _ => {
            let mut bytes = Vec::new();
            for x in d {
                bytes.extend((x.class_name.len() as u32).to_le_bytes());
                bytes.extend(x.class_name.as_bytes());
            }
            (
                vec![n],
                d.iter().map(|x| json!(x.class_name)).collect(),
                bytes,
            )
        }
    }
}

/// The detector's score of each final detection (before the rules), in the final order.
pub fn raw_scores(o: &ImageOutcome) -> Vec<f32> {
    match &o.rules {
        None => o.detections.iter().map(|d| d.score).collect(),
        Some(r) => r.refined_order().iter().map(|&i| r.raw[i].score).collect(),
    }
}

/// The response: JSON, and the binary blobs of the outputs asked for as binary (with the length of the JSON part
/// for `Inference-Header-Content-Length`).
pub fn response(
    model: &str,
    req: &InferRequest,
    o: &ImageOutcome,
    parameters: Value,
) -> (Vec<u8>, Option<usize>) {
    let wanted: Vec<(String, bool)> = if req.outputs.is_empty() {
        OUTPUTS
            .iter()
            .map(|(n, _, _)| ((*n).to_owned(), req.binary_all))
            .collect()
    } else {
        req.outputs.clone()
    };
    let mut outputs = Vec::new();
    let mut blobs = Vec::new();
    for (name, binary) in &wanted {
        let datatype = OUTPUTS
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|o| o.1)
            .unwrap_or("FP32");
        let (shape, data, bytes) = tensor(name, o);
        let mut t = json!({"name": name, "datatype": datatype, "shape": shape});
        if *binary {
            t["parameters"] = json!({"binary_data_size": bytes.len()});
            blobs.extend(bytes);
        } else {
            t["data"] = Value::Array(data);
        }
        outputs.push(t);
    }
    let mut head = json!({
        "model_name": model,
        "model_version": "1",
        "outputs": outputs,
        "parameters": parameters,
    });
    if let Some(id) = &req.id {
        head["id"] = json!(id);
    }
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    if blobs.is_empty() && !wanted.iter().any(|w| w.1) {
        return (body, None);
    }
    let n = body.len();
    body.extend(blobs);
    (body, Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_requests_parse_and_bad_ones_say_why() {
        let png = b"\x89PNG fake".to_vec();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let body = json!({"id": "r1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}],
            "parameters": {"conf": 0.3}})
        .to_string();
        let r = parse(body.as_bytes(), None).unwrap();
        assert_eq!((r.image, r.id.as_deref()), (png.clone(), Some("r1")));
        assert_eq!(r.parameters["conf"], 0.3);
        // The binary extension: JSON header, then a length-prefixed BYTES element.
        let mut blob = (png.len() as u32).to_le_bytes().to_vec();
        blob.extend(&png);
        let head = json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
            "parameters": {"binary_data_size": blob.len()}}],
            "outputs": [{"name": "scores", "parameters": {"binary_data": true}}]})
        .to_string();
        let mut body = head.clone().into_bytes();
        body.extend(&blob);
        let r = parse(&body, Some(&head.len().to_string())).unwrap();
        assert_eq!(r.image, png);
        assert_eq!(r.outputs, vec![("scores".to_owned(), true)]);
        for (body, want) in [
            ("{", "malformed JSON"),
            (
                r#"{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1]}]}"#,
                "datatype \"FP32\", expected \"BYTES\"",
            ),
            (
                r#"{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]}"#,
                "shape [2], expected [1]",
            ),
            // The kserve fuzz target's crash (fuzz/regressions/kserve): dimensions whose product overflows i64.
            (
                r#"{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [4444444444, 3333333333, 0, 1111111111], "data": ["a"]}]}"#,
                "shape [4444444444, 3333333333, 0, 1111111111], expected [1]",
            ),
            (
                r#"{"inputs": [{"name": "pixels", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}"#,
                "input \"pixels\": this model's input is \"image\"",
            ),
            (
                r#"{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}"#,
                "data is not base64",
            ),
            (
                r#"{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}], "outputs": [{"name": "masks"}]}"#,
                "output \"masks\" does not exist",
            ),
        ] {
            let e = parse(body.as_bytes(), None).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        assert!(parse(&body_with_bad_prefix(), Some("2")).is_err());
    }

    fn body_with_bad_prefix() -> Vec<u8> {
        b"{}xyz".to_vec()
    }
}
