//! Compose's start order, checked over every dependency graph of up to [`MAX_SERVICES`]
//! services (every subset of the possible `depends_on` edges), through the real parser and
//! `nucleus_spec::compose::waves`: an acyclic graph starts in waves where every service comes
//! exactly once, after all of its dependencies, in the earliest wave it can (its longest
//! dependency chain), so `down` (the waves reversed) stops every service before what it
//! depends on; a cyclic graph is refused with a path that is a real cycle of the graph.

use nucleus_spec::compose;

pub const MAX_SERVICES: usize = 4;

/// Checks every graph of `n` services; returns how many graphs were checked, or the first
/// graph that breaks a rule, with why.
pub fn check_all(n: usize) -> Result<usize, String> {
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let edges: Vec<(usize, usize)> = (0..n)
        .flat_map(|a| (0..n).filter(move |b| *b != a).map(move |b| (a, b)))
        .collect();
    for mask in 0u32..(1 << edges.len()) {
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|a| {
                edges
                    .iter()
                    .enumerate()
                    .filter(|(i, (x, _))| mask & (1 << i) != 0 && *x == a)
                    .map(|(_, (_, b))| *b)
                    .collect()
            })
            .collect();
        check(&names, &deps).map_err(|e| format!("graph {deps:?}: {e}"))?;
    }
    Ok(1 << edges.len())
}

fn depth(deps: &[Vec<usize>], a: usize, seen: &mut Vec<usize>) -> Option<usize> {
    if seen.contains(&a) {
        return None;
    }
    seen.push(a);
    let mut d = 0;
    for b in &deps[a] {
        d = d.max(depth(deps, *b, seen)? + 1);
    }
    seen.pop();
    Some(d)
}

fn check(names: &[String], deps: &[Vec<usize>]) -> Result<(), String> {
    let mut text = String::new();
    for (a, ds) in deps.iter().enumerate() {
        let list: Vec<String> = ds.iter().map(|b| format!("{:?}", names[*b])).collect();
        text.push_str(&format!(
            "[service.{}]\ncommand = [\"true\"]\ndepends_on = [{}]\n",
            names[a],
            list.join(", ")
        ));
    }
    let depths: Option<Vec<usize>> = (0..deps.len())
        .map(|a| depth(deps, a, &mut vec![]))
        .collect();
    let parsed = compose::parse(&text);
    match (depths, parsed) {
        (Some(depths), Ok(t)) => {
            let waves = compose::waves(&t).map_err(|c| format!("acyclic, yet a cycle {c:?}"))?;
            let mut wave_of = vec![usize::MAX; names.len()];
            for (w, services) in waves.iter().enumerate() {
                for s in services {
                    let i = names
                        .iter()
                        .position(|n| n == s)
                        .ok_or(format!("unknown service {s} in the waves"))?;
                    if wave_of[i] != usize::MAX {
                        return Err(format!("{s} starts twice"));
                    }
                    wave_of[i] = w;
                }
            }
            for (a, ds) in deps.iter().enumerate() {
                if wave_of[a] == usize::MAX {
                    return Err(format!("{} never starts", names[a]));
                }
                if let Some(b) = ds.iter().find(|b| wave_of[**b] >= wave_of[a]) {
                    return Err(format!(
                        "{} starts before its dependency {}",
                        names[a], names[*b]
                    ));
                }
                if wave_of[a] != depths[a] {
                    return Err(format!(
                        "{} starts in wave {} where it could in {}",
                        names[a], wave_of[a], depths[a]
                    ));
                }
            }
            Ok(())
        }
        (None, Err(problems)) => {
            let line = problems
                .iter()
                .map(|p| p.to_string())
                .find(|l| l.contains("a dependency cycle: "))
                .ok_or(format!("cyclic, but no cycle reported: {problems:?}"))?;
            let path = line
                .split("a dependency cycle: ")
                .nth(1)
                .unwrap_or_default();
            let hops: Vec<usize> = path
                .split(" -> ")
                .map(|n| names.iter().position(|x| x == n.trim()))
                .collect::<Option<_>>()
                .ok_or(format!("cycle {path:?} names an unknown service"))?;
            if hops.len() < 2 || hops.first() != hops.last() {
                return Err(format!("cycle {path:?} does not come back"));
            }
            if let Some(w) = hops.windows(2).find(|w| !deps[w[0]].contains(&w[1])) {
                return Err(format!(
                    "cycle {path:?}: {} does not depend on {}",
                    names[w[0]], names[w[1]]
                ));
            }
            Ok(())
        }
        (Some(_), Err(p)) => Err(format!("acyclic, yet refused: {p:?}")),
        (None, Ok(_)) => Err("cyclic, yet accepted".into()),
    }
}
