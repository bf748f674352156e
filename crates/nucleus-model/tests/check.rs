//! The model checker's runs: every configuration checked exhaustively (every interleaving of
//! every step), its state count and properties printed (CI's log shows them), and the two
//! protocol faults the model found before they were fixed shown to be found.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nucleus_model::store::{StoreModel, Verb};
use stateright::{Checker, Model};

fn launch(sb: u8, held: bool) -> Verb {
    Verb::Launch { sb, held }
}

fn model(verbs: Vec<Verb>, kills: u8, others: u8) -> StoreModel {
    StoreModel {
        verbs,
        kills,
        others,
        locked_first_save: true,
        retry_vanished_name: true,
        restarts: 0,
        stop_rereads: true,
        thaw_on_remove: true,
        health: false,
        discard_paused_checks: true,
    }
}

/// Checks exhaustively; the discoveries of `always`/`eventually` properties (counterexamples)
/// by name, with the path to the first.
fn check(name: &str, m: StoreModel) -> Vec<(&'static str, String)> {
    let props: Vec<&'static str> = m.properties().iter().map(|p| p.name).collect();
    let c = m.checker().spawn_bfs().join();
    let found: Vec<(&'static str, String)> = props
        .iter()
        .filter(|p| !p.starts_with("two launchers"))
        .filter_map(|p| {
            c.discovery(p).map(|path| {
                let steps: Vec<String> = path
                    .into_vec()
                    .into_iter()
                    .map(|(w, a)| match a {
                        Some(a) => format!("{a:?}"),
                        None => format!("end: {w:?}"),
                    })
                    .collect();
                (*p, steps.join(", "))
            })
        })
        .collect();
    println!(
        "model {name}: {} states ({} unique), depth {}; {} of {} properties hold",
        c.state_count(),
        c.unique_state_count(),
        c.max_depth(),
        props.len() - 1 - found.len(),
        props.len() - 1
    );
    found
}

fn holds(name: &str, m: StoreModel) {
    let found = check(name, m);
    assert!(found.is_empty(), "{name}: {found:#?}");
}

/// Two `run -d --name n` and an `rm -f` at once, with a launcher or monitor killed at any step
/// and a foreign process taking a freed pid.
#[test]
fn two_launches_and_a_forced_rm() {
    holds(
        "run-d x2 + rm -f, 1 kill, pid reuse",
        model(
            vec![launch(0, false), launch(1, false), Verb::Rm { force: true }],
            1,
            1,
        ),
    );
}

/// `create`, two `start`s and an `rm` at once: one start releases the workload.
#[test]
fn create_two_starts_and_an_rm() {
    holds(
        "create + start x2 + rm, 1 kill",
        model(
            vec![
                launch(0, true),
                Verb::Start,
                Verb::Start,
                Verb::Rm { force: false },
            ],
            1,
            0,
        ),
    );
}

/// A launch racing two removals, with two kills (a launcher and a monitor, or two of either).
#[test]
fn a_launch_and_two_rms_with_two_kills() {
    holds(
        "run-d + rm + rm -f, 2 kills, pid reuse",
        model(
            vec![
                launch(0, false),
                Verb::Rm { force: false },
                Verb::Rm { force: true },
            ],
            2,
            1,
        ),
    );
}

/// `stop` of a sandbox whose `--restart` policy restarts it, racing a `stop` of its own and an
/// `rm -f`, with a monitor killed anywhere.
#[test]
fn stops_of_a_restarting_sandbox() {
    let mut m = model(
        vec![
            launch(0, false),
            Verb::Stop,
            Verb::Stop,
            Verb::Rm { force: true },
        ],
        1,
        0,
    );
    m.restarts = 2;
    holds("run-d --restart + stop x2 + rm -f, 1 kill", m);
}

/// Before the fix: `stop` signalled the init it had read, once. A monitor restarting the
/// sandbox between the stop's read and its mark started a new init that nobody signalled:
/// the stop waited out its SIGKILL timeout and failed, the sandbox kept running.
#[test]
fn a_stop_that_signals_a_stale_init_is_found() {
    let mut m = model(vec![launch(0, false), Verb::Stop], 0, 0);
    m.restarts = 1;
    m.stop_rereads = false;
    let found = check("stop signalling the init it read first (the old stop)", m);
    let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"a stop ends with the sandbox stopped"),
        "{found:#?}"
    );
}

/// `pause` racing `stop` and `rm`, with a monitor killed anywhere (also while paused).
#[test]
fn pauses_stops_and_removals() {
    holds(
        "run-d + pause + stop + rm, 1 kill",
        model(
            vec![
                launch(0, false),
                Verb::Pause,
                Verb::Stop,
                Verb::Rm { force: false },
            ],
            1,
            0,
        ),
    );
}

