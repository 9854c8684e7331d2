//! The allow-list a rule base must pass before anything in it runs.
//!
//! The rule base is read as terms (scryer's reader, in the sandboxed child) and checked here, in plain Rust, before
//! a single clause is loaded: every directive must be one of `discontiguous/1`, `dynamic/1`, `use_module/1,2` of an
//! allowed library, and every goal in every clause body must be a control construct, an allowed built-in or
//! library predicate, nsod's scene predicates, or a predicate the file itself defines. Closures passed to
//! meta-predicates (`maplist/N`, `foldl/N`, `call/N`, ...) must be static (an atom or compound, never a variable)
//! and resolve to an allowed predicate as well. Everything else is refused with the line and the reason: this is an
//! allow-list, not a deny-list, so a predicate nobody thought of (`shell/1`, `open/3`, `assertz/1`, `halt/0`,
//! `consult/1`, `initialization/1`, module-qualified goals such as `os:shell/1`, ...) cannot slip through.

use scryer_prolog::Term;
use std::collections::{BTreeMap, BTreeSet};

/// A predicate indicator, `name/arity`.
pub type Pi = (String, usize);

fn pi_text(p: &Pi) -> String {
    format!("{}/{}", crate::engine::atom_text(&p.0), p.1)
}

/// Libraries a rule base may name in `use_module/1,2`. All of them are loaded for every rule base, so naming them
/// is only for portability (SWI-Prolog's `library(apply)` holds what scryer keeps in `library(lists)`).
pub const LIBRARIES: [&str; 8] = [
    "lists", "apply", "between", "pairs", "ordsets", "assoc", "dif", "error",
];

/// Predicates the rule base may call: pure built-ins (no I/O, no database, no engine control) and the pure parts of
/// the libraries above. Meta-predicates are in [`META`] as well, which says which arguments are goals.
pub const BUILTINS: &[(&str, usize)] = &[
    // control
    ("true", 0),
    ("fail", 0),
    ("false", 0),
    ("!", 0),
    ("throw", 1),
    // unification and comparison
    ("=", 2),
    ("\\=", 2),
    ("==", 2),
    ("\\==", 2),
    ("@<", 2),
    ("@>", 2),
    ("@=<", 2),
    ("@>=", 2),
    ("compare", 3),
    ("unify_with_occurs_check", 2),
    ("subsumes_term", 2),
    ("dif", 2),
    // types
    ("var", 1),
    ("nonvar", 1),
    ("atom", 1),
    ("number", 1),
    ("integer", 1),
    ("float", 1),
    ("atomic", 1),
    ("compound", 1),
    ("callable", 1),
    ("is_list", 1),
    ("ground", 1),
    ("must_be", 2),
    // arithmetic
    ("is", 2),
    ("=:=", 2),
    ("=\\=", 2),
    ("<", 2),
    (">", 2),
    ("=<", 2),
    (">=", 2),
    ("succ", 2),
    // terms
    ("functor", 3),
    ("arg", 3),
    ("=..", 2),
    ("copy_term", 2),
    ("term_variables", 2),
    // atoms and strings
    ("atom_codes", 2),
    ("atom_chars", 2),
    ("char_code", 2),
    ("atom_length", 2),
    ("atom_concat", 3),
    ("sub_atom", 5),
    ("number_codes", 2),
    ("number_chars", 2),
    // sorting
    ("sort", 2),
    ("msort", 2),
    ("keysort", 2),
    ("sort", 4),
    // library(between)
    ("between", 3),
    ("numlist", 3),
    // library(lists)
    ("member", 2),
    ("memberchk", 2),
    ("append", 2),
    ("append", 3),
    ("select", 3),
    ("reverse", 2),
    ("length", 2),
    ("nth0", 3),
    ("nth1", 3),
    ("nth0", 4),
    ("nth1", 4),
    ("last", 2),
    ("sum_list", 2),
    ("list_max", 2),
    ("list_min", 2),
    ("list_to_set", 2),
    ("same_length", 2),
    ("transpose", 2),
    ("permutation", 2),
    // library(pairs)
    ("pairs_keys_values", 3),
    ("pairs_keys", 2),
    ("pairs_values", 2),
    // library(ordsets)
    ("list_to_ord_set", 2),
    ("ord_union", 3),
    ("ord_subtract", 3),
    ("ord_intersection", 3),
    ("ord_memberchk", 2),
    ("ord_insert", 3),
    ("ord_subset", 2),
    ("ord_empty", 1),
    // library(assoc)
    ("empty_assoc", 1),
    ("put_assoc", 4),
    ("get_assoc", 3),
    ("list_to_assoc", 2),
    ("assoc_to_list", 2),
    ("assoc_to_keys", 2),
    ("assoc_to_values", 2),
];

