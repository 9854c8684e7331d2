//! Loading a rule base in the sandboxed rules worker and compiling it into a [`DecisionTable`]; running scene
//! rules per image; Prolog term helpers shared with the worker.

use crate::SymbolicError;
use crate::host::{Failure, Sandbox, Worker};
use crate::protocol::{
    Compiled, ErrorKind, Request, Response, SandboxReport, SceneAnswer, SceneDetection,
    SceneRequest, TrackAnswer, TrackRequest, WorkerError,
};
use crate::table::{DecisionTable, class_atom};
use nsod_types::outcome::{Adjustment, Change};
use nsod_types::relations::{Relation, RelationParams, extract};
use nsod_types::{ClassNames, Detection};
use scryer_prolog::Term;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest rule file accepted (rule bases are small; this bounds what the worker has to read).
pub const MAX_RULES_BYTES: u64 = 4 << 20;

/// A loaded rule base: the decision table (pure Rust, applied per image without Prolog) and, when the file
/// defines `adjust/3` or `adjust_track/3`, its scene rules.
#[derive(Debug)]
pub struct RuleBase {
    pub table: DecisionTable,
    /// `Some` when the rule base defines `adjust/3` or `adjust_track/3`.
    pub scene: Option<Arc<SceneRules>>,
    /// What the worker's sandbox enforced while loading.
    pub sandbox: Option<SandboxReport>,
    /// Clauses in the file.
    pub clauses: usize,
}

/// What a scene session needs to (re)start workers for a rule base with `adjust/3` or `adjust_track/3`.
#[derive(Debug)]
pub struct SceneRules {
    pub path: PathBuf,
    /// `adjust/3` is defined: scene rules per image.
    pub per_image: bool,
    /// `adjust_track/3` is defined: rules over tracks.
    pub per_track: bool,
    text: String,
    sandbox: Sandbox,
    /// Relations the rules can ask about (`None`: all of them).
    pub relations_used: Option<Vec<Relation>>,
    params: RelationParams,
    /// The model's classes as atoms, for `class_count/2` (zero counts included).
    classes: Vec<String>,
    /// The worker that loaded the rules, handed to the first session.
    idle: Mutex<Option<Worker>>,
}

/// The image a scene query is about.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ImageContext {
    pub width: u32,
    pub height: u32,
    /// Ground sample distance, metres per pixel, when known.
    pub gsd: Option<f64>,
}

fn read_text(path: &Path) -> Result<String, SymbolicError> {
    let io = |source: std::io::Error| SymbolicError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a file")));
    }
    if meta.len() > MAX_RULES_BYTES {
        return Err(io(std::io::Error::other(format!(
            "{} bytes: larger than the {} MiB a rule base may have",
            meta.len(),
            MAX_RULES_BYTES >> 20
        ))));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| io(std::io::Error::other("not UTF-8 text")))
}

fn worker_error(path: &Path, e: WorkerError) -> SymbolicError {
    let path = path.to_path_buf();
    let (line, message) = (e.line, e.message);
    match e.kind {
        ErrorKind::Syntax => SymbolicError::Syntax {
            path,
            line,
            message,
        },
        ErrorKind::Refused => SymbolicError::Refused {
            path,
            line,
            message,
        },
        ErrorKind::Limit => SymbolicError::Limit { path, message },
        ErrorKind::Invalid => SymbolicError::Invalid { path, message },
        ErrorKind::Load | ErrorKind::Protocol => SymbolicError::Load {
            path,
            line,
            message,
        },
    }
}

fn failure(path: &Path, f: Failure, sandbox: &Sandbox) -> SymbolicError {
    let path = path.to_path_buf();
    let message = f.describe(&sandbox.limits);
    if f.is_limit() {
        SymbolicError::Limit { path, message }
    } else {
        match f {
            Failure::Spawn(source) => SymbolicError::Worker { path, source },
            _ => SymbolicError::Crashed { path, message },
        }
    }
}

