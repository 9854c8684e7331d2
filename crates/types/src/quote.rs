//! One quoting function per text format nsod generates. Class names come from model metadata, label files and
//! predictions, so they are untrusted: every generated text goes through these, never through `format!("'{x}'")`.

/// A quoted Prolog atom (ISO escapes; readable by scryer and SWI-Prolog): `'it\'s'`. Non-ASCII characters stay
/// as they are (UTF-8 source), control characters become escapes, so the atom always stays on one line.
pub fn prolog_atom(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        match c {
            '\'' => q.push_str("\\'"),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                q.push_str(&format!("\\x{:x}\\", c as u32));
            }
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// A Prolog atom, quoted only when it has to be (`ship`, but `'large vehicle'`, `'Ship'`, `'[]'` stays `[]`).
pub fn prolog_atom_min(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain || s == "[]" || s == "!" {
        s.to_owned()
    } else {
        prolog_atom(s)
    }
}

/// Reads back an atom written by [`prolog_atom`] (or a plain unquoted atom). `None` for anything else.
pub fn parse_prolog_atom(s: &str) -> Option<String> {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) else {
        let plain = s.chars().next().is_some_and(|c| c.is_lowercase())
            && s.chars().all(|c| c.is_alphanumeric() || c == '_');
        return plain.then(|| s.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\'' => out.push('\''),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'x' => {
                    let mut hex = String::new();
                    for h in chars.by_ref() {
                        if h == '\\' {
                            break;
                        }
                        hex.push(h);
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            '\'' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A double-quoted DOT (Graphviz) string: `"`, `\` and line breaks escaped.
pub fn dot_string(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => q.push(' '),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Text for XML (GraphML, SVG) element content and attribute values: markup characters as entities, line breaks
/// as character references, and the control characters XML 1.0 forbids replaced by U+FFFD.
pub fn xml(s: &str) -> String {
    let mut q = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => q.push_str("&amp;"),
            '<' => q.push_str("&lt;"),
            '>' => q.push_str("&gt;"),
            '"' => q.push_str("&quot;"),
            '\'' => q.push_str("&apos;"),
            '\n' => q.push_str("&#10;"),
            '\r' => q.push_str("&#13;"),
            '\t' => q.push_str("&#9;"),
            c if c.is_control() => q.push('\u{FFFD}'),
            c => q.push(c),
        }
    }
    q
}

/// A safe file name made from an untrusted name (a class name): ASCII letters, digits, `_`, `-` and `.` kept, every
/// other character `_`, no leading dot, at most 100 bytes, never empty. Distinct names can map to the same file
/// name; callers that need distinct files add a suffix ([`unique_file_names`]).
pub fn file_name_component(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dots = s.chars().take_while(|c| *c == '.').count();
    s.replace_range(..dots, &"_".repeat(dots));
    s.truncate(100);
    if s.is_empty() { "_".into() } else { s }
}

/// [`file_name_component`] of each name, made unique by `-2`, `-3`, ... in order.
pub fn unique_file_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .map(|n| {
            let base = file_name_component(n);
            let mut name = base.clone();
            let mut k = 2;
            while !seen.insert(name.to_lowercase()) {
                name = format!("{base}-{k}");
                k += 1;
            }
            name
        })
        .collect()
}

/// Why a name read from a file cannot be used as a path inside its folder ([`relative_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the name {name:?} {reason}")]
pub struct UnsafeName {
    pub name: String,
    pub reason: &'static str,
}

/// The longest name accepted as a relative path (bytes), well under Linux's `PATH_MAX` once joined to a folder.
pub const MAX_NAME_BYTES: usize = 1024;

/// A name read from a file (an image name in a plan, a shard's records, predictions for `nsod symbolic`/`kg`/
/// `report`) as a relative path that stays inside the folder it is joined to: refused when empty, absolute, with a
/// `..` component, a NUL or another control character, or longer than [`MAX_NAME_BYTES`]. `.` components are
/// harmless and allowed (`a/./b` is `a/b`). Every front end that turns such a name into a path goes through this
/// function, so there is one definition of "inside".
pub fn relative_name(name: &str) -> Result<&std::path::Path, UnsafeName> {
    use std::path::{Component, Path};
    let refuse = |reason| {
        Err(UnsafeName {
            name: name.chars().take(200).collect(),
            reason,
        })
    };
    if name.is_empty() || name.chars().all(|c| c == '.' || c == '/') {
        return refuse("names no file");
    }
    if name.len() > MAX_NAME_BYTES {
        return refuse("is too long (over 1024 bytes)");
    }
    if name.chars().any(char::is_control) {
        return refuse("holds a control character");
    }
    let path = Path::new(name);
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return refuse("is an absolute path (names are relative to their folder)");
            }
            Component::ParentDir => return refuse("climbs out of its folder (a .. component)"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: [&str; 6] = [
        "plain",
        "it's",
        "back\\slash",
        "two\nlines",
        "café 飛機",
        "x'), shell('rm -rf /'). %",
    ];

    #[test]
    fn prolog_atoms_round_trip_and_stay_on_one_line() {
        for s in NASTY {
            let q = prolog_atom(s);
            assert!(!q.contains('\n'), "{q}");
            assert_eq!(parse_prolog_atom(&q).as_deref(), Some(s), "{q}");
        }
        assert_eq!(prolog_atom("it's"), "'it\\'s'");
        assert_eq!(prolog_atom("a\u{1}b"), "'a\\x1\\b'");
        assert_eq!(parse_prolog_atom("'a\\x1\\b'").as_deref(), Some("a\u{1}b"));
        assert_eq!(parse_prolog_atom("ship").as_deref(), Some("ship"));
        assert_eq!(parse_prolog_atom("'unterminated"), None);
        assert_eq!(prolog_atom_min("ship"), "ship");
        assert_eq!(prolog_atom_min("large vehicle"), "'large vehicle'");
        assert_eq!(prolog_atom_min("Ship"), "'Ship'");
    }

    #[test]
    fn file_names_stay_in_their_folder() {
        assert_eq!(file_name_component("../x"), "___x");
        assert_eq!(file_name_component(".hidden"), "_hidden");
        assert_eq!(file_name_component("/abs/x"), "_abs_x");
        assert_eq!(file_name_component("large vehicle"), "large_vehicle");
        assert_eq!(file_name_component(""), "_");
        assert_eq!(file_name_component("飛機"), "__");
        assert_eq!(
            unique_file_names(["a b", "a_b", "A_B", "c"]),
            vec!["a_b", "a_b-2", "A_B-3", "c"]
        );
    }

    #[test]
    fn dot_and_xml_escape_what_would_break_out() {
        assert_eq!(dot_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(
            xml("<a href=\"x\">'&'</a>\n"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;&#10;"
        );
        assert_eq!(xml("a\u{0}b"), "a\u{FFFD}b");
        assert_eq!(xml("飛機"), "飛機");
    }

    #[test]
    fn names_from_files_stay_inside_their_folder() {
        for ok in [
            "a.png",
            "sub/dir/a.png",
            "./a.png",
            "a/./b.png",
            "..a.png",
            "a..png",
            "x/..y/z",
        ] {
            assert_eq!(relative_name(ok).map(|p| p.to_str()), Ok(Some(ok)), "{ok}");
        }
        let reason = |n: &str| relative_name(n).unwrap_err().reason;
        assert_eq!(
            reason("../../x.png"),
            "climbs out of its folder (a .. component)"
        );
        assert_eq!(
            reason("a/../../x.png"),
            "climbs out of its folder (a .. component)"
        );
        assert_eq!(reason("a/.."), "climbs out of its folder (a .. component)");
        assert_eq!(
            reason("/abs/x.png"),
            "is an absolute path (names are relative to their folder)"
        );
        assert_eq!(
            reason("//x"),
            "is an absolute path (names are relative to their folder)"
        );
        assert_eq!(reason(""), "names no file");
        assert_eq!(reason("."), "names no file");
        assert_eq!(reason("./"), "names no file");
        assert_eq!(reason("a\0b"), "holds a control character");
        assert_eq!(reason("a\nb"), "holds a control character");
        assert_eq!(reason(&"a".repeat(1025)), "is too long (over 1024 bytes)");
        assert_eq!(
            relative_name("../x").unwrap_err().to_string(),
            "the name \"../x\" climbs out of its folder (a .. component)"
        );
    }
}
