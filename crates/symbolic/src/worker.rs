//! The rules worker: the child process that runs scryer-prolog for nsod (`nsod rules-worker`, hidden).
//!
//! It reads one request per line on stdin and answers one line on stdout (see [`crate::protocol`]). The first
//! request is `Load` (or `Probe`): the worker builds its Prolog machine with the rule text as `user_input`, loads
//! nsod's prelude, confines itself ([`crate::sandbox`]), reads the rule base term by term with scryer's reader,
//! checks every term against the allow-list ([`crate::allow`]) and only then loads the clauses (`assertz`, never
//! `consult`, so no directive runs but the three accepted ones). It compiles the decision-table predicates and
//! answers; then it serves `Scene` and `Count` requests until stdin closes.
//!
//! Every query is wrapped in `catch/3` (an uncaught exception poisons scryer's machine) and bounded by an
//! inference limit; the parent bounds the wall-clock time and kills the worker when it is exceeded.

use crate::allow::{self, ReadTerm};
use crate::engine::{atom, number, term_text};
use crate::protocol::{
    Compiled, ErrorKind, Request, Response, SceneAnswer, SceneRequest, TrackAnswer, TrackRequest,
    WorkerError, WorkerLimits,
};
use crate::table::{PairRule, RelationRule, SizeRange, SpeedRange};
use nsod_types::relations::Relation;
use scryer_prolog::{InputStreamConfig, LeafAnswer, Machine, MachineBuilder, StreamConfig, Term};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::process::ExitCode;

const PRELUDE: &str = include_str!("prelude.pl");

/// Entry point of the worker process.
pub fn main() -> ExitCode {
    // Die with the parent, whatever the rule base is doing.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout().lock();
    let mut send = |r: &Response| -> bool {
        match serde_json::to_string(r) {
            Ok(s) => writeln!(out, "{s}").and_then(|()| out.flush()).is_ok(),
            Err(_) => false,
        }
    };
    let Some(Ok(first)) = lines.next() else {
        return ExitCode::from(3);
    };
    let (text, limits) = match serde_json::from_str::<Request>(&first) {
        Ok(Request::Probe { limits, scratch }) => {
            let mut report = crate::sandbox::apply(&limits);
            report.checks = crate::sandbox::verify(scratch.as_deref().map(std::path::Path::new));
            send(&Response::Sandbox(report));
            return ExitCode::SUCCESS;
        }
        Ok(Request::Load { text, limits }) => (text, limits),
        Ok(_) | Err(_) => {
            send(&protocol_error("the first request must be Load or Probe"));
            return ExitCode::from(3);
        }
    };
    // scryer 0.10's reader raises a syntax error instead of returning end_of_file when only layout or comments
    // follow the last clause of a string stream; an explicit `end_of_file.` term (which ISO reads as the end)
    // after the text avoids it. An unfinished last clause still fails: it runs into the sentinel.
    let input = format!("{text}\nend_of_file.\n");
    let mut m = MachineBuilder::default()
        .with_streams(StreamConfig::in_memory().with_user_input(InputStreamConfig::string(input)))
        .build();
    m.consult_module_string("user", PRELUDE.to_owned());
    let report = crate::sandbox::apply(&limits);
    let mut compiled = match load(&mut m, &text, &limits) {
        Ok(c) => c,
        Err(e) => {
            send(&Response::Error(e));
            return ExitCode::SUCCESS;
        }
    };
    compiled.sandbox = Some(report);
    if !send(&Response::Loaded(compiled)) {
        return ExitCode::from(3);
    }
    for line in lines {
        let Ok(line) = line else { break };
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Scene(req)) => scene(&mut m, &req, &limits),
            Ok(Request::Count { name, arity }) => count(&mut m, &name, arity, &limits),
            Ok(Request::Tracks(req)) => tracks(&mut m, &req, &limits),
            Ok(_) | Err(_) => protocol_error("expected a Scene, Tracks or Count request"),
        };
        if !send(&response) {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn protocol_error(message: &str) -> Response {
    Response::Error(WorkerError {
        kind: ErrorKind::Protocol,
        line: None,
        message: message.into(),
    })
}

fn err(kind: ErrorKind, line: Option<usize>, message: impl Into<String>) -> WorkerError {
    WorkerError {
        kind,
        line,
        message: message.into(),
    }
}

/// Why a query gave no answer.
enum QueryError {
    /// An exception escaped `catch/3`.
    Exception(String),
    /// The machine could not even represent the exception: its heap is exhausted (the address-space limit).
    Memory,
}

impl QueryError {
    fn into_worker(self, what: &str, limits: &WorkerLimits) -> WorkerError {
        match self {
            Self::Exception(e) => err(ErrorKind::Load, None, format!("{what} raised {e}")),
            Self::Memory => err(
                ErrorKind::Limit,
                None,
                format!(
                    "{what} ran out of memory (the rules worker's limit is {} MiB)",
                    limits.memory_bytes >> 20
                ),
            ),
        }
    }
}

/// Runs a query and returns the bindings of its first answer (`None` for `false`). Queries built here are always
/// wrapped in `catch/3`; an exception that escapes anyway is an error.
fn first_answer(m: &mut Machine, q: &str) -> Result<Option<BTreeMap<String, Term>>, QueryError> {
    let mut answers = m.run_query(q.to_owned());
    match answers.next() {
        None | Some(Ok(LeafAnswer::False)) => Ok(None),
        Some(Ok(LeafAnswer::True)) => Ok(Some(BTreeMap::new())),
        Some(Ok(LeafAnswer::LeafAnswer { bindings, .. })) => Ok(Some(bindings)),
        // Every query is wrapped in catch/3, so an exception that escapes is scryer failing to handle one: its heap
        // could not grow to hold the ball.
        Some(Ok(LeafAnswer::Exception(t))) | Some(Err(t)) => match &t {
            Term::Compound(f, a) if f == "error" && a.len() == 2 => {
                Err(QueryError::Exception(term_text(&t)))
            }
            _ => Err(QueryError::Memory),
        },
    }
}

/// The 1-based line where the next term starts, after `lines_read` complete lines: skips blank lines and
/// comments.
fn start_line(lines: &[&str], lines_read: usize) -> usize {
    let mut in_block = false;
    for (i, l) in lines.iter().enumerate().skip(lines_read) {
        let mut rest = *l;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(k) => {
                        in_block = false;
                        rest = &rest[k + 2..];
                    }
                    None => break,
                }
            } else {
                let t = rest.trim_start();
                if t.is_empty() || t.starts_with('%') {
                    break;
                }
                if let Some(after) = t.strip_prefix("/*") {
                    in_block = true;
                    rest = after;
                    continue;
                }
                return i + 1;
            }
        }
    }
    lines_read + 1
}

