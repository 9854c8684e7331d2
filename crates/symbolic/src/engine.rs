//! Loading a rule base with scryer-prolog and compiling it into a [`DecisionTable`].

use crate::SymbolicError;
use crate::table::{DecisionTable, PairRule, RelationRule};
use nsod_types::ClassNames;
use nsod_types::relations::Relation;
use scryer_prolog::{LeafAnswer, MachineBuilder, StreamConfig, Term};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bounds on the work a rule base may cause (rule bases are untrusted input).
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Inference limit of each query (consult included).
    pub inferences: u64,
    /// Wall-clock limit of the whole load.
    pub timeout: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            inferences: 10_000_000,
            timeout: Duration::from_secs(20),
        }
    }
}

/// Loads `path` and compiles it. `classes`, when given, are the model's class names: rules naming other classes
/// produce warnings (kept in [`DecisionTable::warnings`]).
pub fn load_rules(
    path: &Path,
    classes: Option<&ClassNames>,
    limits: LoadLimits,
) -> Result<DecisionTable, SymbolicError> {
    let start = Instant::now();
    let io = |message: String| SymbolicError::Io {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| io(e.to_string()))?;
    if !meta.is_file() {
        return Err(io("not a file".into()));
    }
    let text = std::fs::read(path).map_err(|e| io(e.to_string()))?;
    if std::str::from_utf8(&text).is_err() {
        return Err(io("not UTF-8 text".into()));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| io(e.to_string()))?;
    let (tx, rx) = mpsc::channel();
    let thread_path = abs.clone();
    // The Prolog machine is not Send: it lives and dies on this thread. A rule base that hangs despite the
    // inference limit leaves this thread behind; the caller gets an error after `timeout`.
    let spawned = std::thread::Builder::new()
        .name("nsod-prolog".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                query_rules(&thread_path, limits.inferences)
            }));
            let _ = tx.send(
                result.unwrap_or_else(|_| Err(Failure::Load("the Prolog engine panicked".into()))),
            );
        });
    if let Err(e) = spawned {
        return Err(SymbolicError::Load {
            path: path.to_path_buf(),
            message: format!("cannot start the Prolog thread: {e}"),
        });
    }
    let raw = match rx.recv_timeout(limits.timeout) {
        Ok(Ok(raw)) => raw,
        Ok(Err(Failure::Syntax(m))) => {
            return Err(SymbolicError::Syntax {
                path: path.to_path_buf(),
                message: m,
            });
        }
        Ok(Err(Failure::Load(m))) => {
            return Err(SymbolicError::Load {
                path: path.to_path_buf(),
                message: m,
            });
        }
        Err(_) => {
            return Err(SymbolicError::Load {
                path: path.to_path_buf(),
                message: format!(
                    "loading did not finish within {} s (a rule or directive that never ends?)",
                    limits.timeout.as_secs()
                ),
            });
        }
    };
    compile(path, raw, classes, start.elapsed())
}

enum Failure {
    Syntax(String),
    Load(String),
}

/// What the queries returned, as terms.
struct RawRules {
    pairs: Vec<Vec<Term>>,
    relations: Vec<Vec<Term>>,
    thresholds: BTreeMap<&'static str, Vec<Term>>,
}

const THRESHOLDS: [&str; 4] = [
    "near_factor",
    "overlap_ratio",
    "adjacent_factor",
    "on_ratio",
];

