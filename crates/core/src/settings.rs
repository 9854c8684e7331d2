//! The command line's side of the settings model: each command's setting flags are generated from the one table
//! (`nsod_pipeline::settings::SETTINGS`), so that a flag, its TOML key and its request parameter can never drift
//! apart, and every command layers its values the same way (`Layers`: defaults < environment < `--config` < flags).

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use nsod_pipeline::PipelineConfig;
use nsod_pipeline::settings::{Form, Group, Layers, SETTINGS, Setting, Source};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;

/// The settings a command offers as flags (by group) and its own defaults.
pub trait Selection: 'static {
    const GROUPS: &'static [Group];
    /// The command's defaults (nsod's, or its own output folder...).
    fn defaults() -> PipelineConfig {
        PipelineConfig::default()
    }
    fn offers(s: &Setting) -> bool {
        s.flag.is_some() && Self::GROUPS.contains(&s.group)
    }
}

/// The setting flags of a command: the values given on the command line, in table order.
#[derive(Debug, Clone)]
pub struct SettingFlags<S> {
    pub given: Vec<(&'static Setting, String)>,
    _selection: PhantomData<S>,
}

impl<S> Default for SettingFlags<S> {
    fn default() -> Self {
        Self {
            given: Vec::new(),
            _selection: PhantomData,
        }
    }
}

impl<S: Selection> SettingFlags<S> {
    /// The given settings as `(setting, value)` for [`Layers::flags`].
    pub fn values(&self) -> impl Iterator<Item = (&'static Setting, &str)> {
        self.given.iter().map(|(s, v)| (*s, v.as_str()))
    }