/// Starts a worker and loads `text` in it.
fn start(path: &Path, text: &str, sandbox: &Sandbox) -> Result<(Worker, Compiled), SymbolicError> {
    let mut w = Worker::spawn(&sandbox.worker).map_err(|f| failure(path, f, sandbox))?;
    let req = Request::Load {
        text: text.to_owned(),
        limits: sandbox.limits.worker(),
    };
    match w.call(&req, sandbox.limits.load_timeout) {
        Ok(Response::Loaded(c)) => Ok((w, c)),
        Ok(Response::Error(e)) => Err(worker_error(path, e)),
        Ok(other) => Err(SymbolicError::Crashed {
            path: path.to_path_buf(),
            message: format!("the rules worker answered {other:?} to a load"),
        }),
        Err(f) => Err(failure(path, f, sandbox)),
    }
}

/// Loads `path` in a sandboxed worker and compiles it. `classes`, when given, are the model's class names: rules
/// naming other classes produce warnings (kept in [`DecisionTable::warnings`]).
pub fn load_rules(
    path: &Path,
    classes: Option<&ClassNames>,
    sandbox: &Sandbox,
) -> Result<RuleBase, SymbolicError> {
    let t = Instant::now();
    let text = read_text(path)?;
    let (worker, c) = start(path, &text, sandbox)?;
    let table = DecisionTable::new(
        path,
        c.pairs,
        c.relations,
        &c.thresholds,
        c.size_ranges,
        c.size_penalty,
        classes,
        t.elapsed(),
    );
    let mut table = table;
    table.speed_ranges = c.speed_ranges;
    if let Some(p) = c.speed_penalty {
        table.speed_penalty = p;
    }
    let scene = if c.scene_rules || c.track_rules {
        let relations_used = c
            .relations_used
            .map(|v| v.iter().filter_map(|r| Relation::parse(r)).collect());
        let classes = classes
            .map(|n| n.as_slice().iter().map(|c| class_atom(c)).collect())
            .unwrap_or_default();
        Some(Arc::new(SceneRules {
            path: path.to_path_buf(),
            per_image: c.scene_rules,
            per_track: c.track_rules,
            text,
            sandbox: sandbox.clone(),
            relations_used,
            params: table.params,
            classes,
            idle: Mutex::new(Some(worker)),
        }))
    } else {
        // Table-only rule bases never query Prolog again: the worker ends here.
        drop(worker);
        None
    };
    Ok(RuleBase {
        table,
        scene,
        sandbox: c.sandbox,
        clauses: c.clauses,
    })
}

/// Loads `path` as facts and counts the solutions of `name/arity` (used to check that exported facts load).
pub fn count_solutions(
    path: &Path,
    name: &str,
    arity: usize,
    sandbox: &Sandbox,
) -> Result<usize, SymbolicError> {
    let text = read_text(path)?;
    let (mut w, _) = start(path, &text, sandbox)?;
    match w.call(
        &Request::Count {
            name: name.to_owned(),
            arity,
        },
        sandbox.limits.load_timeout,
    ) {
        Ok(Response::Counted(n)) => Ok(n),
        Ok(Response::Error(e)) => Err(worker_error(path, e)),
        Ok(other) => Err(SymbolicError::Crashed {
            path: path.to_path_buf(),
            message: format!("the rules worker answered {other:?} to a count"),
        }),
        Err(f) => Err(failure(path, f, sandbox)),
    }
}

/// Starts a worker only to report what its sandbox enforces on this machine and to try what it must prevent (for
/// `nsod doctor` and tests). With `scratch`, the worker also tries to create a file and list that folder.
pub fn probe(sandbox: &Sandbox, scratch: Option<&Path>) -> Result<SandboxReport, String> {
    let mut w = Worker::spawn(&sandbox.worker).map_err(|f| f.describe(&sandbox.limits))?;
    match w.call(
        &Request::Probe {
            limits: sandbox.limits.worker(),
            scratch: scratch.map(|p| p.to_string_lossy().into_owned()),
        },
        sandbox.limits.load_timeout,
    ) {
        Ok(Response::Sandbox(r)) => Ok(r),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(f) => Err(f.describe(&sandbox.limits)),
    }
}

impl RuleBase {
    /// A session for one worker thread of the pipeline: `None` when the rule base has no scene rules.
    pub fn session(&self) -> Option<SceneSession> {
        self.scene
            .as_ref()
            .filter(|s| s.per_image)
            .map(|s| SceneSession::new(s.clone()))
    }

    /// A session for the rules over tracks (`adjust_track/3`): `None` when the rule base has none.
    pub fn track_session(&self) -> Option<SceneSession> {
        self.scene
            .as_ref()
            .filter(|s| s.per_track)
            .map(|s| SceneSession::new(s.clone()))
    }