fn quote_atom(s: &str) -> String {
    let mut q = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => q.push_str("\\'"),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// Runs a query and returns the bindings of its first answer (`None` for `false`).
fn first_answer(
    m: &mut scryer_prolog::Machine,
    q: &str,
) -> Result<Option<BTreeMap<String, Term>>, String> {
    let mut answers = m.run_query(q.to_owned());
    match answers.next() {
        None | Some(Ok(LeafAnswer::False)) => Ok(None),
        Some(Ok(LeafAnswer::True)) => Ok(Some(BTreeMap::new())),
        Some(Ok(LeafAnswer::LeafAnswer { bindings, .. })) => Ok(Some(bindings)),
        Some(Ok(LeafAnswer::Exception(t))) | Some(Err(t)) => Err(term_text(&t)),
    }
}

fn query_rules(path: &Path, limit: u64) -> Result<RawRules, Failure> {
    let mut m = MachineBuilder::default()
        .with_streams(StreamConfig::in_memory())
        .build();
    for lib in ["iso_ext", "lists", "between"] {
        first_answer(&mut m, &format!("use_module(library({lib})).")).map_err(Failure::Load)?;
    }
    let file = quote_atom(&path.to_string_lossy());
    // 1. Syntax: read every term, so an error names its line instead of consult failing silently.
    let read_all = format!(
        "catch((open({file}, read, S), repeat, read_term(S, T, []), T == end_of_file, !, close(S)), E, true)."
    );
    if let Some(b) = first_answer(&mut m, &read_all).map_err(Failure::Load)?
        && let Some(e) = b.get("E")
    {
        return Err(Failure::Syntax(syntax_message(e)));
    }
    // 2. Consult, bounded.
    let consult =
        format!("catch(call_with_inference_limit(consult({file}), {limit}, R), E, true).");
    match first_answer(&mut m, &consult).map_err(Failure::Load)? {
        None => return Err(Failure::Load("could not be consulted: a directive failed, raised an error or exceeded the inference limit".into())),
        Some(b) => {
            if let Some(e) = b.get("E") {
                return Err(Failure::Load(format!("consult raised {}", term_text(e))));
            }
            if matches!(b.get("R"), Some(Term::Atom(a)) if a == "inference_limit_exceeded") {
                return Err(Failure::Load(format!("consulting exceeded the inference limit ({limit}): a directive that loops?")));
            }
        }
    }
    // 3. One bounded findall per predicate; a predicate the file does not define is simply absent.
    let mut collect = |goal: &str, template: &str, name: &str| -> Result<Vec<Term>, Failure> {
        let q = format!(
            "catch(call_with_inference_limit(findall({template}, {goal}, L), {limit}, R), E, true)."
        );
        let b = first_answer(&mut m, &q)
            .map_err(Failure::Load)?
            .unwrap_or_default();
        if let Some(e) = b.get("E") {
            if is_existence_error(e, name) {
                return Ok(Vec::new());
            }
            return Err(Failure::Load(format!("{name} raised {}", term_text(e))));
        }
        if matches!(b.get("R"), Some(Term::Atom(a)) if a == "inference_limit_exceeded") {
            return Err(Failure::Load(format!(
                "{name} did not finish within the inference limit ({limit}): a rule that loops?"
            )));
        }
        match b.get("L") {
            Some(Term::List(items)) => Ok(items.clone()),
            Some(Term::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Term::Atom(a)) if a == "[]" => Ok(Vec::new()),
            other => Err(Failure::Load(format!(
                "{name}: unexpected answer {other:?}"
            ))),
        }
    };
    let pairs = collect(
        "confidence_modifier(A, B, W)",
        "[A, B, W]",
        "confidence_modifier/3",
    )?;
    let relations = collect(
        "relation_modifier(S, Rel, O, W)",
        "[S, Rel, O, W]",
        "relation_modifier/4",
    )?;
    let mut thresholds = BTreeMap::new();
    for name in THRESHOLDS {
        thresholds.insert(
            name,
            collect(&format!("{name}(X)"), "X", &format!("{name}/1"))?,
        );
    }
    let as_rows = |v: Vec<Term>| {
        v.into_iter()
            .map(|t| {
                if let Term::List(items) = t {
                    items
                } else {
                    vec![t]
                }
            })
            .collect()
    };
    Ok(RawRules {
        pairs: as_rows(pairs),
        relations: as_rows(relations),
        thresholds,
    })
}

/// True for `error(existence_error(procedure, Name/Arity), _)` about `name` ("pred/3").
fn is_existence_error(e: &Term, name: &str) -> bool {
    let Term::Compound(f, args) = e else {
        return false;
    };
    let Some(Term::Compound(ee, eargs)) = args.first() else {
        return false;
    };
    f == "error" && ee == "existence_error" && eargs.len() == 2 && term_text(&eargs[1]) == name
}

/// A readable message for a syntax error term, with the line where scryer reports it.
fn syntax_message(e: &Term) -> String {
    if let Term::Compound(f, args) = e
        && f == "error"
        && args.len() == 2
    {
        let what = match &args[0] {
            Term::Compound(s, a) if s == "syntax_error" && a.len() == 1 => {
                term_text(&a[0]).replace('_', " ")
            }
            other => term_text(other),
        };
        if let Term::Compound(colon, a) = &args[1]
            && colon == ":"
            && a.len() == 2
            && let Term::Integer(line) = &a[1]
        {
            return format!("syntax error at line {line}: {what}");
        }
        return format!("syntax error: {what}");
    }
    format!("cannot be read: {}", term_text(e))
}

/// Prolog-ish text of a term, for messages and explanations.
pub(crate) fn term_text(t: &Term) -> String {
    match t {
        Term::Integer(i) => i.to_string(),
        Term::Rational(r) => r.to_string(),
        Term::Float(f) => format!("{f}"),
        Term::Atom(a) => atom_text(a),
        Term::String(s) => format!("{s:?}"),
        Term::List(items) => format!(
            "[{}]",
            items.iter().map(term_text).collect::<Vec<_>>().join(", ")
        ),
        Term::Compound(f, args)
            if args.len() == 2 && ["/", "-", ":", "+", "*"].contains(&f.as_str()) =>
        {
            format!("{}{f}{}", term_text(&args[0]), term_text(&args[1]))
        }
        Term::Compound(f, args) => format!(
            "{}({})",
            atom_text(f),
            args.iter().map(term_text).collect::<Vec<_>>().join(", ")
        ),
        Term::Var(v) => format!("_{v}"),
        other => format!("{other:?}"),
    }
}

fn atom_text(a: &str) -> String {
    let plain = a.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain || a == "[]" || a == "!" {
        a.to_owned()
    } else {
        quote_atom(a)
    }
}

fn number(t: &Term) -> Option<f64> {
    match t {
        Term::Float(f) => Some(*f),
        Term::Integer(i) => i.to_string().parse().ok(),
        Term::Rational(r) => {
            let s = r.to_string();
            match s.split_once('/') {
                Some((n, d)) => Some(n.trim().parse::<f64>().ok()? / d.trim().parse::<f64>().ok()?),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

fn atom(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.clone()),
        _ => None,
    }
}

fn compile(
    path: &Path,
    raw: RawRules,
    classes: Option<&ClassNames>,
    elapsed: Duration,
) -> Result<DecisionTable, SymbolicError> {
    let invalid = |message: String| SymbolicError::Invalid {
        path: PathBuf::from(path),
        message,
    };
    let weight = |rule: &str, t: &Term| -> Result<f64, SymbolicError> {
        match number(t) {
            Some(w) if w > 0.0 && w <= 10.0 && w.is_finite() => Ok(w),
            Some(w) => Err(invalid(format!(
                "{rule}: weight {w} is out of range (0, 10]"
            ))),
            None => Err(invalid(format!(
                "{rule}: weight {} is not a number",
                term_text(t)
            ))),
        }
    };
    let mut pairs = Vec::new();
    for row in raw.pairs {
        let text = format!(
            "confidence_modifier({})",
            row.iter().map(term_text).collect::<Vec<_>>().join(", ")
        );
        let [a, b, w] = &row[..] else {
            return Err(invalid(format!("{text}: expected 3 arguments")));
        };
        let (Some(a), Some(b)) = (atom(a), atom(b)) else {
            return Err(invalid(format!(
                "{text}: both classes must be atoms (is a variable left unbound?)"
            )));
        };
        pairs.push(PairRule {
            a,
            b,
            weight: weight(&text, w)?,
        });
    }
    let mut relations = Vec::new();
    for row in raw.relations {
        let text = format!(
            "relation_modifier({})",
            row.iter().map(term_text).collect::<Vec<_>>().join(", ")
        );
        let [s, rel, o, w] = &row[..] else {
            return Err(invalid(format!("{text}: expected 4 arguments")));
        };
        let (Some(s), Some(rel), Some(o)) = (atom(s), atom(rel), atom(o)) else {
            return Err(invalid(format!(
                "{text}: subject, relation and object must be atoms"
            )));
        };
        let Some(relation) = Relation::parse(&rel) else {
            let known: Vec<&str> = Relation::ALL.iter().map(|r| r.as_str()).collect();
            return Err(invalid(format!(
                "{text}: unknown relation {rel} (known: {})",
                known.join(", ")
            )));
        };
        relations.push(RelationRule {
            subject: s,
            relation,
            object: o,
            weight: weight(&text, w)?,
        });
    }
    let mut thresholds = BTreeMap::new();
    for (name, values) in raw.thresholds {
        match &values[..] {
            [] => {}
            [v] => match number(v) {
                Some(x) if x > 0.0 && x.is_finite() && (name.ends_with("factor") || x <= 1.0) => {
                    thresholds.insert(name, x as f32);
                }
                _ => {
                    return Err(invalid(format!(
                        "{name}({}): must be a positive number{}",
                        term_text(v),
                        if name.ends_with("ratio") { " <= 1" } else { "" }
                    )));
                }
            },
            _ => {
                return Err(invalid(format!(
                    "{name}/1 has {} values; define it once",
                    values.len()
                )));
            }
        }
    }
    DecisionTable::new(path, pairs, relations, &thresholds, classes, elapsed).map_err(invalid)
}

/// Consults `path` and counts the solutions of `goal` (e.g. `fact(_, _, _, _)`), under the same limits as
/// [`load_rules`]. Used to check that exported facts load.
pub fn count_solutions(
    path: &Path,
    goal: &str,
    limits: LoadLimits,
) -> Result<usize, SymbolicError> {
    let (tx, rx) = mpsc::channel();
    let (p, g) = (path.to_path_buf(), goal.to_owned());
    let load = |message: String| SymbolicError::Load {
        path: path.to_path_buf(),
        message,
    };
    std::thread::Builder::new()
        .name("nsod-prolog".into())
        .spawn(move || {
            let run = || -> Result<usize, String> {
                let mut m = MachineBuilder::default().with_streams(StreamConfig::in_memory()).build();
                first_answer(&mut m, "use_module(library(iso_ext)).")?;
                first_answer(&mut m, "use_module(library(lists)).")?;
                let file = quote_atom(&p.to_string_lossy());
                let consult = format!("catch(call_with_inference_limit(consult({file}), {}, R), E, true).", limits.inferences);
                match first_answer(&mut m, &consult)? {
                    Some(b) if !b.contains_key("E") => {}
                    _ => return Err("could not be consulted".into()),
                }
                let q = format!("catch(call_with_inference_limit((findall(x, ({g}), L), length(L, N)), {}, R), E, true).", limits.inferences);
                let b = first_answer(&mut m, &q)?.unwrap_or_default();
                if let Some(e) = b.get("E") {
                    return Err(term_text(e));
                }
                match b.get("N") {
                    Some(n) => number(n).map(|v| v as usize).ok_or_else(|| "no count".to_owned()),
                    None => Err("the count query failed".into()),
                }
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err("the Prolog engine panicked".into()));
            let _ = tx.send(r);
        })
        .map_err(|e| load(e.to_string()))?;
    match rx.recv_timeout(limits.timeout) {
        Ok(r) => r.map_err(load),
        Err(_) => Err(load("the query did not finish in time".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_are_quoted_when_needed() {
        assert_eq!(atom_text("ship"), "ship");
        assert_eq!(atom_text("Bridge"), "'Bridge'");
        assert_eq!(atom_text("large vehicle"), "'large vehicle'");
        assert_eq!(quote_atom("/tmp/it's\\x.pl"), "'/tmp/it\\'s\\\\x.pl'");
    }
}
