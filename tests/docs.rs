//! The README's reference tables against the registries they describe: every node kind,
//! layer and attack has a row, in the right category, naming every parameter it declares
//! (and no parameter it does not), so the docs cannot drift from the declarations.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The rows of the markdown table that follows `heading_line`: first cell, second cell,
/// whole row.
fn rows_after(readme: &str, header: &str) -> Vec<(Vec<String>, String, String)> {
    let start = readme.find(header).unwrap_or_else(|| panic!("README has no table `{header}`"));
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let names = cells[1].split(',').map(|n| n.trim().trim_matches('`').to_string()).collect();
            (names, cells[2].to_string(), row.to_string())
        })
        .collect()
}

/// Names written as `name` in a table row, after its first cell.
fn backticked(row: &str) -> BTreeSet<String> {
    let rest = row.splitn(3, '|').nth(2).unwrap_or_default();
    rest.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn check_row(what: &str, row: &str, declared: &[&str], problems: &mut Vec<String>) {
    let named = backticked(row);
    for p in declared {
        if !named.contains(*p) {
            problems.push(format!("README: `{what}` does not name its parameter `{p}`"));
        }
    }
    // A backticked word that looks like a parameter name must be one (prose examples such
    // as `[m1, m2]` or `x + eps * sign(grad)` contain other characters).
    for word in named.iter().filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
        if !declared.contains(&word.as_str()) && !["clean", "flatten", "linear", "maxout", "none"].contains(&word.as_str()) {
            problems.push(format!("README: `{what}` names `{word}`, which it does not declare"));
        }
    }
}

#[test]
fn the_readme_documents_every_kind_layer_and_attack_parameter() {
    let readme = readme();
    let mut problems = Vec::new();
    let kinds = rows_after(&readme, "| kind | category | parameters (default) |");
    let documented = |name: &str| kinds.iter().find(|(names, _, _)| names.iter().any(|n| n == name));
    for kind in advpipe::kinds::KINDS {
        let spec = &kind.spec;
        match documented(spec.name) {
            None => problems.push(format!("README: node kind `{}` has no row", spec.name)),
            Some((_, category, row)) => {
                if category != spec.category.word() {
                    problems.push(format!(
                        "README: `{}` is listed as {category}, it is {}",
                        spec.name,
                        spec.category.word()
                    ));
                }
                let declared: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
                check_row(spec.name, row, &declared, &mut problems);
            }
        }
    }
    for layer in advpipe::nn::layers::all() {
        match documented(layer.name) {
            None => problems.push(format!("README: layer `{}` has no row", layer.name)),
            Some((names, category, row)) => {
                if category != "net" {
                    problems.push(format!("README: layer `{}` is listed as {category}", layer.name));
                }
                // Rows that list several parameterless layers share one description.
                if names.len() == 1 {
                    let declared: Vec<&str> = layer.params.iter().map(|p| p.name).collect();
                    check_row(layer.name, row, &declared, &mut problems);
                } else if !layer.params.is_empty() {
                    problems.push(format!("README: `{}` has parameters but shares a row", layer.name));
                }
            }
        }
    }
    let attacks = rows_after(&readme, "| attack | its own parameters (default) |");
    for attack in advpipe::attacks::ATTACKS {
        match attacks.iter().find(|(names, _, _)| names.iter().any(|n| n == attack.name)) {
            None => problems.push(format!("README: attack `{}` has no row", attack.name)),
            Some((_, _, row)) => {
                let declared: Vec<&str> = attack.params.iter().map(|p| p.name).collect();
                check_row(attack.name, row, &declared, &mut problems);
            }
        }
    }
    for (names, _, _) in kinds.iter().chain(&attacks) {
        for name in names {
            let known =
                advpipe::kinds::find(name).is_some() || advpipe::nn::layers::find(name).is_some() || advpipe::attacks::find(name).is_some();
            if !known {
                problems.push(format!("README: a row documents `{name}`, which nothing registers"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
