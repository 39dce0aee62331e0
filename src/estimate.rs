//! Resource estimates: what each node will hold in memory and, for attacks, how much work
//! it is, computed from the checked program before anything runs.
//!
//! Figures are upper bounds of the large buffers (parameters, gradients, optimizer state,
//! activations at the batch size, datasets in and out), in f64 so that no shape, however
//! large, overflows. `advpipe plan` and `explain` show them; `run` refuses a pipeline with
//! a node that cannot fit the memory limit before computing anything.

use crate::check::ir::{NodeId, Program};
use crate::nn::layers::{LayerSpec, NetSpec};

const F32: f64 = 4.0;

/// One node's estimate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Peak bytes held while it computes, its inputs included.
    pub memory: f64,
    /// Trainable parameters of the models it trains or reads.
    pub params: f64,
    /// Bytes of the dataset it makes (data and craft nodes).
    pub dataset: f64,
    /// For nodes that attack: gradient evaluations (steps x restarts x examples).
    pub gradients: Option<f64>,
}

/// What a dataset node will hold: examples and values per example.
#[derive(Clone, Copy, Default)]
struct DataShape {
    examples: f64,
    width: f64,
}

impl DataShape {
    fn bytes(self) -> f64 {
        self.examples * self.width * F32
    }
}

/// Parameters and the widest sum of activations per example of a net.
struct NetSize {
    params: f64,
    activations: f64,
}

fn net_size(net: &NetSpec) -> NetSize {
    let mut shape: Vec<f64> = net.input.iter().map(|&d| d as f64).collect();
    let (mut params, mut activations) = (0.0, shape.iter().product::<f64>());
    for layer in &net.layers {
        let fan_in: f64 = match layer {
            LayerSpec::Conv2d { kernel, .. } => shape.first().copied().unwrap_or(1.0) * (*kernel as f64).powi(2),
            _ => shape.iter().product(),
        };
        let out = match layer {
            LayerSpec::Linear { units } | LayerSpec::Rbf { units } => Some(*units as f64),
            LayerSpec::Maxout { units, pieces } => Some((units * pieces) as f64),
            LayerSpec::Conv2d { filters, .. } => Some(*filters as f64),
            _ => None,
        };
        if let Some(out) = out {
            params += fan_in * out + out;
        }
        // Shapes were checked; a layer that cannot compute one adds nothing more.
        let usize_shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        if let Ok(next) = layer.output_shape(&usize_shape) {
            shape = next.into_iter().map(|d| d as f64).collect();
        }
        // Maxout keeps all its pieces' values for the backward pass.
        let kept = match layer {
            LayerSpec::Maxout { pieces, .. } => shape.iter().product::<f64>() * *pieces as f64,
            _ => shape.iter().product(),
        };
        activations += kept;
    }
    NetSize { params, activations }
}

fn net_of(program: &Program, id: NodeId) -> Vec<NetSpec> {
    let node = &program.nodes[id];
    match node.params.get("net").map(|n| serde_json::from_value::<NetSpec>(n.clone())) {
        Some(Ok(net)) => vec![net],
        _ => node.inputs.iter().flat_map(|(_, input)| net_of(program, *input)).collect(),
    }
}

fn number(params: &serde_json::Value, name: &str, default: f64) -> f64 {
    params.get(name).and_then(|v| v.as_f64()).unwrap_or(default)
}

/// Gradient evaluations per example of an attack's parameters.
fn attack_gradients(attack: &serde_json::Value) -> f64 {
    if attack.is_null() {
        return 0.0;
    }
    number(attack, "steps", 1.0) * number(attack, "restarts", 1.0)
}

