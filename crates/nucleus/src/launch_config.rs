//! `--config FILE` / `--config-fd N`: the launch configuration as a file whose keys are the
//! long flags of `nucleus run` (snake_case). One type (`RunArgs`) serves both, so they cannot
//! drift; flags given on the command line (or by environment) win, field by field.

use crate::cli::{Cli, RunArgs};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use nucleus_spec::config::{single_line, ConfigError};
use std::io::Read;

fn err(flag: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(flag, msg)
}

pub(crate) fn apply(args: RunArgs, m: &ArgMatches) -> Result<RunArgs, ConfigError> {
    let (flag, text, json) = match (&args.config, args.config_fd) {
        (None, None) => return Ok(args),
        (Some(_), Some(_)) => {
            return Err(err("--config-fd", "give --config or --config-fd, not both"))
        }
        (Some(p), None) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| err("--config", format!("{}: {e}", p.display())))?;
            let json = p.extension().is_some_and(|e| e == "json");
            ("--config", t, json)
        }
        (None, Some(fd)) => {
            let mut t = String::new();
            nucleus_sys::store::dup_fd(fd)
                .and_then(|mut f| f.read_to_string(&mut t))
                .map_err(|e| err("--config-fd", format!("{fd}: {e}")))?;
            let json = t.trim_start().starts_with('{');
            ("--config-fd", t, json)
        }
    };
    let file: serde_json::Value = if json {
        serde_json::from_str(&text).map_err(|e| err(flag, single_line(&e.to_string())))?
    } else {
        toml::from_str(&text).map_err(|e| nucleus_spec::config::toml_error(flag, &text, &e))?
    };
    let serde_json::Value::Object(file) = file else {
        return Err(err(
            flag,
            "the configuration must be a table (TOML) or an object (JSON)",
        ));
    };
    let mut merged = serde_json::to_value(&args).map_err(|e| err(flag, e.to_string()))?;
    let props = schema()["properties"].clone();
    for (k, mut v) in file {
        // `pids = 128`, `cpus = 1.5`: numbers for flags that take text (sizes, "max").
        let takes_text = props[&k]["type"].to_string().contains("string");
        if takes_text && (v.is_number() || v.is_boolean()) {
            v = serde_json::Value::String(v.to_string());
        }
        if merged.get(&k).is_none() {
            return Err(err(
                flag,
                format!("unknown key `{}` (keys are `nucleus run`'s long flags in snake_case; see `nucleus config reference`)", single_line(&k)),
            ));
        }
        let from_cli = matches!(
            m.value_source(&k),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if from_cli {
            // The environment merges: the file's variables, then the command line's (a key
            // given on both takes the command line's value: later entries win).
            if k == "env" {
                if let (Some(file_env), Some(cli_env)) = (v.as_array(), merged[&k].as_array()) {
                    let mut all = file_env.clone();
                    all.extend(cli_env.iter().cloned());
                    let mut probe = merged.clone();
                    probe[&k] = all.clone().into();
                    serde_json::from_value::<RunArgs>(probe)
                        .map_err(|e| err(flag, format!("{k}: {}", single_line(&e.to_string()))))?;
                    merged[&k] = all.into();
                }
            }
            continue;
        }
        // Type-check this key alone, so the error names it.
        let mut probe = merged.clone();
        probe[&k] = v.clone();
        serde_json::from_value::<RunArgs>(probe)
            .map_err(|e| err(flag, format!("{k}: {}", single_line(&e.to_string()))))?;
        merged[&k] = v;
    }
    let mut out: RunArgs = serde_json::from_value(merged).map_err(|e| err(flag, e.to_string()))?;
    out.config = args.config;
    out.config_fd = args.config_fd;
    Ok(out)
}

/// Keys whose flags take text but whose values are usually numbers (`pids = 128`,
/// `cpus = 1.5`, `memory = 536870912`): the schema says both.
const NUMBERS_TOO: &[&str] = &[
    "memory",
    "memory_swap",
    "cpus",
    "pids",
    "log_max_size",
    "workspace_max_size",
];

/// The JSON Schema of configuration files.
pub(crate) fn schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(RunArgs)).unwrap_or_default();
    for k in NUMBERS_TOO {
        let t = &mut s["properties"][*k]["type"];
        match t.clone() {
            serde_json::Value::String(x) if x == "string" => {
                *t = serde_json::json!(["string", "number"]);
            }
            serde_json::Value::Array(a) if a.iter().any(|x| x == "string") => {
                let mut a = a.clone();
                a.insert(1, "number".into());
                *t = a.into();
            }
            _ => {}
        }
    }
    s
}