/// Health checks of a sandbox paused meanwhile (and stopped, removed, its monitor killed).
#[test]
fn health_checks_and_pauses() {
    let mut m = model(
        vec![launch(0, false), Verb::Pause, Verb::Rm { force: true }],
        1,
        0,
    );
    m.health = true;
    holds("run-d --health-cmd + pause + rm -f, 1 kill", m);
}

/// Before the fix: a check already running when the pause came was refused by exec and
/// counted, turning a healthy sandbox unhealthy while paused (seen in the cgroup-v2 VM).
#[test]
fn a_check_counted_while_paused_is_found() {
    let mut m = model(vec![launch(0, false), Verb::Pause], 0, 0);
    m.health = true;
    m.discard_paused_checks = false;
    let found = check("checks counted while paused (the old monitor)", m);
    let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"health does not change while paused"),
        "{found:#?}"
    );
}

/// Before the fix: removing a sandbox did not thaw it. One lost with its monitor while paused
/// kept its frozen init (its parent-death SIGKILL pending) after `rm`: out of reach.
#[test]
fn a_lost_paused_sandbox_left_frozen_is_found() {
    let mut m = model(
        vec![launch(0, false), Verb::Pause, Verb::Rm { force: false }],
        1,
        0,
    );
    m.thaw_on_remove = false;
    let found = check("removal without thaw (the old rm)", m);
    let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"rm never removes a live sandbox"),
        "{found:#?}"
    );
}

/// Before the fix: the monitor's first record write ignored a failure. A launcher killed right
/// after the fork leaves a record whose monitor (the launcher) is dead, `rm` removes it as
/// stopped, and the monitor, which was alive, runs the sandbox with no record: out of reach
/// of ps and rm, its name free for another. The model finds it.
#[test]
fn the_unchecked_first_save_is_found() {
    let mut m = model(vec![launch(0, false), Verb::Rm { force: false }], 1, 0);
    m.locked_first_save = false;
    let found = check("unchecked first save (the old monitor)", m);
    let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"rm never removes a live sandbox"),
        "{found:#?}"
    );
    assert!(
        names.contains(&"nothing is out of reach of ps, rm -f and gc"),
        "{found:#?}"
    );
    assert!(
        names.contains(&"a name maps to at most one live sandbox"),
        "{found:#?}"
    );
}

/// Before the fix: a launcher whose symlink failed and whose look then found no link (its
/// owner's removal took it in between) failed with "already used by sandbox " (no owner).
/// Shown by a weaker property: with the fix the launcher always gets the name when the owner
/// is gone; without it, it can fail although the name is free.
#[test]
fn the_vanished_name_link_is_retried() {
    use nucleus_model::store::{Dir, Pc};
    let run = |retry: bool| {
        let mut m = model(
            vec![launch(0, false), launch(1, false), Verb::Rm { force: true }],
            0,
            0,
        );
        m.retry_vanished_name = retry;
        let c = m.clone().checker().spawn_bfs().join();
        // Whether a launcher failed although, when it failed, the name had no owner.
        let mut bad = false;
        let mut stack = m.init_states();
        let mut seen = std::collections::HashSet::new();
        while let Some(w) = stack.pop() {
            if !seen.insert(w.clone()) {
                continue;
            }
            let mut acts = vec![];
            m.actions(&w, &mut acts);
            for a in acts {
                if let Some(n) = m.next_state(&w, a) {
                    for (i, c) in n.callers.iter().enumerate() {
                        let was = w.callers[i].pc;
                        if was == Pc::NamesLocked && c.pc == Pc::RemoveOwn && w.link.is_none() {
                            bad = true;
                        }
                    }
                    stack.push(n);
                }
            }
        }
        let _ = Dir::Absent;
        (bad, c.unique_state_count())
    };
    let (old, _) = run(false);
    let (new, states) = run(true);
    println!("model name claim: {states} unique states; spurious refusal before the fix: {old}, after: {new}");
    assert!(
        old,
        "the old claim never failed on a vanished link: the check is blind"
    );
    assert!(!new);
}

/// Compose's start order through the real parser and `waves`, over every dependency graph of
/// 1 to 4 services.
#[test]
fn compose_start_order_over_every_graph() {
    let mut total = 0;
    for n in 1..=nucleus_model::compose::MAX_SERVICES {
        total += nucleus_model::compose::check_all(n).unwrap_or_else(|e| panic!("{e}"));
    }
    println!("model compose order: {total} dependency graphs of 1-4 services, start order and cycle refusals hold for each");
}