/// Facts nsod provides, per image (the first five) and per set of tracks (`nsod track`: the others); see the crate
/// docs. A rule base may call them but not define them.
pub const SCENE: [(&str, usize); 12] = [
    ("detection", 8),
    ("relation", 3),
    ("class_count", 2),
    ("image_size", 2),
    ("gsd", 1),
    ("track", 5),
    ("track_speed_px", 2),
    ("track_speed_m", 2),
    ("track_heading", 2),
    ("track_displacement_px", 2),
    ("track_displacement_m", 2),
    ("track_relation", 5),
];

/// What a meta-predicate argument is.
#[derive(Clone, Copy)]
enum Arg {
    /// Data, not checked.
    Data,
    /// A goal.
    Goal,
    /// A goal that may be `V^Goal` (bagof/setof).
    CaretGoal,
    /// A closure called with this many extra arguments.
    Closure(usize),
}

use Arg::{CaretGoal, Closure, Data, Goal};

/// Meta-predicates and which of their arguments are goals or closures.
const META: &[(&str, &[Arg])] = &[
    (",", &[Goal, Goal]),
    (";", &[Goal, Goal]),
    ("->", &[Goal, Goal]),
    ("*->", &[Goal, Goal]),
    ("\\+", &[Goal]),
    ("once", &[Goal]),
    ("findall", &[Data, Goal, Data]),
    ("findall", &[Data, Goal, Data, Data]),
    ("forall", &[Goal, Goal]),
    ("bagof", &[Data, CaretGoal, Data]),
    ("setof", &[Data, CaretGoal, Data]),
    ("catch", &[Goal, Data, Goal]),
    ("call", &[Closure(0)]),
    ("call", &[Closure(1), Data]),
    ("call", &[Closure(2), Data, Data]),
    ("call", &[Closure(3), Data, Data, Data]),
    ("maplist", &[Closure(1), Data]),
    ("maplist", &[Closure(2), Data, Data]),
    ("maplist", &[Closure(3), Data, Data, Data]),
    ("maplist", &[Closure(4), Data, Data, Data, Data]),
    ("foldl", &[Closure(3), Data, Data, Data]),
    ("foldl", &[Closure(4), Data, Data, Data, Data]),
    ("foldl", &[Closure(5), Data, Data, Data, Data, Data]),
];

fn meta(name: &str, arity: usize) -> Option<&'static [Arg]> {
    META.iter()
        .find(|(n, a)| *n == name && a.len() == arity)
        .map(|(_, a)| *a)
}

/// Why a well-known predicate is refused (the generic reason covers everything else).
fn known_reason(name: &str) -> Option<&'static str> {
    Some(match name {
        "shell" | "process_create" | "process_wait" | "process_kill" | "getenv" | "setenv"
        | "unsetenv" | "pid" | "sleep" => "it reaches the operating system",
        "open" | "close" | "read" | "read_term" | "write" | "writeq" | "print" | "write_term"
        | "write_canonical" | "nl" | "format" | "put_char" | "get_char" | "see" | "tell"
        | "delete_file" | "rename_file" | "make_directory" | "directory_files" | "file_exists"
        | "directory_exists" | "phrase_from_file" | "http_open" | "socket_client_open"
        | "socket_server_open" | "set_input" | "set_output" | "flush_output" => {
            "it does input/output"
        }
        "assert" | "asserta" | "assertz" | "retract" | "retractall" | "abolish" | "bb_put"
        | "bb_b_put" | "bb_get" | "erase" | "recorda" | "recordz" => {
            "it changes the database (rules must not rewrite themselves)"
        }
        "halt"
        | "abort"
        | "consult"
        | "ensure_loaded"
        | "load_files"
        | "use_module"
        | "initialization"
        | "call_with_inference_limit"
        | "set_prolog_flag"
        | "op"
        | "call_cleanup"
        | "setup_call_cleanup"
        | "use_foreign_module"
        | "foreign_struct" => "it controls the Prolog engine",
        _ => return None,
    })
}

/// A refused rule base: the line of the offending term (1-based) and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub line: usize,
    pub message: String,
}