    /// Given on the command line.
    pub fn has(&self, key: &str) -> bool {
        self.given.iter().any(|(s, _)| s.key == key)
    }
}

impl<S: Selection> FromArgMatches for SettingFlags<S> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for s in SETTINGS.iter().filter(|s| S::offers(s)) {
            if m.value_source(s.key) != Some(clap::parser::ValueSource::CommandLine) {
                continue;
            }
            let value = match s.form {
                Form::Switch(_) => s.switch_text().unwrap_or("true").to_owned(),
                Form::Value => m.get_one::<String>(s.key).cloned().unwrap_or_default(),
            };
            given.push((s, value));
        }
        Ok(Self {
            given,
            _selection: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<S: Selection> Args for SettingFlags<S> {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        let defaults = S::defaults();
        for s in SETTINGS.iter().filter(|s| S::offers(s)) {
            let Some(flag) = s.flag else { continue };
            let mut arg = Arg::new(s.key)
                .long(flag)
                .help(s.help.strip_suffix('.').unwrap_or(s.help));
            arg = match s.form {
                Form::Switch(_) => arg.action(ArgAction::SetTrue),
                Form::Value => {
                    let mut a = arg
                        .action(ArgAction::Set)
                        .num_args(1)
                        .value_name(s.value_name);
                    let default = s.text(&defaults);
                    if !default.is_empty() {
                        a = a.default_value(default);
                    }
                    a
                }
            };
            // One way to say it: the rule base and no rules at all are not both asked for.
            if s.key == "rules.enabled" && S::offers(by_key("rules.file")) {
                arg = arg.conflicts_with("rules.file");
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn by_key(key: &str) -> &'static Setting {
    nsod_pipeline::settings::by_key(key).expect("a key of the table")
}

/// `--config FILE` and `--print-config`, on every command that takes settings.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Run configuration (TOML; every setting, see config/run.example.toml). Flags override it; it overrides the
    /// environment ($NSOD_MODEL, $NSOD_RULES, $NSOD_METRICS_ADDR) and the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML, each value with where it came from, and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The values of a command: its defaults, the environment, `--config`, then its flags; validated. The error is one
/// line naming the flag, variable or key.
pub fn layers<S: Selection>(
    config: &ConfigArgs,
    flags: &SettingFlags<S>,
) -> Result<Layers, String> {
    let mut l = Layers::new(S::defaults())
        .environment(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    if let Some(path) = &config.config {
        l = l.file(path).map_err(|e| nsod_pipeline::error_chain(&e))?;
    }
    l = l.flags(flags.values()).map_err(|e| e.to_string())?;
    l.validate().map_err(|e| e.to_string())?;
    Ok(l)
}

/// The configuration as TOML with where each value came from, for `--print-config`: the TOML itself (valid input
/// for `--config`), then one comment line per setting not at its default.
pub fn print_config(l: &Layers) -> String {
    let mut out = l.config.to_toml();
    let sources: BTreeMap<&str, Source> = l.sources().into_iter().collect();
    let set: Vec<String> = SETTINGS
        .iter()
        .filter(|s| {
            sources
                .get(s.key)
                .is_some_and(|src| *src != Source::Default)
        })
        .map(|s| {
            format!(
                "# {} = {} (from {})",
                s.key,
                s.text(&l.config),
                match sources[s.key] {
                    Source::Environment => "the environment",
                    Source::File => "the configuration file",
                    Source::Flag => "the command line",
                    Source::Request => "the request",
                    Source::Default => "the defaults",
                }
            )
        })
        .collect();
    if !set.is_empty() {
        out.push_str("\n# Not defaults:\n");
        out.push_str(&set.join("\n"));
        out.push('\n');
    }
    out
}

macro_rules! selection {
    ($name:ident, $command:literal, [$($group:ident),*] $(, defaults: |$c:ident| $body:block)?) => {
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl Selection for $name {
            const GROUPS: &'static [Group] = &[$(Group::$group),*];
            $(fn defaults() -> PipelineConfig {
                let mut $c = PipelineConfig::default();
                $body
                $c
            })?
        }
    };
}

selection!(
    InferSet,
    "infer",
    [
        Model,
        Names,
        Detect,
        Batch,
        RuleBase,
        Rules,
        Graph,
        GraphOptions,
        Out,
        RunFolder,
        Raster,
        Metrics
    ]
);
selection!(ServeSet, "serve", [Model, Names, Detect, RuleBase, Rules, Raster, Serve], defaults: |c| {
    // A server's workers share the cores (0 here: divided among them at start).
    c.threads = 0;
});
selection!(SymbolicSet, "symbolic", [Names, RuleBase, Out], defaults: |c| {
    c.output.out = "runs/symbolic".into();
});
selection!(KgSet, "kg", [Names, GraphOptions, Out], defaults: |c| {
    c.output.out = "runs/kg".into();
    c.rules.enabled = false;
    c.kg.enabled = true;
});
selection!(MetricsSet, "train-monitor", [Metrics]);
selection!(QuantizeSet, "quantize", [Model, Detect, Raster]);
selection!(
    TrackSet,
    "track",
    [Model, Names, Detect, Batch, RuleBase, Rules, Graph, Out, RunFolder, Raster, Metrics, Track],
    defaults: |c| {
        c.output.out = "runs/track".into();
    }
);

/// Whether a command offers a setting.
type Offers = fn(&Setting) -> bool;

/// The commands that take setting flags, with their selections.
fn commands() -> Vec<(&'static str, Offers)> {
    vec![
        ("infer", InferSet::offers),
        ("plan", InferSet::offers),
        ("serve", ServeSet::offers),
        ("symbolic", SymbolicSet::offers),
        ("kg", KgSet::offers),
        ("train-monitor", MetricsSet::offers),
        ("eval", MetricsSet::offers),
        ("track", TrackSet::offers),
        ("quantize", QuantizeSet::offers),
    ]
}

/// `nsod settings`: the table as text, or as JSON with every command's long flags (from `cli`, clap's own
/// definition of the command line).
pub fn listing(json: bool, cli: clap::Command) -> String {
    let defaults = PipelineConfig::default();
    let cmds = commands();
    let taken_by = |s: &Setting| -> Vec<&'static str> {
        cmds.iter()
            .filter(|(_, offers)| offers(s))
            .map(|(c, _)| *c)
            .collect()
    };
    if json {
        let mut flags = serde_json::Map::new();
        let mut walk = vec![(String::new(), cli)];
        while let Some((prefix, mut cmd)) = walk.pop() {
            cmd.build();
            for sub in cmd.get_subcommands() {
                let name = format!("{prefix}{}", sub.get_name());
                if sub.get_name() == "help" || sub.is_hide_set() {
                    continue;
                }
                walk.push((format!("{name} "), sub.clone()));
            }
            if prefix.is_empty() {
                continue;
            }
            let mut longs: Vec<String> = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .collect();
            longs.sort();
            flags.insert(prefix.trim_end().to_owned(), serde_json::json!(longs));
        }
        let settings: Vec<serde_json::Value> = SETTINGS
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key": s.key,
                    "flag": s.flag.map(|f| format!("--{f}")),
                    "kind": s.kind.as_str(),
                    "request": s.request,
                    "default": s.text(&defaults),
                    "commands": taken_by(s),
                })
            })
            .collect();
        let environment: serde_json::Map<String, serde_json::Value> =
            nsod_pipeline::settings::ENVIRONMENT
                .iter()
                .map(|(v, k)| ((*v).to_owned(), serde_json::json!(k)))
                .collect();
        let doc = serde_json::json!({
            "settings": settings,
            "environment": environment,
            "commands": flags,
        });
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
    let mut out = String::new();
    for s in SETTINGS {
        out.push_str(&format!(
            "{:<32} {:<24} {:<10} {:<12} {:<24} {}\n",
            s.key,
            s.flag.map_or_else(|| "-".to_owned(), |f| format!("--{f}")),
            s.kind.as_str(),
            s.request.unwrap_or("-"),
            {
                let d = s.text(&defaults);
                if d.is_empty() { "-".to_owned() } else { d }
            },
            taken_by(s).join(",")
        ));
    }
    out
}