fn type_name(p: &serde_json::Value, defs: &serde_json::Value) -> String {
    // A closed set (an enum of the spec): its values.
    let def = p["allOf"][0]["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/definitions/"))
        .map(|name| &defs[name]);
    if let Some(variants) = def.and_then(|d| d["oneOf"].as_array()) {
        let names: Vec<String> = variants
            .iter()
            .flat_map(|v| v["enum"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(|n| format!("`{n}`")))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let t = match &p["type"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    let base: Vec<String> = t.into_iter().filter(|x| x != "null").collect();
    match base.first().map(String::as_str) {
        Some("array") => format!("array of {}", type_name(&p["items"], defs)),
        Some(_) => base.join(" or "),
        None => "any".into(),
    }
}

/// docs/config.md.
pub(crate) fn reference() -> String {
    let s = schema();
    let mut out = String::from(
        "# Launch configuration reference\n\n\
         Generated by `nucleus config reference` (a test checks this file matches). A `--config FILE`\n\
         (TOML; JSON when the name ends in .json) or `--config-fd N` holds any of these keys, the\n\
         long flags of `nucleus run` in snake_case; flags given on the command line win, field by\n\
         field; unknown keys are errors. JSON Schema: `nucleus config schema`.\n\n\
         | key | type | meaning |\n|---|---|---|\n",
    );
    if let Some(props) = s["properties"].as_object() {
        for (k, p) in props {
            let desc = p["description"]
                .as_str()
                .unwrap_or("")
                .replace('\n', " ")
                .replace('|', "\\|");
            out.push_str(&format!(
                "| `{k}` | {} | {desc} |\n",
                type_name(p, &s["definitions"])
            ));
        }
    }
    out
}

/// docs/cli.md.
pub(crate) fn cli_reference() -> String {
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        out.push_str(&format!(
            "## `{name}`\n\n```text\n{}\n```\n\n",
            cmd.render_long_help().to_string().trim_end()
        ));
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() != "help" {
                walk(sub, &name, out);
            }
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = String::from(
        "# Command-line reference\n\nGenerated by `nucleus config cli-reference` from the clap definitions (a test checks this\nfile matches).\n\n",
    );
    walk(&mut cmd, "", &mut out);
    out
}

/// `nucleus run`'s flags with their defaults (as a command line without flags gives them).
pub(crate) fn defaults() -> Result<RunArgs, ConfigError> {
    use clap::FromArgMatches;
    let m = Cli::command()
        .try_get_matches_from(["nucleus", "run", "--", "true"])
        .map_err(|e| err("run", e.to_string()))?;
    match crate::cli::Cli::from_arg_matches(&m).map(|c| c.command) {
        Ok(crate::cli::Command::Run(a)) => Ok(*a),
        _ => Err(err("run", "no defaults")),
    }
}

/// A table of `--config` keys merged over `base` key by key, each checked alone so that a
/// problem names its key: every problem as (key, message).
pub(crate) fn merge_table(
    base: &RunArgs,
    table: &serde_json::Map<String, serde_json::Value>,
) -> Result<RunArgs, Vec<(String, String)>> {
    let mut merged =
        serde_json::to_value(base).map_err(|e| vec![(String::new(), e.to_string())])?;
    let props = schema()["properties"].clone();
    let mut problems = vec![];
    for (k, v) in table {
        let mut v = v.clone();
        let takes_text = props[k]["type"].to_string().contains("string");
        if takes_text && (v.is_number() || v.is_boolean()) {
            v = serde_json::Value::String(v.to_string());
        }
        if merged.get(k).is_none() || k == "config" || k == "config_fd" {
            problems.push((
                k.clone(),
                "unknown key (keys are `nucleus run`'s long flags in snake_case; see `nucleus config reference`)".to_string(),
            ));
            continue;
        }
        let mut probe = merged.clone();
        probe[k] = v.clone();
        match serde_json::from_value::<RunArgs>(probe) {
            Ok(_) => merged[k] = v,
            Err(e) => problems.push((k.clone(), single_line(&e.to_string()))),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(merged).map_err(|e| vec![(String::new(), e.to_string())])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = r#"
command = ["python3", "-m", "http.server"]
memory = "256m"
cpus = 1.5
pids = 128
env = ["A=1", "B=2"]
network = "bridge"
publish = ["8080:8000"]
egress_domain = ["*.example.com"]
health_cmd = "true"
health_interval = "1s"
restart = "on-failure:3"
volume = ["/srv/data:/data:ro"]
"#;

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "\\PC{0,30}".prop_map(serde_json::Value::from),
            prop::collection::vec("\\PC{0,12}", 0..3).prop_map(serde_json::Value::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// A launch config's table (compose's services are the same): any keys, any values;
        /// a merged configuration or one line per problem naming its key, never a panic.
        #[test]
        fn launch_config_tables(entries in prop::collection::vec((0usize..80, "[a-z_]{1,16}", value()), 0..8)) {
            let base = defaults().unwrap();
            let keys: Vec<String> = schema()["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let table: serde_json::Map<String, serde_json::Value> = entries
                .into_iter()
                .map(|(i, k, v)| (keys.get(i).cloned().unwrap_or(k), v))
                .collect();
            if let Err(ps) = merge_table(&base, &table) {
                for (_, m) in ps {
                    prop_assert!(!m.contains('\n'), "{m}");
                }
            }
        }

        /// A launch config's TOML text, mutated: parsed or refused in one line.
        #[test]
        fn launch_config_text(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut b = EXAMPLE.as_bytes().to_vec();
            for (i, v) in &edits {
                let i = i.index(b.len());
                b[i] = *v;
            }
            let text = String::from_utf8_lossy(&b);
            match toml::from_str::<serde_json::Value>(&text) {
                Err(e) => {
                    let e = nucleus_spec::config::toml_error("--config", &text, &e);
                    prop_assert!(!e.message.contains('\n'), "{}", e.message);
                }
                Ok(serde_json::Value::Object(t)) => {
                    if let Err(ps) = merge_table(&defaults().unwrap(), &t) {
                        for (_, m) in ps {
                            prop_assert!(!m.contains('\n'), "{m}");
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }
}