/// One term read from the rule base.
#[derive(Debug, Clone)]
pub struct ReadTerm {
    /// 1-based line where the term starts.
    pub line: usize,
    pub term: Term,
    /// Variable names as written (`_A` -> `X`), for messages.
    pub names: BTreeMap<String, String>,
}

/// What the check learnt about an accepted rule base.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// Predicates the file defines (clauses or `dynamic/1`).
    pub defined: BTreeSet<Pi>,
    /// Predicates declared `dynamic` (they exist even without clauses).
    pub dynamic: BTreeSet<Pi>,
    /// True when the file defines `adjust/3` (scene rules).
    pub scene_rules: bool,
    /// True when the file defines `adjust_track/3` (rules over tracks).
    pub track_rules: bool,
    /// Relations scene rules can ask about: `None` when some `relation/3` goal leaves the relation open.
    pub relations_used: Option<BTreeSet<String>>,
    /// Number of clauses.
    pub clauses: usize,
}

/// Deepest nesting of control constructs accepted in a clause body.
pub const MAX_DEPTH: usize = 10_000;

/// Checks every term of a rule base (see the module docs).
pub fn check(terms: &[ReadTerm]) -> Result<Checked, Violation> {
    let builtins: BTreeSet<Pi> = BUILTINS
        .iter()
        .map(|(n, a)| ((*n).to_owned(), *a))
        .chain(META.iter().map(|(n, a)| ((*n).to_owned(), a.len())))
        .collect();
    let scene: BTreeSet<Pi> = SCENE.iter().map(|(n, a)| ((*n).to_owned(), *a)).collect();
    let mut out = Checked::default();
    // Pass 1: directives and heads (a body may call a predicate defined further down).
    let mut bodies: Vec<(usize, &Term, &BTreeMap<String, String>)> = Vec::new();
    for t in terms {
        let v = |message: String| Violation {
            line: t.line,
            message,
        };
        match &t.term {
            Term::Compound(f, args) if f == ":-" && args.len() == 1 => {
                directive(&args[0], &mut out).map_err(v)?;
            }
            Term::Compound(f, args) if f == "?-" && args.len() == 1 => {
                return Err(v("queries (?- Goal) are not allowed in a rule base".into()));
            }
            Term::Compound(f, args) if f == "-->" && args.len() == 2 => {
                return Err(v("DCG rules (-->) are not supported in a rule base".into()));
            }
            Term::Compound(f, args) if f == ":-" && args.len() == 2 => {
                let pi = head(&args[0], &builtins, &scene).map_err(v)?;
                out.defined.insert(pi);
                out.clauses += 1;
                bodies.push((t.line, &args[1], &t.names));
            }
            other => {
                let pi = head(other, &builtins, &scene).map_err(v)?;
                out.defined.insert(pi);
                out.clauses += 1;
            }
        }
    }
    for pi in &out.dynamic {
        out.defined.insert(pi.clone());
    }
    // Pass 2: every goal of every body.
    let mut relations: Option<BTreeSet<String>> = Some(BTreeSet::new());
    for (line, body, names) in bodies {
        let mut ctx = BodyCheck {
            builtins: &builtins,
            scene: &scene,
            defined: &out.defined,
            names,
            relations: &mut relations,
        };
        ctx.body(body)
            .map_err(|message| Violation { line, message })?;
    }
    out.scene_rules = out.defined.contains(&("adjust".to_owned(), 3));
    out.track_rules = out.defined.contains(&("adjust_track".to_owned(), 3));
    out.relations_used = relations;
    Ok(out)
}