/// `error(resource_error(_), _)`: scryer's heap could not grow (the address-space limit). When that happens in
/// the middle of a goal, scryer 0.10 binds the catcher to the query itself instead of the error term: a caught
/// `catch(call_with_inference_limit(...), ...)` is the same condition.
fn is_resource_error(e: &Term) -> bool {
    match e {
        Term::Compound(f, a) if f == "error" => {
            matches!(a.first(), Some(Term::Compound(r, _)) if r == "resource_error")
        }
        Term::Compound(f, a) if f == "catch" && a.len() == 3 => {
            matches!(a.first(), Some(Term::Compound(g, _)) if g == "call_with_inference_limit")
        }
        _ => false,
    }
}

fn int(t: Option<&Term>) -> Option<i64> {
    match t {
        Some(Term::Integer(i)) => i.to_string().parse().ok(),
        _ => None,
    }
}

fn load(m: &mut Machine, text: &str, limits: &WorkerLimits) -> Result<Compiled, WorkerError> {
    let lines: Vec<&str> = text.lines().collect();
    // 1. Read every term (nothing runs yet).
    let mut terms: Vec<ReadTerm> = Vec::new();
    loop {
        let n = terms.len();
        let q = format!("catch('$nsod_read'({n}, T, Vs, L0), E, true).");
        let b = first_answer(m, &q)
            .map_err(|e| e.into_worker("reading the rule base", limits))?
            .ok_or_else(|| err(ErrorKind::Load, None, "cannot be read"))?;
        if let Some(e) = b.get("E") {
            return Err(syntax_error(e, &lines));
        }
        let Some(term) = b.get("T").cloned() else {
            return Err(err(ErrorKind::Load, None, "cannot be read"));
        };
        if matches!(&term, Term::Atom(a) if a == "end_of_file") {
            break;
        }
        let read = int(b.get("L0")).unwrap_or(0).max(0) as usize;
        let mut names = BTreeMap::new();
        if let Some(Term::List(vs)) = b.get("Vs") {
            for v in vs {
                if let Term::Compound(eq, a) = v
                    && eq == "="
                    && let [Term::Atom(name), Term::Var(var)] = &a[..]
                {
                    names.insert(var.clone(), name.clone());
                }
            }
        }
        terms.push(ReadTerm {
            line: start_line(&lines, read),
            term,
            names,
        });
    }
    // 2. The allow-list, on everything, before anything is loaded.
    let checked =
        allow::check(&terms).map_err(|v| err(ErrorKind::Refused, Some(v.line), v.message))?;
    // 3. Load the accepted terms.
    for (n, t) in terms.iter().enumerate() {
        let q = format!("catch('$nsod_commit'({n}), E, true).");
        match first_answer(m, &q) {
            Ok(Some(b)) => {
                if let Some(e) = b.get("E") {
                    return Err(err(
                        ErrorKind::Load,
                        Some(t.line),
                        format!("cannot be loaded: {}", term_text(e)),
                    ));
                }
            }
            Ok(None) => {
                return Err(err(ErrorKind::Load, Some(t.line), "cannot be loaded"));
            }
            Err(e) => {
                let mut e = e.into_worker("loading it", limits);
                e.line = Some(t.line);
                return Err(e);
            }
        }
    }
    let _ = first_answer(m, "catch(retractall('$nsod_pending'(_, _)), _, true).");
    // 4. The decision-table predicates, each under the inference limit.
    let limit = limits.load_inferences;
    let defined = |name: &str, arity: usize| checked.defined.contains(&(name.to_owned(), arity));
    let mut collect = |name: &str, arity: usize| -> Result<Vec<Vec<Term>>, WorkerError> {
        if !defined(name, arity) {
            return Ok(Vec::new());
        }
        let vars: Vec<String> = (0..arity).map(|i| format!("A{i}")).collect();
        let goal = format!("{name}({})", vars.join(", "));
        let q = format!(
            "catch(call_with_inference_limit(findall([{}], {goal}, L), {limit}, R), E, true).",
            vars.join(", ")
        );
        let b = first_answer(m, &q)
            .map_err(|e| e.into_worker(&format!("{name}/{arity}"), limits))?
            .unwrap_or_default();
        if let Some(e) = b.get("E")
            && is_resource_error(e)
        {
            return Err(QueryError::Memory.into_worker(&format!("{name}/{arity}"), limits));
        }
        if let Some(e) = b.get("E") {
            return Err(err(
                ErrorKind::Load,
                None,
                format!("{name}/{arity} raised {}", term_text(e)),
            ));
        }
        if matches!(b.get("R"), Some(Term::Atom(a)) if a == "inference_limit_exceeded") {
            return Err(err(
                ErrorKind::Limit,
                None,
                format!(
                    "{name}/{arity} did not finish within the inference limit ({limit}): a rule that loops?"
                ),
            ));
        }
        match b.get("L") {
            Some(Term::List(items)) => Ok(items
                .iter()
                .map(|t| match t {
                    Term::List(row) => row.clone(),
                    // A one-character atom list reads back as a string.
                    Term::String(s) => s.chars().map(|c| Term::Atom(c.to_string())).collect(),
                    other => vec![other.clone()],
                })
                .collect()),
            Some(Term::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Term::Atom(a)) if a == "[]" => Ok(Vec::new()),
            other => Err(err(
                ErrorKind::Load,
                None,
                format!("{name}/{arity}: unexpected answer {other:?}"),
            )),
        }
    };
    let pairs = collect("confidence_modifier", 3)?;
    let relations = collect("relation_modifier", 4)?;
    let mut thresholds = BTreeMap::new();
    for name in THRESHOLDS {
        let rows = collect(name, 1)?;
        thresholds.insert(name, rows.into_iter().flatten().collect::<Vec<_>>());
    }
    let sizes = collect("size_range", 3)?;
    let penalty = collect("size_penalty", 1)?;
    let speeds = collect("speed_range", 3)?;
    let speed_penalty = collect("speed_penalty", 1)?;
    let mut c = compile(pairs, relations, thresholds, sizes, penalty)?;
    compile_speeds(&mut c, speeds, speed_penalty)?;
    c.scene_rules = checked.scene_rules;
    c.track_rules = checked.track_rules;
    c.relations_used = checked.relations_used.map(|s| s.into_iter().collect());
    c.clauses = checked.clauses;
    if let Some(used) = &c.relations_used {
        for r in used {
            if Relation::parse(r).is_none() {
                let known: Vec<&str> = Relation::ALL.iter().map(|r| r.as_str()).collect();
                return Err(err(
                    ErrorKind::Invalid,
                    None,
                    format!(
                        "scene rules ask for relation({r}, _, _): unknown relation (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(c)
}

const THRESHOLDS: [&str; 4] = [
    "near_factor",
    "overlap_ratio",
    "adjacent_factor",
    "on_ratio",
];

/// A readable message for a syntax error term, with the line where scryer reports it.
fn syntax_error(e: &Term, lines: &[&str]) -> WorkerError {
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
            && let Some(line) = int(a.get(1))
        {
            let line = (line.max(1) as usize).min(lines.len().max(1));
            return err(
                ErrorKind::Syntax,
                Some(line),
                format!("syntax error: {what}"),
            );
        }
        return err(ErrorKind::Syntax, None, format!("syntax error: {what}"));
    }
    err(
        ErrorKind::Syntax,
        None,
        format!("cannot be read: {}", term_text(e)),
    )
}

fn compile(
    pairs: Vec<Vec<Term>>,
    relations: Vec<Vec<Term>>,
    thresholds: BTreeMap<&'static str, Vec<Term>>,
    sizes: Vec<Vec<Term>>,
    penalty: Vec<Vec<Term>>,
) -> Result<Compiled, WorkerError> {
    let invalid = |m: String| err(ErrorKind::Invalid, None, m);
    let row_text = |name: &str, row: &[Term]| {
        format!(
            "{name}({})",
            row.iter().map(term_text).collect::<Vec<_>>().join(", ")
        )
    };
    let weight = |rule: &str, t: &Term| -> Result<f64, WorkerError> {
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
    let mut out = Compiled::default();
    for row in pairs {
        let text = row_text("confidence_modifier", &row);
        let [a, b, w] = &row[..] else {
            return Err(invalid(format!("{text}: expected 3 arguments")));
        };
        let (Some(a), Some(b)) = (atom(a), atom(b)) else {
            return Err(invalid(format!(
                "{text}: both classes must be atoms (is a variable left unbound?)"
            )));
        };
        out.pairs.push(PairRule {
            a,
            b,
            weight: weight(&text, w)?,
        });
    }
    for row in relations {
        let text = row_text("relation_modifier", &row);
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
        out.relations.push(RelationRule {
            subject: s,
            relation,
            object: o,
            weight: weight(&text, w)?,
        });
    }
    for (name, values) in thresholds {
        match &values[..] {
            [] => {}
            [v] => match number(v) {
                Some(x) if x > 0.0 && x.is_finite() && (name.ends_with("factor") || x <= 1.0) => {
                    out.thresholds.insert(name.to_owned(), x as f32);
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
    for row in sizes {
        let text = row_text("size_range", &row);
        let [c, lo, hi] = &row[..] else {
            return Err(invalid(format!("{text}: expected 3 arguments")));
        };
        let Some(class) = atom(c) else {
            return Err(invalid(format!("{text}: the class must be an atom")));
        };
        match (number(lo), number(hi)) {
            (Some(lo), Some(hi)) if lo >= 0.0 && lo <= hi && hi.is_finite() => {
                out.size_ranges.push(SizeRange {
                    class,
                    min_metres: lo,
                    max_metres: hi,
                });
            }
            _ => {
                return Err(invalid(format!(
                    "{text}: needs 0 <= MinMetres <= MaxMetres, both numbers"
                )));
            }
        }
    }
    match &penalty[..] {
        [] => {}
        [row] => match row.first().and_then(number) {
            Some(p) if p > 0.0 && p < 1.0 => out.size_penalty = Some(p),
            _ => {
                return Err(invalid(format!(
                    "{}: the factor must be a number in (0, 1)",
                    row_text("size_penalty", row)
                )));
            }
        },
        more => {
            return Err(invalid(format!(
                "size_penalty/1 has {} values; define it once",
                more.len()
            )));
        }
    }
    Ok(out)
}

fn compile_speeds(
    out: &mut Compiled,
    speeds: Vec<Vec<Term>>,
    penalty: Vec<Vec<Term>>,
) -> Result<(), WorkerError> {
    let invalid = |m: String| err(ErrorKind::Invalid, None, m);
    let row_text = |name: &str, row: &[Term]| {
        format!(
            "{name}({})",
            row.iter().map(term_text).collect::<Vec<_>>().join(", ")
        )
    };
    for row in speeds {
        let text = row_text("speed_range", &row);
        let [c, lo, hi] = &row[..] else {
            return Err(invalid(format!("{text}: expected 3 arguments")));
        };
        let Some(class) = atom(c) else {
            return Err(invalid(format!("{text}: the class must be an atom")));
        };
        match (number(lo), number(hi)) {
            (Some(lo), Some(hi)) if lo >= 0.0 && lo <= hi && hi.is_finite() => {
                out.speed_ranges.push(SpeedRange {
                    class,
                    min_mps: lo,
                    max_mps: hi,
                });
            }
            _ => {
                return Err(invalid(format!(
                    "{text}: needs 0 <= MinMps <= MaxMps, both numbers"
                )));
            }
        }
    }
    match &penalty[..] {
        [] => {}
        [row] => match row.first().and_then(number) {
            Some(p) if p > 0.0 && p < 1.0 => out.speed_penalty = Some(p),
            _ => {
                return Err(invalid(format!(
                    "{}: the factor must be a number in (0, 1)",
                    row_text("speed_penalty", row)
                )));
            }
        },
        more => {
            return Err(invalid(format!(
                "speed_penalty/1 has {} values; define it once",
                more.len()
            )));
        }
    }
    Ok(())
}

/// A finite f64 as a Prolog float, `none` otherwise.
fn float_or_none(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => prolog_float(format!("{v:?}")),
        _ => "none".to_owned(),
    }
}

/// The track facts of one `adjust_track/3` query, as Prolog text.
pub(crate) fn tracks_query(req: &TrackRequest, limit: u64) -> String {
    let mut q = String::with_capacity(64 + req.tracks.len() * 120 + req.relations.len() * 60);
    let gsd = match req.gsd {
        Some(g) if g.is_finite() && g > 0.0 => prolog_float(format!("{g:?}")),
        _ => "none".to_owned(),
    };
    let _ = write!(q, "catch(('$nsod_tracks'({gsd}, [");
    for (i, t) in req.tracks.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        let _ = write!(
            q,
            "tr({},{},{},{},{},{},{},{},{},{})",
            t.id,
            crate::engine::atom_text(&t.class),
            float_or_none(Some(t.first)),
            float_or_none(Some(t.last)),
            t.frames,
            float_or_none(t.speed_px),
            float_or_none(t.speed_m),
            float_or_none(t.heading),
            float_or_none(t.displacement_px),
            float_or_none(t.displacement_m),
        );
    }
    q.push_str("], [");
    for (i, r) in req.relations.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        let _ = write!(
            q,
            "r({},{},{},{},{})",
            crate::engine::atom_text(&r.relation),
            r.a,
            r.b,
            float_or_none(Some(r.from)),
            float_or_none(Some(r.to)),
        );
    }
    let _ = write!(
        q,
        "]), call_with_inference_limit(findall(a(I, F, R), adjust_track(I, F, R), L), {limit}, Res)), E, true)."
    );
    q
}

fn tracks(m: &mut Machine, req: &TrackRequest, limits: &WorkerLimits) -> Response {
    let q = tracks_query(req, limits.query_inferences);
    let ids: std::collections::BTreeSet<u64> = req.tracks.iter().map(|t| t.id).collect();
    let valid = |i: i64| i >= 0 && ids.contains(&(i as u64));
    let (found, query_seconds) = match adjustments(m, &q, ("adjust_track", "track"), limits, valid)
    {
        Ok(x) => x,
        Err(e) => return Response::Error(e),
    };
    let answers = found
        .into_iter()
        .map(|(id, factor, reason)| TrackAnswer {
            id: id as u64,
            factor,
            reason,
        })
        .collect();
    Response::TrackAdjusted {
        answers,
        query_seconds,
    }
}

/// The answers of a rule query whose binding `L` lists `NAME(Id, Factor, Reason)` terms (`adjust/3` of a scene,
/// `adjust_track/3` of tracks), checked: an error the rules raised (out of memory apart), the inference limit, an
/// id `valid` refuses (not a detection of this image, not a track of this query), a factor outside (0, 10].
/// `(name, what)`: the predicate and what the query is about, for the messages. Returns the answers and the query's
/// time.
#[allow(clippy::type_complexity)]
fn adjustments(
    m: &mut Machine,
    q: &str,
    (name, what): (&str, &str),
    limits: &WorkerLimits,
    valid: impl Fn(i64) -> bool,
) -> Result<(Vec<(i64, f64, String)>, f64), WorkerError> {
    let limit = limits.query_inferences;
    let pred = format!("{name}/3");
    let t = std::time::Instant::now();
    let answer = first_answer(m, q);
    let query_seconds = t.elapsed().as_secs_f64();
    let b = match answer {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(err(
                ErrorKind::Load,
                None,
                format!("the {what} query failed"),
            ));
        }
        Err(e) => return Err(e.into_worker(&pred, limits)),
    };
    if let Some(e) = b.get("E") {
        if is_resource_error(e) {
            return Err(QueryError::Memory.into_worker(&pred, limits));
        }
        return Err(err(
            ErrorKind::Load,
            None,
            format!("{pred} raised {}", term_text(e)),
        ));
    }
    if matches!(b.get("Res"), Some(Term::Atom(a)) if a == "inference_limit_exceeded") {
        return Err(err(
            ErrorKind::Limit,
            None,
            format!("{pred} did not finish within the inference limit ({limit})"),
        ));
    }
    let items: &[Term] = match b.get("L") {
        Some(Term::List(items)) => items,
        _ => &[],
    };
    let not_valid = if what == "track" {
        "the id is not a track of this query"
    } else {
        "the id is not a detection of this image"
    };
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let Term::Compound(_, a) = item else { continue };
        let [id, factor, reason] = &a[..] else {
            continue;
        };
        let text = || {
            format!(
                "{name}({}, {}, {})",
                term_text(id),
                term_text(factor),
                term_text(reason)
            )
        };
        let id = match int(Some(id)) {
            Some(i) if valid(i) => i,
            _ => {
                return Err(err(
                    ErrorKind::Invalid,
                    None,
                    format!("{}: {not_valid}", text()),
                ));
            }
        };
        let factor = match number(factor) {
            Some(f) if f > 0.0 && f <= 10.0 && f.is_finite() => f,
            _ => {
                return Err(err(
                    ErrorKind::Invalid,
                    None,
                    format!("{}: the factor must be a number in (0, 10]", text()),
                ));
            }
        };
        answers.push((id, factor, term_text(reason)));
    }
    Ok((answers, query_seconds))
}

/// The scene term of one image, as Prolog text (numbers in their shortest round-trip form).
pub(crate) fn scene_query(req: &SceneRequest, limit: u64) -> String {
    let mut q = String::with_capacity(64 + req.detections.len() * 80);
    let gsd = match req.gsd {
        Some(g) if g.is_finite() && g > 0.0 => prolog_float(format!("{g:?}")),
        _ => "none".to_owned(),
    };
    let _ = write!(
        q,
        "catch(('$nsod_scene'({}, {}, {gsd}, [",
        req.width, req.height
    );
    for (i, d) in req.detections.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        let _ = write!(
            q,
            "d({i},{},{},{},{},{},{},{})",
            crate::engine::atom_text(&d.class),
            float(d.conf),
            float(d.cx),
            float(d.cy),
            float(d.w),
            float(d.h),
            float(d.angle)
        );
    }
    q.push_str("], [");
    // Incoming directional edges (adjacent_to 1, located_on 2) per detection; symmetric relations are read from
    // the object's own list.
    let n = req.detections.len();
    let mut incoming: Vec<Vec<u64>> = vec![Vec::new(); n];
    for (s, out) in req.relations.iter().enumerate() {
        for &(r, o) in out {
            if (o as usize) < n && matches!(r & 3, 1 | 2) {
                incoming[o as usize].push(s as u64 * 4 + u64::from(r & 3));
            }
        }
    }
    for (i, inc) in incoming.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        q.push_str("a([");
        let out = req.relations.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for (k, &(r, o)) in out.iter().enumerate() {
            if k > 0 {
                q.push(',');
            }
            let _ = write!(q, "{}", u64::from(o) * 4 + u64::from(r & 3));
        }
        q.push_str("],[");
        for (k, code) in inc.iter().enumerate() {
            if k > 0 {
                q.push(',');
            }
            let _ = write!(q, "{code}");
        }
        q.push_str("])");
    }
    q.push_str("], [");
    for (i, (c, k)) in req.class_counts.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        let _ = write!(q, "c({},{k})", crate::engine::atom_text(c));
    }
    // The ids of each class, for enumeration by class.
    q.push_str("], [");
    let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in req.detections.iter().enumerate() {
        by_class.entry(d.class.as_str()).or_default().push(i);
    }
    for (k, (c, ids)) in by_class.iter().enumerate() {
        if k > 0 {
            q.push(',');
        }
        let _ = write!(q, "k({},[", crate::engine::atom_text(c));
        for (j, id) in ids.iter().enumerate() {
            if j > 0 {
                q.push(',');
            }
            let _ = write!(q, "{id}");
        }
        q.push_str("])");
    }
    let _ = write!(
        q,
        "]), call_with_inference_limit(findall(a(I, F, R), adjust(I, F, R), L), {limit}, Res)), E, true)."
    );
    q
}

/// A finite float as Prolog text in its shortest round-trip form (always with a decimal point; non-finite values
/// become 0.0).
fn float(x: f32) -> String {
    if !x.is_finite() {
        return "0.0".into();
    }
    prolog_float(format!("{x:?}"))
}

/// Rust's `{:?}` of a finite float as a Prolog float literal.
fn prolog_float(s: String) -> String {
    if s.contains(['.', 'e', 'E']) {
        if s.contains('e') && !s.contains('.') {
            // 1e20 -> 1.0e20
            s.replacen('e', ".0e", 1)
        } else {
            s
        }
    } else {
        format!("{s}.0")
    }
}

fn scene(m: &mut Machine, req: &SceneRequest, limits: &WorkerLimits) -> Response {
    let t = std::time::Instant::now();
    let q = scene_query(req, limits.query_inferences);
    let build_seconds = t.elapsed().as_secs_f64();
    let n = req.detections.len();
    let valid = |i: i64| i >= 0 && (i as usize) < n;
    let (found, query_seconds) = match adjustments(m, &q, ("adjust", "scene"), limits, valid) {
        Ok(x) => x,
        Err(e) => return Response::Error(e),
    };
    let answers = found
        .into_iter()
        .map(|(id, factor, reason)| SceneAnswer {
            id: id as usize,
            factor,
            reason,
        })
        .collect();
    Response::Adjusted {
        answers,
        build_seconds,
        query_seconds,
    }
}

fn count(m: &mut Machine, name: &str, arity: usize, limits: &WorkerLimits) -> Response {
    let q = format!(
        "catch(call_with_inference_limit('$nsod_count'({}, {arity}, N), {}, R), E, true).",
        crate::engine::quote_atom(name),
        limits.load_inferences
    );
    match first_answer(m, &q) {
        Ok(Some(b)) => {
            if let Some(e) = b.get("E") {
                return Response::Error(err(ErrorKind::Load, None, term_text(e)));
            }
            match int(b.get("N")) {
                Some(n) if n >= 0 => Response::Counted(n as usize),
                _ => Response::Error(err(ErrorKind::Limit, None, "the count did not finish")),
            }
        }
        Ok(None) => Response::Error(err(ErrorKind::Load, None, "the count query failed")),
        Err(e) => Response::Error(e.into_worker("the count", limits)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_skip_blank_lines_and_comments() {
        let text = "% c\n:- a.\n\nfoo.\n/* x\n */ bar.\n  % y\n\n  baz.";
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(start_line(&lines, 0), 2);
        assert_eq!(start_line(&lines, 2), 4);
        assert_eq!(start_line(&lines, 4), 6);
        assert_eq!(start_line(&lines, 6), 9);
    }

    #[test]
    fn floats_are_prolog_floats() {
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(3.0), "3.0");
        assert_eq!(float(1e20), "1.0e20");
        assert_eq!(float(f32::NAN), "0.0");
    }
}