    /// The rule base defines `adjust_track/3` or `speed_range/3`: it has something to say about tracks.
    pub fn has_track_rules(&self) -> bool {
        self.scene.as_ref().is_some_and(|s| s.per_track) || !self.table.speed_ranges.is_empty()
    }

    /// Applies the whole rule base to one image: pair, relation and size rules from the table, then the scene
    /// rules when there are some, all combined by [`Adjustment::from_changes`]. A scene query that fails leaves the
    /// image with the table's result and returns the error beside it.
    pub fn refine(
        &self,
        session: Option<&mut SceneSession>,
        dets: &[Detection],
        ctx: &ImageContext,
    ) -> (Adjustment, Option<SymbolicError>) {
        // The worker runs the scene query on its own core while this thread applies the table.
        let pending = session.map(|s| {
            let (req, order) = s.request(dets, ctx);
            let sent = s.submit(req);
            (s, order, sent)
        });
        let mut changes = self.table.changes(dets);
        changes.extend(self.table.size_changes(dets, ctx.gsd));
        let mut error = None;
        if let Some((s, order, sent)) = pending {
            match sent.and_then(|()| s.collect()) {
                Ok(answers) => changes.extend(SceneSession::to_changes(answers, &order)),
                Err(e) => error = Some(e),
            }
        }
        (Adjustment::from_changes(dets, changes), error)
    }
}

/// A live connection to a rules worker that answers `adjust/3` per image. Not shared: each pipeline worker owns
/// one. The worker is started on first use, replaced after [`crate::Limits::queries_per_worker`] queries, and
/// after any failure (a failed query never poisons the next image).
#[derive(Debug)]
pub struct SceneSession {
    rules: Arc<SceneRules>,
    worker: Option<Worker>,
    /// The worker's own time for the last query: building the query text, running it.
    pub last_timing: Option<(f64, f64)>,
}

/// Canonical order of detections (score high first, then class, then box), so that scene ids, and so the
/// answers, do not depend on the order the detections came in.
fn canonical_order(dets: &[Detection]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..dets.len()).collect();
    let key = |d: &Detection| {
        let o = d.as_oriented();
        [
            -d.score,
            d.class_id as f32,
            d.bbox.x1,
            d.bbox.y1,
            d.bbox.x2,
            d.bbox.y2,
            o.w,
            o.h,
            o.angle,
        ]
    };
    idx.sort_by(|&a, &b| {
        let (ka, kb) = (key(&dets[a]), key(&dets[b]));
        ka.iter()
            .zip(&kb)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| dets[a].class_name.cmp(&dets[b].class_name))
    });
    idx
}

impl SceneSession {
    pub fn new(rules: Arc<SceneRules>) -> Self {
        let worker = rules.idle.lock().ok().and_then(|mut w| w.take());
        Self {
            rules,
            worker,
            last_timing: None,
        }
    }

    /// The scene request of one image (ids in canonical order) and the map from ids back to input indices.
    pub fn request(&self, dets: &[Detection], ctx: &ImageContext) -> (SceneRequest, Vec<usize>) {
        let order = canonical_order(dets);
        let mut id_of = vec![0usize; dets.len()];
        for (id, &i) in order.iter().enumerate() {
            id_of[i] = id;
        }
        let sorted: Vec<Detection> = order.iter().map(|&i| dets[i].clone()).collect();
        let used = &self.rules.relations_used;
        let mut relations = vec![Vec::new(); sorted.len()];
        if used.as_ref().is_none_or(|u| !u.is_empty()) {
            for e in extract(&sorted, &self.rules.params, |_, _| true) {
                if used.as_ref().is_none_or(|u| u.contains(&e.relation)) {
                    let r = Relation::ALL
                        .iter()
                        .position(|x| *x == e.relation)
                        .unwrap_or(0) as u8;
                    relations[e.subject].push((r, e.object as u32));
                }
            }
            for r in &mut relations {
                r.sort_unstable();
            }
        }
        let mut counts: std::collections::BTreeMap<String, u64> =
            self.rules.classes.iter().map(|c| (c.clone(), 0)).collect();
        let detections = sorted
            .iter()
            .map(|d| {
                let class = class_atom(&d.class_name);
                *counts.entry(class.clone()).or_default() += 1;
                let o = d.as_oriented();
                SceneDetection {
                    class,
                    conf: d.score,
                    cx: o.cx,
                    cy: o.cy,
                    w: o.w,
                    h: o.h,
                    angle: o.angle,
                }
            })
            .collect();
        (
            SceneRequest {
                width: ctx.width,
                height: ctx.height,
                gsd: ctx.gsd,
                detections,
                relations,
                class_counts: counts.into_iter().collect(),
            },
            order,
        )
    }

