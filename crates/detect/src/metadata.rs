//! Ultralytics' ONNX metadata (`metadata_props`): `names`, `imgsz`, `task`, `stride`, `end2end`, `batch`.

use nsod_types::ClassNames;

/// The task an Ultralytics model was exported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Detect,
    Obb,
    Other,
}

/// What nsod reads from the metadata; every field is optional because models from elsewhere may lack it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelMetadata {
    pub names: Option<ClassNames>,
    /// `(height, width)`.
    pub imgsz: Option<(u32, u32)>,
    pub task: Option<Task>,
    pub stride: Option<u32>,
    pub end2end: Option<bool>,
    /// `nsod_quantized`: a model `nsod quantize` made, its provenance (JSON: source and its sha256, method,
    /// calibration slices, seed, nsod version).
    pub quantized: Option<String>,
}

impl ModelMetadata {
    /// Parses the raw key/value pairs; a value that does not parse is an error naming the key.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut m = Self::default();
        if let Some(v) = get("names") {
            m.names = Some(parse_names(&v).map_err(|e| format!("metadata `names`: {e}"))?);
        }
        if let Some(v) = get("imgsz") {
            let nums = parse_int_list(&v).map_err(|e| format!("metadata `imgsz`: {e}"))?;
            m.imgsz = match nums.as_slice() {
                [s] => Some((*s, *s)),
                [h, w] => Some((*h, *w)),
                _ => {
                    return Err(format!(
                        "metadata `imgsz`: expected 1 or 2 sizes, got {v:?}"
                    ));
                }
            };
        }
        if let Some(v) = get("task") {
            m.task = Some(match v.trim().trim_matches(['\'', '"']) {
                "detect" => Task::Detect,
                "obb" => Task::Obb,
                _ => Task::Other,
            });
        }
        if let Some(v) = get("stride") {
            m.stride = v.trim().parse().ok();
        }
        m.quantized = get("nsod_quantized");
        if let Some(v) = get("end2end") {
            m.end2end = match v.trim() {
                "True" | "true" | "1" => Some(true),
                "False" | "false" | "0" => Some(false),
                _ => None,
            };
        }
        Ok(m)
    }
}

/// Parses Ultralytics' names, a Python dict literal `{0: 'plane', 1: 'ship'}` (a list `['a', 'b']` is accepted
/// too). Ids must be 0..n without gaps.
pub fn parse_names(text: &str) -> Result<ClassNames, String> {
    let t = text.trim();
    let (open, close) = match t.chars().next() {
        Some('{') => ('{', '}'),
        Some('[') => ('[', ']'),
        _ => return Err(format!("expected a dict or list, got {:?}", truncate(t))),
    };
    if !t.ends_with(close) {
        return Err(format!("unterminated {open}"));
    }
    let body = &t[1..t.len() - 1];
    let mut pairs: Vec<(u32, String)> = Vec::new();
    let mut chars = body.char_indices().peekable();
    let mut index = 0u32;
    loop {
        while chars
            .peek()
            .is_some_and(|(_, c)| c.is_whitespace() || *c == ',')
        {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let id = if open == '{' {
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c == ':' {
                    end = i;
                    break;
                }
                chars.next();
            }
            let key = body[start..end].trim();
            chars.next(); // ':'
            key.parse::<u32>()
                .map_err(|_| format!("key {key:?} is not a class id"))?
        } else {
            index
        };
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let quote = match chars.next() {
            Some((_, q @ ('\'' | '"'))) => q,
            _ => return Err(format!("the name of class {id} is not a quoted string")),
        };
        let mut name = String::new();
        let mut closed = false;
        while let Some((_, c)) = chars.next() {
            if c == '\\' {
                if let Some((_, e)) = chars.next() {
                    name.push(e);
                }
            } else if c == quote {
                closed = true;
                break;
            } else {
                name.push(c);
            }
        }
        if !closed {
            return Err(format!("the name of class {id} is not terminated"));
        }
        pairs.push((id, name));
        index += 1;
    }
    pairs.sort_by_key(|p| p.0);
    for (i, (id, _)) in pairs.iter().enumerate() {
        if *id as usize != i {
            return Err(format!(
                "class ids must be 0..{} without gaps, found {id} at position {i}",
                pairs.len()
            ));
        }
    }
    Ok(ClassNames::new(pairs.into_iter().map(|p| p.1)))
}