fn directive(d: &Term, out: &mut Checked) -> Result<(), String> {
    let allowed =
        "only discontiguous/1, dynamic/1 and use_module/1,2 of an allowed library are accepted";
    match d {
        Term::Compound(f, args) if (f == "discontiguous" || f == "dynamic") && args.len() == 1 => {
            let mut pis = Vec::new();
            indicators(&args[0], &mut pis)?;
            if f == "dynamic" {
                for pi in pis {
                    if pi.0.starts_with('$') {
                        return Err(format!("{} is reserved", pi_text(&pi)));
                    }
                    out.dynamic.insert(pi);
                }
            }
            Ok(())
        }
        Term::Compound(f, args) if f == "use_module" && (args.len() == 1 || args.len() == 2) => {
            match &args[0] {
                Term::Compound(l, a) if l == "library" && a.len() == 1 => match &a[0] {
                    Term::Atom(name) if LIBRARIES.contains(&name.as_str()) => Ok(()),
                    other => Err(format!(
                        "use_module(library({})) is not allowed: the libraries a rule base may use are {}",
                        crate::engine::term_text(other),
                        LIBRARIES.join(", ")
                    )),
                },
                other => Err(format!(
                    "use_module({}) is not allowed: only library(Name) of {}",
                    crate::engine::term_text(other),
                    LIBRARIES.join(", ")
                )),
            }
        }
        Term::Compound(f, args) => {
            let why = known_reason(f)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            Err(format!(
                "directive {}/{} is not allowed{why}: {allowed}",
                crate::engine::atom_text(f),
                args.len()
            ))
        }
        Term::Atom(a) => {
            let why = known_reason(a)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            Err(format!(
                "directive {}/0 is not allowed{why}: {allowed}",
                crate::engine::atom_text(a)
            ))
        }
        other => Err(format!(
            "directive {} is not allowed: {allowed}",
            crate::engine::term_text(other)
        )),
    }
}

/// `F/N`, a list or a conjunction of them.
fn indicators(t: &Term, out: &mut Vec<Pi>) -> Result<(), String> {
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        match t {
            Term::List(items) => stack.extend(items.iter()),
            Term::Compound(f, a) if f == "," && a.len() == 2 => stack.extend(a.iter()),
            Term::Compound(f, a) if f == "/" && a.len() == 2 => match (&a[0], &a[1]) {
                (Term::Atom(name), Term::Integer(n)) => {
                    let arity = n
                        .to_string()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n <= 255)
                        .ok_or_else(|| format!("arity {n} is out of range 0..255"))?;
                    out.push((name.clone(), arity));
                }
                _ => {
                    return Err(format!(
                        "{} is not a predicate indicator Name/Arity",
                        crate::engine::term_text(t)
                    ));
                }
            },
            other => {
                return Err(format!(
                    "{} is not a predicate indicator Name/Arity",
                    crate::engine::term_text(other)
                ));
            }
        }
    }
    Ok(())
}

fn head(h: &Term, builtins: &BTreeSet<Pi>, scene: &BTreeSet<Pi>) -> Result<Pi, String> {
    let pi = match h {
        Term::Atom(a) => (a.clone(), 0),
        Term::Compound(f, args) => (f.clone(), args.len()),
        Term::Var(_) => return Err("a clause head must not be a variable".into()),
        other => {
            return Err(format!(
                "{} cannot be a clause head",
                crate::engine::term_text(other)
            ));
        }
    };
    if pi.0.starts_with('$') {
        return Err(format!("{} is reserved", pi_text(&pi)));
    }
    if pi.0 == ":" {
        return Err("module-qualified clauses (Module:Head) are not allowed".into());
    }
    if scene.contains(&pi) {
        return Err(format!(
            "{} is a scene fact nsod provides for each image; a rule base may call it but not define it",
            pi_text(&pi)
        ));
    }
    if builtins.contains(&pi) || meta_or_control(&pi.0) {
        return Err(format!(
            "{} is a built-in and cannot be redefined",
            pi_text(&pi)
        ));
    }
    // A refused built-in must not come back as the file's own predicate: the calls to it would pass as calls to a
    // predicate the file defines (found by the `rules` fuzz target with `retract(..) :- retract(..)`).
    if let Some(why) = known_reason(&pi.0) {
        return Err(format!(
            "{} names a built-in rule bases may not use ({why}), so it cannot be defined either",
            pi_text(&pi)
        ));
    }
    Ok(pi)
}

struct BodyCheck<'a> {
    builtins: &'a BTreeSet<Pi>,
    scene: &'a BTreeSet<Pi>,
    defined: &'a BTreeSet<Pi>,
    names: &'a BTreeMap<String, String>,
    relations: &'a mut Option<BTreeSet<String>>,
}