    /// The `adjust/3` answers for one scene request (ids as in the request), sorted and without duplicates.
    pub fn answers(&mut self, req: SceneRequest) -> Result<Vec<SceneAnswer>, SymbolicError> {
        self.submit(req)?;
        self.collect()
    }

    /// Sends a scene request to the worker (starting one if needed) without waiting for the answer.
    fn submit(&mut self, req: SceneRequest) -> Result<(), SymbolicError> {
        self.send(Request::Scene(req))
    }

    /// The `adjust_track/3` answers for a set of tracks, sorted and without duplicates. Answers name tracks of the
    /// request (context tracks included: the caller keeps those it asked about).
    pub fn track_answers(&mut self, req: TrackRequest) -> Result<Vec<TrackAnswer>, SymbolicError> {
        self.send(Request::Tracks(req))?;
        self.receive(("track", "a track query"), |r| match r {
            Response::TrackAdjusted {
                answers,
                query_seconds,
            } => Ok((answers, 0.0, query_seconds)),
            other => Err(format!("{other:?}")),
        })
    }

    /// Sends a request to the worker (starting one if needed) without waiting for the answer.
    fn send(&mut self, req: Request) -> Result<(), SymbolicError> {
        let rules = self.rules.clone();
        let limits = rules.sandbox.limits;
        if self
            .worker
            .as_ref()
            .is_some_and(|w| w.queries >= limits.queries_per_worker)
        {
            self.worker = None;
        }
        // A worker that fails is dropped (killed) and never reused: scryer's state after an error is suspect, so
        // the next image gets a fresh one.
        let mut worker = match self.worker.take() {
            Some(w) => w,
            None => start(&rules.path, &rules.text, &rules.sandbox)?.0,
        };
        worker
            .send(&req)
            .map_err(|f| failure(&rules.path, f, &rules.sandbox))?;
        self.worker = Some(worker);
        Ok(())
    }

    /// The answer to the request [`SceneSession::submit`] sent.
    fn collect(&mut self) -> Result<Vec<SceneAnswer>, SymbolicError> {
        self.receive(("scene", "a scene"), |r| match r {
            Response::Adjusted {
                answers,
                build_seconds,
                query_seconds,
            } => Ok((answers, build_seconds, query_seconds)),
            other => Err(format!("{other:?}")),
        })
    }

    /// The pending request's answers: `take` picks them, with the build and query times, out of the response it
    /// expects (another response, as text, is the worker's fault); they come back sorted by id, reason and factor, without
    /// duplicates. `(what, asked)` name the request in the messages.
    fn receive<T: Answer>(
        &mut self,
        (what, asked): (&str, &str),
        take: impl FnOnce(Response) -> Result<(Vec<T>, f64, f64), String>,
    ) -> Result<Vec<T>, SymbolicError> {
        let rules = self.rules.clone();
        let Some(mut worker) = self.worker.take() else {
            return Err(SymbolicError::Crashed {
                path: rules.path.clone(),
                message: format!("no {what} request is pending"),
            });
        };
        let mut answers = match worker.receive(rules.sandbox.limits.query_timeout) {
            Ok(Response::Error(e)) => return Err(worker_error(&rules.path, e)),
            Ok(response) => match take(response) {
                Ok((answers, build_seconds, query_seconds)) => {
                    self.last_timing = Some((build_seconds, query_seconds));
                    answers
                }
                Err(other) => {
                    return Err(SymbolicError::Crashed {
                        path: rules.path.clone(),
                        message: format!("the rules worker answered {other} to {asked}"),
                    });
                }
            },
            Err(f) => return Err(failure(&rules.path, f, &rules.sandbox)),
        };
        worker.queries += 1;
        self.worker = Some(worker);
        answers.sort_by(|a, b| {
            let (a, b) = (a.key(), b.key());
            a.0.cmp(&b.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.total_cmp(&b.2))
        });
        answers.dedup();
        Ok(answers)
    }

