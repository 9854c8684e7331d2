//! The rule-base allow-list (`nsod_symbolic::allow::check`) on arbitrary terms, as scryer's reader would hand them
//! over: no panic and no stack overflow on deep terms; a refusal names a line of the file; and what it accepts
//! never calls a forbidden predicate, never calls a variable and holds no directive but the allowed ones.
//!
//! The bytes are a small program that builds the terms (`Builder`): the reader itself is scryer's and runs in the
//! sandboxed worker, the allow-list is nsod's and is what stands between a rule base and the machine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_symbolic::allow::{ReadTerm, check};
use scryer_prolog::Term;
use std::collections::BTreeMap;

/// Names the builder picks from: control constructs, directives, allowed and forbidden built-ins, libraries,
/// scene predicates and the file's own.
const NAMES: &[&str] = &[
    ":-",
    ",",
    ";",
    "->",
    "*->",
    "\\+",
    "call",
    "findall",
    "forall",
    "maplist",
    "foldl",
    "catch",
    "once",
    "use_module",
    "library",
    "dynamic",
    "discontiguous",
    "initialization",
    "/",
    ":",
    "adjust",
    "detection",
    "relation",
    "class_count",
    "image_size",
    "gsd",
    "p",
    "q",
    "r",
    "is",
    "=",
    "<",
    "member",
    "append",
    "length",
    "between",
    "lists",
    "apply",
    "os",
    "shell",
    "halt",
    "open",
    "assertz",
    "retract",
    "consult",
    "write",
    "format",
    "abolish",
    "set_prolog_flag",
    "op",
    "true",
    "fail",
    "!",
    "$nsod_read",
    "[]",
    "{}",
];

/// Goals an accepted rule base must never call.
const FORBIDDEN: &[&str] = &[
    "shell",
    "halt",
    "open",
    "assertz",
    "retract",
    "consult",
    "write",
    "format",
    "abolish",
    "set_prolog_flag",
    "op",
    "initialization",
    "$nsod_read",
];

struct Builder<'a> {
    data: &'a [u8],
    at: usize,
    nodes: usize,
}

impl Builder<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    fn name(&mut self) -> String {
        NAMES[self.byte() as usize % NAMES.len()].to_owned()
    }
    fn term(&mut self, depth: usize) -> Term {
        self.nodes += 1;
        let op = self.byte();
        if depth > 24 || self.nodes > 4096 || self.done() {
            return Term::Atom(self.name());
        }
        match op % 10 {
            0 | 1 => Term::Atom(self.name()),
            2 => Term::Var(format!("_{}", self.byte() % 6)),
            3 => Term::integer(i64::from(self.byte() as i8)),
            4 => Term::Float(f64::from(self.byte()) / 8.0),
            5 => {
                let n = self.byte() % 4;
                Term::List((0..n).map(|_| self.term(depth + 1)).collect())
            }
            // A deep chain of one control construct, built without recursion (the allow-list's depth limit).
            6 => {
                let f = ["\\+", ",", ";", "->"][self.byte() as usize % 4];
                let n = u16::from_le_bytes([self.byte(), self.byte()]) as usize % 12_000;
                let leaf = self.term(depth + 1);
                let mut t = leaf;
                for _ in 0..n {
                    t = if f == "\\+" {
                        Term::Compound(f.into(), vec![t])
                    } else {
                        Term::Compound(f.into(), vec![Term::Atom("true".into()), t])
                    };
                }
                t
            }
            _ => {
                let f = self.name();
                let n = self.byte() % 4;
                Term::Compound(f, (0..n).map(|_| self.term(depth + 1)).collect())
            }
        }
    }
}

/// The goals of a clause body, through the control constructs.
fn goals<'t>(t: &'t Term, out: &mut Vec<&'t Term>) {
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        match t {
            Term::Compound(f, a)
                if a.len() == 2 && matches!(f.as_str(), "," | ";" | "->" | "*->") =>
            {
                stack.extend(a.iter())
            }
            Term::Compound(f, a) if a.len() == 1 && f == "\\+" => stack.push(&a[0]),
            _ => out.push(t),
        }
    }
}

/// Drops a term without recursion: scryer's `Term` drops recursively, and a chain thousands deep would overflow
/// the stack of this harness (under AddressSanitizer's large frames) after `check` has handled it (the first
/// crash this target found, fuzz/regressions/rules/).
fn dismantle(t: Term) {
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        if let Term::Compound(_, args) | Term::List(args) = t {
            stack.extend(args);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Builder {
        data,
        at: 0,
        nodes: 0,
    };
    let mut terms = Vec::new();
    while !b.done() && terms.len() < 64 {
        let line = terms.len() * 2 + 1;
        terms.push(ReadTerm {
            line,
            term: b.term(0),
            names: BTreeMap::new(),
        });
    }
    match check(&terms) {
        Err(v) => {
            assert!(
                terms.iter().any(|t| t.line == v.line) || v.line == 0,
                "line {} of no term: {}",
                v.line,
                v.message
            );
            assert!(!v.message.is_empty());
        }
        Ok(checked) => {
            assert!(checked.clauses <= terms.len());
            for t in &terms {
                match &t.term {
                    Term::Compound(f, a) if f == ":-" && a.len() == 1 => {
                        let d = match &a[0] {
                            Term::Compound(n, _) | Term::Atom(n) => n.as_str(),
                            _ => "",
                        };
                        assert!(
                            matches!(d, "dynamic" | "discontiguous" | "use_module"),
                            "directive {d} accepted"
                        );
                    }
                    Term::Compound(f, a) if f == ":-" && a.len() == 2 => {
                        let mut g = Vec::new();
                        goals(&a[1], &mut g);
                        for goal in g {
                            match goal {
                                Term::Var(v) => {
                                    panic!("the variable {v} is called and was accepted")
                                }
                                Term::Atom(n) | Term::Compound(n, _) => {
                                    assert!(
                                        !FORBIDDEN.contains(&n.as_str()),
                                        "{n} is called and was accepted"
                                    )
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for t in terms {
        dismantle(t.term);
    }
});