impl BodyCheck<'_> {
    fn var_name(&self, v: &str) -> String {
        self.names.get(v).cloned().unwrap_or_else(|| v.to_owned())
    }

    /// Walks a body iteratively (no recursion: nesting depth is input-controlled).
    fn body(&mut self, body: &Term) -> Result<(), String> {
        let mut stack: Vec<(&Term, usize)> = vec![(body, 0)];
        while let Some((goal, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!(
                    "a clause body is nested more than {MAX_DEPTH} levels deep"
                ));
            }
            let (name, args): (&str, &[Term]) = match goal {
                Term::Var(v) => {
                    return Err(format!(
                        "the variable {} is called as a goal: call/N on a goal that is not written in the file is not allowed",
                        self.var_name(v)
                    ));
                }
                Term::Atom(a) => (a.as_str(), &[]),
                Term::Compound(f, args) => (f.as_str(), args.as_slice()),
                other => {
                    return Err(format!("{} is not a goal", crate::engine::term_text(other)));
                }
            };
            if name == ":" && args.len() == 2 {
                return Err(format!(
                    "module-qualified goal {} is not allowed",
                    crate::engine::term_text(goal)
                ));
            }
            if let Some(spec) = meta(name, args.len()) {
                // Goals are pushed last first, so that the first offending goal in the text is the one reported.
                let mut goals = Vec::new();
                for (arg, kind) in args.iter().zip(spec) {
                    match kind {
                        Data => {}
                        Goal => goals.push(arg),
                        CaretGoal => {
                            let mut g = arg;
                            while let Term::Compound(f, a) = g
                                && f == "^"
                                && a.len() == 2
                            {
                                g = &a[1];
                            }
                            goals.push(g);
                        }
                        Closure(extra) => self.closure(arg, *extra, name, args.len())?,
                    }
                }
                stack.extend(goals.into_iter().rev().map(|g| (g, depth + 1)));
                continue;
            }
            let pi = (name.to_owned(), args.len());
            if self.scene.contains(&pi) {
                if name == "relation" {
                    self.note_relation(&args[0]);
                }
                continue;
            }
            if self.builtins.contains(&pi) || self.defined.contains(&pi) {
                continue;
            }
            return Err(refusal(&pi));
        }
        Ok(())
    }

    fn note_relation(&mut self, r: &Term) {
        match (r, self.relations.as_mut()) {
            (Term::Atom(a), Some(set)) => {
                set.insert(a.clone());
            }
            (Term::Atom(_), None) => {}
            _ => *self.relations = None,
        }
    }

    fn closure(&mut self, c: &Term, extra: usize, meta: &str, arity: usize) -> Result<(), String> {
        let (name, n, args): (&str, usize, &[Term]) = match c {
            Term::Atom(a) => (a.as_str(), 0, &[]),
            Term::Compound(f, args) => (f.as_str(), args.len(), args.as_slice()),
            Term::Var(v) => {
                return Err(format!(
                    "{meta}/{arity} is given the variable {} as its goal: call/N on a goal that is not written in the file is not allowed",
                    self.var_name(v)
                ));
            }
            other => {
                return Err(format!(
                    "{meta}/{arity} is given {}, which is not callable",
                    crate::engine::term_text(other)
                ));
            }
        };
        let pi = (name.to_owned(), n + extra);
        if meta_or_control(name) {
            return Err(format!(
                "{meta}/{arity} is given the closure {}, a meta-call through a closure is not allowed",
                crate::engine::term_text(c)
            ));
        }
        if self.scene.contains(&pi) {
            if name == "relation" {
                match args.first() {
                    Some(r) => self.note_relation(r),
                    None => *self.relations = None,
                }
            }
            return Ok(());
        }
        if self.builtins.contains(&pi) || self.defined.contains(&pi) {
            return Ok(());
        }
        Err(refusal(&pi))
    }
}

fn meta_or_control(name: &str) -> bool {
    META.iter().any(|(n, _)| *n == name) || matches!(name, "!" | ":")
}