    fn to_changes(answers: Vec<SceneAnswer>, order: &[usize]) -> Vec<Change> {
        answers
            .into_iter()
            .filter(|a| a.factor != 1.0)
            .map(|a| Change {
                action: if a.factor > 1.0 { "BOOST" } else { "PENALTY" },
                rule: "adjust/3".into(),
                factor: a.factor,
                target: order[a.id],
                other: None,
                both: false,
                reason: a.reason,
            })
            .collect()
    }

    /// The scene rule applications of one image, indexed like `dets`.
    pub fn changes(
        &mut self,
        dets: &[Detection],
        ctx: &ImageContext,
    ) -> Result<Vec<Change>, SymbolicError> {
        let (req, order) = self.request(dets, ctx);
        let answers = self.answers(req)?;
        Ok(Self::to_changes(answers, &order))
    }

    /// Time a fresh worker takes to start and load these rules (for the benchmark).
    pub fn restart(&mut self) -> Result<Duration, SymbolicError> {
        let t = Instant::now();
        self.worker = None;
        let rules = self.rules.clone();
        self.worker = Some(start(&rules.path, &rules.text, &rules.sandbox)?.0);
        Ok(t.elapsed())
    }
}

pub(crate) fn quote_atom(s: &str) -> String {
    nsod_types::quote::prolog_atom(s)
}

/// Prolog-ish text of a term, for messages and explanations.
pub(crate) fn term_text(t: &Term) -> String {
    // Iterative over lists and compounds: terms come from untrusted rule bases and may be deep.
    fn go(t: &Term, out: &mut String, depth: usize) {
        if depth > 200 {
            out.push_str("...");
            return;
        }
        match t {
            Term::Integer(i) => out.push_str(&i.to_string()),
            Term::Rational(r) => out.push_str(&r.to_string()),
            Term::Float(f) => out.push_str(&format!("{f:?}")),
            Term::Atom(a) => out.push_str(&atom_text(a)),
            Term::String(s) => out.push_str(&format!("{s:?}")),
            Term::List(items) => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(x, out, depth + 1);
                }
                out.push(']');
            }
            Term::Compound(f, args)
                if args.len() == 2 && ["/", "-", ":", "+", "*"].contains(&f.as_str()) =>
            {
                go(&args[0], out, depth + 1);
                out.push_str(f);
                go(&args[1], out, depth + 1);
            }
            Term::Compound(f, args) => {
                out.push_str(&atom_text(f));
                out.push('(');
                for (i, x) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(x, out, depth + 1);
                }
                out.push(')');
            }
            Term::Var(v) => {
                out.push('_');
                out.push_str(v.trim_start_matches('_'));
            }
            other => out.push_str(&format!("{other:?}")),
        }
    }
    let mut s = String::new();
    go(t, &mut s, 0);
    s
}

pub(crate) fn atom_text(a: &str) -> String {
    nsod_types::quote::prolog_atom_min(a)
}

pub(crate) fn number(t: &Term) -> Option<f64> {
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

pub(crate) fn atom(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.clone()),
        _ => None,
    }
}

/// An answer of the rules worker that adjusts one thing (a detection, a track): ordered by id, reason, factor.
trait Answer: PartialEq {
    fn key(&self) -> (u64, &str, f64);
}

impl Answer for SceneAnswer {
    fn key(&self) -> (u64, &str, f64) {
        (self.id as u64, &self.reason, self.factor)
    }
}

impl Answer for TrackAnswer {
    fn key(&self) -> (u64, &str, f64) {
        (self.id, &self.reason, self.factor)
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

    #[test]
    fn canonical_order_ignores_input_order() {
        use nsod_types::BBox;
        let a = Detection::new(1, "ship", 0.5, BBox::new(0.0, 0.0, 1.0, 1.0));
        let b = Detection::new(1, "ship", 0.9, BBox::new(5.0, 0.0, 6.0, 1.0));
        let c = Detection::new(0, "plane", 0.5, BBox::new(9.0, 0.0, 10.0, 1.0));
        let ids = |v: &[Detection]| -> Vec<f32> {
            canonical_order(v).iter().map(|&i| v[i].bbox.x1).collect()
        };
        let first = ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(first, vec![5.0, 9.0, 0.0]);
        assert_eq!(ids(&[c, a, b]), first);
    }
}