fn parse_int_list(text: &str) -> Result<Vec<u32>, String> {
    let t = text
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    t.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a size"))
        })
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads a names file for models without metadata: one name per line, or a YAML `names:` mapping
/// (`  0: plane`), or a dict literal as in the metadata.
pub fn parse_names_file(text: &str) -> Result<ClassNames, String> {
    let t = text.trim();
    if t.starts_with('{') || t.starts_with('[') {
        return parse_names(t);
    }
    let mut pairs = Vec::new();
    let mut plain = Vec::new();
    for line in t.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l == "names:" {
            continue;
        }
        if let Some((k, v)) = l.split_once(':')
            && let Ok(id) = k.trim().parse::<u32>()
        {
            pairs.push((id, v.trim().trim_matches(['\'', '"']).to_owned()));
            continue;
        }
        plain.push(l.to_owned());
    }
    if !pairs.is_empty() {
        pairs.sort_by_key(|p| p.0);
        if pairs.iter().enumerate().any(|(i, p)| p.0 as usize != i) {
            return Err("class ids must be 0..n without gaps".into());
        }
        return Ok(ClassNames::new(pairs.into_iter().map(|p| p.1)));
    }
    if plain.is_empty() {
        return Err("no class names found".into());
    }
    Ok(ClassNames::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `imgsz: [0]` once reached a rayon chunk size of zero; absurd sizes are refused with the reason.
    #[test]
    fn zero_or_absurd_input_sizes_are_refused() {
        let meta = |v: &str| {
            let v = v.to_owned();
            ModelMetadata::parse(move |k| (k == "imgsz").then(|| v.clone())).unwrap()
        };
        let check =
            |v: &str| crate::model::check_input_size(meta(v).imgsz.unwrap(), "metadata imgsz");
        assert_eq!(
            check("[0]").unwrap_err(),
            "the metadata imgsz gives an input of 0 x 0 px; each side must be between 32 and 8192 px"
        );
        assert_eq!(
            check("[4000000000, 640]").unwrap_err(),
            "the metadata imgsz gives an input of 4000000000 x 640 px; each side must be between 32 and 8192 px"
        );
        assert!(check("[1024]").is_ok());
        assert!(check("[640, 1280]").is_ok());
    }

    #[test]
    fn parses_ultralytics_metadata() {
        let kv = |k: &str| -> Option<String> {
            match k {
                "names" => Some("{0: 'plane', 1: 'ship', 2: \"storage tank\", 3: 'it\\'s'}".into()),
                "imgsz" => Some("[1024, 1024]".into()),
                "task" => Some("obb".into()),
                "stride" => Some("32".into()),
                "end2end" => Some("True".into()),
                _ => None,
            }
        };
        let m = ModelMetadata::parse(kv).unwrap();
        let names = m.names.unwrap();
        assert_eq!(names.as_slice(), ["plane", "ship", "storage tank", "it's"]);
        assert_eq!(
            (m.imgsz, m.task, m.stride, m.end2end),
            (Some((1024, 1024)), Some(Task::Obb), Some(32), Some(true))
        );
    }

    #[test]
    fn rejects_broken_names() {
        assert!(
            parse_names("{0: 'a', 2: 'b'}")
                .unwrap_err()
                .contains("without gaps")
        );
        assert!(
            parse_names("{0: plane}")
                .unwrap_err()
                .contains("not a quoted string")
        );
        assert!(
            parse_names("{0: 'plane")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            parse_names("plane")
                .unwrap_err()
                .contains("expected a dict or list")
        );
        assert!(
            ModelMetadata::parse(|k| (k == "imgsz").then(|| "[1, 2, 3]".into()))
                .unwrap_err()
                .contains("imgsz")
        );
    }

    #[test]
    fn names_files() {
        assert_eq!(
            parse_names_file("plane\nship\n").unwrap().as_slice(),
            ["plane", "ship"]
        );
        assert_eq!(
            parse_names_file("names:\n  1: ship\n  0: plane\n")
                .unwrap()
                .as_slice(),
            ["plane", "ship"]
        );
        assert_eq!(
            parse_names_file("['a', 'b']").unwrap().as_slice(),
            ["a", "b"]
        );
        assert!(parse_names_file("\n# nothing\n").is_err());
    }
}