fn refusal(pi: &Pi) -> String {
    match known_reason(&pi.0) {
        Some(why) => format!("calls {}, which is not allowed: {why}", pi_text(pi)),
        None => format!(
            "calls {}, which is neither defined in this file nor an allowed built-in (see rules/README.md)",
            pi_text(pi)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> Term {
        Term::Atom(s.into())
    }
    fn c(f: &str, args: Vec<Term>) -> Term {
        Term::Compound(f.into(), args)
    }
    fn var(s: &str) -> Term {
        Term::Var(s.into())
    }
    fn read(terms: Vec<Term>) -> Vec<ReadTerm> {
        terms
            .into_iter()
            .enumerate()
            .map(|(i, term)| ReadTerm {
                line: i + 1,
                term,
                names: BTreeMap::new(),
            })
            .collect()
    }

    #[test]
    fn accepts_clauses_over_builtins_and_own_predicates() {
        let t = read(vec![
            c(
                ":-",
                vec![c("use_module", vec![c("library", vec![atom("lists")])])],
            ),
            c("is_a", vec![atom("ship"), atom("vessel")]),
            c(
                ":-",
                vec![
                    c("adjust", vec![var("_A"), Term::Float(0.8), atom("lonely")]),
                    c(
                        ",",
                        vec![
                            c("detection", vec![var("_A"); 8]),
                            c(
                                "\\+",
                                vec![c(
                                    "relation",
                                    vec![atom("located_near"), var("_A"), var("_B")],
                                )],
                            ),
                        ],
                    ),
                ],
            ),
            c(
                ":-",
                vec![
                    atom("helper"),
                    c("maplist", vec![atom("is_a_vessel"), Term::List(vec![])]),
                ],
            ),
            c(
                ":-",
                vec![
                    c("is_a_vessel", vec![var("_X")]),
                    c("is_a", vec![var("_X"), atom("vessel")]),
                ],
            ),
        ]);
        let ok = check(&t).unwrap();
        assert!(ok.scene_rules);
        assert_eq!(
            ok.relations_used,
            Some(BTreeSet::from(["located_near".to_owned()]))
        );
        assert_eq!(ok.clauses, 4);
    }

    #[test]
    fn refuses_what_reaches_outside_with_the_line_and_reason() {
        let cases: Vec<(Term, &str)> = vec![
            (
                c(
                    ":-",
                    vec![c("initialization", vec![c("shell", vec![atom("x")])])],
                ),
                "directive initialization/1 is not allowed (it controls the Prolog engine)",
            ),
            (
                c(":-", vec![atom("p"), c("shell", vec![atom("ls")])]),
                "calls shell/1, which is not allowed: it reaches the operating system",
            ),
            (
                c(":-", vec![atom("p"), c("assertz", vec![atom("q")])]),
                "calls assertz/1, which is not allowed: it changes the database",
            ),
            (
                c(
                    ":-",
                    vec![
                        atom("p"),
                        c(":", vec![atom("os"), c("shell", vec![atom("ls")])]),
                    ],
                ),
                "module-qualified goal",
            ),
            (
                c(":-", vec![atom("p"), c("call", vec![var("_G")])]),
                "call/N on a goal that is not written in the file",
            ),
            (
                c(
                    ":-",
                    vec![atom("p"), c("maplist", vec![atom("call"), var("_L")])],
                ),
                "a meta-call through a closure is not allowed",
            ),
            (
                c(
                    ":-",
                    vec![c("use_module", vec![c("library", vec![atom("os")])])],
                ),
                "use_module(library(os)) is not allowed",
            ),
            (
                c(
                    ":-",
                    vec![atom("p"), c("membr", vec![var("_X"), var("_Y")])],
                ),
                "calls membr/2, which is neither defined in this file nor an allowed built-in",
            ),
            (
                c("detection", vec![atom("a"); 8]),
                "detection/8 is a scene fact",
            ),
            (c("append", vec![atom("a"); 3]), "append/3 is a built-in"),
            (
                c(
                    ":-",
                    vec![c("retract", vec![var("_X")]), c("retract", vec![var("_X")])],
                ),
                "retract/1 names a built-in rule bases may not use (it changes the database",
            ),
            (
                atom("halt"),
                "halt/0 names a built-in rule bases may not use",
            ),
            (
                c(",", vec![atom("a"), atom("b")]),
                "','/2 is a built-in and cannot be redefined",
            ),
        ];
        for (term, expected) in cases {
            let mut terms = read(vec![atom("ok")]);
            terms.push(ReadTerm {
                line: 7,
                term,
                names: BTreeMap::new(),
            });
            let err = check(&terms).unwrap_err();
            assert_eq!(err.line, 7);
            assert!(err.message.contains(expected), "{}", err.message);
        }
    }

    #[test]
    fn deep_bodies_are_refused_without_recursion() {
        let mut body = atom("true");
        for _ in 0..(MAX_DEPTH + 5) {
            body = c("\\+", vec![body]);
        }
        let t = read(vec![c(":-", vec![atom("p"), body])]);
        assert!(check(&t).unwrap_err().message.contains("nested more than"));
    }

    #[test]
    fn an_open_relation_goal_means_every_relation_is_needed() {
        let t = read(vec![c(
            ":-",
            vec![
                c("adjust", vec![var("_I"), Term::Float(1.1), atom("x")]),
                c("relation", vec![var("_R"), var("_I"), var("_O")]),
            ],
        )]);
        assert_eq!(check(&t).unwrap().relations_used, None);
    }
}