/// Every node's estimate, in node order.
pub fn estimate(program: &Program) -> Vec<Estimate> {
    let mut data = vec![DataShape::default(); program.nodes.len()];
    let mut out = vec![Estimate::default(); program.nodes.len()];
    // Nodes are stored inputs first, so one pass sees every input's shape.
    for (id, node) in program.nodes.iter().enumerate() {
        let p = &node.params;
        let input_data: Vec<DataShape> = node
            .inputs
            .iter()
            .filter(|(role, _)| matches!(*role, "data" | "valid"))
            .map(|(_, i)| data[*i])
            .collect();
        let inputs_bytes: f64 = input_data.iter().map(|d| d.bytes()).sum();
        let examples = input_data.first().map_or(0.0, |d| d.examples);
        let nets = net_of(program, id);
        let sizes: Vec<NetSize> = nets.iter().map(net_size).collect();
        let params: f64 = sizes.iter().map(|s| s.params).sum();
        let activations: f64 = sizes.iter().map(|s| s.activations).sum();
        let batch = number(p, "batch", 500.0).min(examples.max(1.0));
        let e = &mut out[id];
        e.params = params;
        match node.kind.name {
            "mnist" => {
                let split = if p["split"] == "train" { 60_000.0 } else { 10_000.0 };
                let n = p.get("take").and_then(|t| t.as_f64()).unwrap_or(split - number(p, "skip", 0.0));
                data[id] = DataShape { examples: n, width: 784.0 };
                // The IDX bytes of the whole split are read before the examples are chosen.
                e.memory = data[id].bytes() + split * 785.0;
            }
            "gaussian" => {
                let width = p["shape"]
                    .as_array()
                    .map_or(784.0, |s| s.iter().filter_map(|d| d.as_f64()).product());
                data[id] = DataShape {
                    examples: number(p, "n", 1.0),
                    width,
                };
                e.memory = data[id].bytes();
            }
            "fit" => {
                // Weights, gradients and optimizer state (one buffer for momentum, two for Adam).
                let state = if p["optimizer"] == "adam" { 4.0 } else { 3.0 };
                let crafting = p["loss"]
                    .as_array()
                    .map_or(0.0, |terms| terms.iter().map(|t| attack_gradients(&t["attack"])).sum());
                e.memory = params * F32 * state + 2.0 * batch * activations * F32 + inputs_bytes;
                if crafting > 0.0 {
                    e.gradients = Some(crafting * examples * number(p, "epochs", 1.0));
                }
            }
            "craft" => {
                data[id] = input_data.first().copied().unwrap_or_default();
                e.memory = params * F32 + 2.0 * batch * activations * F32 + 2.0 * inputs_bytes;
                e.gradients = Some(attack_gradients(&p["attack"]) * examples);
            }
            "load" => e.memory = 2.0 * params * F32,
            _ => {
                e.memory = params * F32 + 2.0 * batch * activations * F32 + inputs_bytes;
                let attack = p.get("attack").unwrap_or(&serde_json::Value::Null);
                if !attack.is_null() {
                    let n = if node.kind.name == "examples" {
                        number(p, "n", 1.0)
                    } else {
                        examples
                    };
                    e.gradients = Some(attack_gradients(attack) * n);
                }
            }
        }
        e.dataset = data[id].bytes();
    }
    out
}

/// Bytes the way people read them, for estimates (`1.2 GiB`).
pub fn show_bytes(bytes: f64) -> String {
    if bytes >= u64::MAX as f64 {
        return format!("{bytes:.1e} bytes");
    }
    crate::files::human_bytes(bytes as u64)
}

/// Counts the way people read them (`4.0e9`, `120000`).
pub fn show_count(n: f64) -> String {
    if n >= 1e7 {
        format!("{n:.1e}")
    } else {
        format!("{n:.0}")
    }
}

/// The memory a run may use: `max_memory` when set, else the machine's physical memory.
pub fn memory_limit(max_memory: Option<u64>) -> Option<u64> {
    max_memory.or_else(|| {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// The first node whose estimate passes `limit`, as an error a user can act on.
pub fn check_fits(program: &Program, estimates: &[Estimate], limit: u64) -> Result<(), String> {
    match estimates.iter().enumerate().find(|(_, e)| e.memory > limit as f64) {
        None => Ok(()),
        Some((id, e)) => {
            let node = &program.nodes[id];
            Err(format!(
                "node `{}` ({}) would need about {} of memory ({} parameters), more than the {} \
                 this run may use; make the net or the batch smaller, or raise max_memory in \
                 advpipe.toml if the machine has more",
                node.name,
                node.kind.name,
                show_bytes(e.memory),
                show_count(e.params),
                show_bytes(limit as f64)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimates(text: &str) -> (Program, Vec<Estimate>) {
        let program = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).expect("checks");
        let e = estimate(&program);
        (program, e)
    }

    #[test]
    fn a_softmax_fit_counts_its_parameters_and_data() {
        let (program, e) = estimates(
            "data d = mnist(split: \"train\", take: 1000)\n\
             net n = input([1, 28, 28]) >> flatten >> linear(10)\n\
             model m = fit(n, d, batch: 100)\n\
             eval v = evaluate(m, d, attack: pgd(eps: 0.1, steps: 7, restarts: 3))\n",
        );
        let fit = program.nodes.iter().position(|n| n.kind.name == "fit").unwrap();
        assert_eq!(e[fit].params, 7850.0);
        // 3 x 7850 x 4 bytes of state, 2 x 100 x (784 + 784 + 10) x 4 of activations, the data.
        assert_eq!(e[fit].memory, 94_200.0 + 1_262_400.0 + 3_136_000.0);
        let eval = program.nodes.iter().position(|n| n.kind.name == "evaluate").unwrap();
        assert_eq!(e[eval].gradients, Some(7.0 * 3.0 * 1000.0));
    }

    #[test]
    fn nets_that_cannot_fit_are_refused_before_running() {
        let (program, e) = estimates(
            "data d = mnist(split: \"train\")\n\
             net n = input([1, 28, 28]) >> flatten >> linear(65536) >> linear(65536) >> linear(10)\n\
             model m = fit(n, d, epochs: 1)\n",
        );
        let why = check_fits(&program, &e, 24 << 30).unwrap_err();
        assert!(
            why.contains("node `m` (fit) would need about 48.") && why.contains("4.3e9 parameters"),
            "{why}"
        );
        let (program, e) = estimates("data g = gaussian(n: 10, shape: [1e5, 1e5, 1e5])\n");
        assert!(check_fits(&program, &e, 24 << 30).unwrap_err().contains("node `g` (gaussian)"));
    }
}
