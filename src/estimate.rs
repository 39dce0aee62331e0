//! Resource estimates: what each node will hold in memory and, for attacks, how much work
//! it is, computed from the checked program before anything runs.
//!
//! Figures are upper bounds of the large buffers (parameters, gradients, optimizer state,
//! activations at the batch size, datasets in and out), in f64 so that no shape, however
//! large, overflows. `advpipe plan` and `explain` show them; `run` refuses a pipeline with
//! a node that cannot fit the memory limit before computing anything.

use crate::check::ir::{NodeId, Program};
use crate::nn::layers::NetSpec;

/// Bytes per value.
pub const F32: f64 = 4.0;

/// One node's estimate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Peak bytes held while it computes, its inputs included.
    pub memory: f64,
    /// Trainable parameters of the models it trains or reads.
    pub params: f64,
    /// The dataset it makes (data and craft nodes).
    pub data: Option<DataShape>,
    /// For nodes that attack: gradient evaluations (steps x restarts x examples).
    pub gradients: Option<f64>,
}

impl Estimate {
    /// Bytes of the dataset it makes.
    pub fn dataset(&self) -> f64 {
        self.data.map_or(0.0, DataShape::bytes)
    }
}

/// What a dataset node will hold: examples and values per example.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DataShape {
    /// How many examples.
    pub examples: f64,
    /// Values per example.
    pub width: f64,
}

impl DataShape {
    /// Its bytes as f32 values.
    pub fn bytes(self) -> f64 {
        self.examples * self.width * F32
    }
}

/// What a kind's estimate rule gets to go on.
pub struct Sizes<'a> {
    /// The node's canonical parameters.
    pub params: &'a serde_json::Value,
    /// Its dataset inputs (`data`, then `valid`), in that order.
    pub data: Vec<DataShape>,
    /// Parameters of every net it trains or reads.
    pub net_params: f64,
    /// Activations per example of every net it trains or reads, summed over layers.
    pub activations: f64,
    /// Its `batch` parameter (500 when it has none), at most the examples it reads.
    pub batch: f64,
}

impl Sizes<'_> {
    /// Examples of its first dataset input.
    pub fn examples(&self) -> f64 {
        self.data.first().map_or(0.0, |d| d.examples)
    }

    /// Bytes of all its dataset inputs.
    pub fn data_bytes(&self) -> f64 {
        self.data.iter().map(|d| d.bytes()).sum()
    }

    /// Its parameter `name` as a number, or `default`.
    pub fn number(&self, name: &str, default: f64) -> f64 {
        number(self.params, name, default)
    }

    /// The models it reads plus one batch forward and backward, and its input data: what
    /// scoring, crafting and comparing nodes hold.
    pub fn scoring(&self) -> f64 {
        self.net_params * F32 + 2.0 * self.batch * self.activations * F32 + self.data_bytes()
    }

    /// Input gradients of an attack's parameters over `examples` examples (`None` without
    /// an attack).
    pub fn attack_work(&self, attack: &serde_json::Value, examples: f64) -> Option<f64> {
        (!attack.is_null()).then(|| attack_gradients(attack) * examples)
    }
}

/// A kind's estimate rule.
pub type EstimateRule = fn(&Sizes) -> Estimate;

/// The rule of kinds that score, compare or draw models on a dataset: the models, a batch
/// forward and backward, the data, and an attack's input gradients if it has one.
pub fn scoring_rule(sizes: &Sizes) -> Estimate {
    let attack = sizes.params.get("attack").unwrap_or(&serde_json::Value::Null);
    Estimate {
        memory: sizes.scoring(),
        params: sizes.net_params,
        data: None,
        gradients: sizes.attack_work(attack, sizes.examples()),
    }
}

/// Parameters and the widest sum of activations per example of a net.
struct NetSize {
    params: f64,
    activations: f64,
}

fn net_size(net: &NetSpec) -> NetSize {
    let mut shape = net.input.clone();
    let (mut params, mut activations) = (0.0, shape.iter().map(|&d| d as f64).product::<f64>());
    for layer in &net.layers {
        // Shapes were checked; a size that overflows cannot fit any machine.
        match layer.weight_shape(&shape) {
            Ok(Some((rows, columns))) => params += (rows as f64 + 1.0) * columns as f64,
            Ok(None) => {}
            Err(_) => params = f64::INFINITY,
        }
        let Ok(next) = layer.output_shape(&shape) else { break };
        shape = next;
        // Maxout keeps all its pieces' values for the backward pass.
        let kept = shape.iter().map(|&d| d as f64).product::<f64>() * layer.columns_per_output() as f64;
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

/// A parameter as a number, or `default`.
pub fn number(params: &serde_json::Value, name: &str, default: f64) -> f64 {
    params.get(name).and_then(|v| v.as_f64()).unwrap_or(default)
}

/// Gradient evaluations per example of an attack's parameters.
pub fn attack_gradients(attack: &serde_json::Value) -> f64 {
    if attack.is_null() {
        return 0.0;
    }
    number(attack, "steps", 1.0) * number(attack, "restarts", 1.0)
}

/// Every node's estimate, in node order, by each kind's rule (`rule_of`; a kind without
/// one counts as [`scoring_rule`]).
pub fn estimate(program: &Program, rule_of: &dyn Fn(&str) -> Option<EstimateRule>) -> Vec<Estimate> {
    let mut out: Vec<Estimate> = Vec::with_capacity(program.nodes.len());
    // Nodes are stored inputs first, so one pass sees every input's shape.
    for (id, node) in program.nodes.iter().enumerate() {
        let data: Vec<DataShape> = node
            .inputs
            .iter()
            .filter(|(role, _)| matches!(*role, "data" | "valid"))
            .filter_map(|(_, i)| out[*i].data)
            .collect();
        let nets: Vec<NetSize> = net_of(program, id).iter().map(net_size).collect();
        let examples = data.first().map_or(0.0, |d| d.examples);
        let sizes = Sizes {
            params: &node.params,
            data,
            net_params: nets.iter().map(|s| s.params).sum(),
            activations: nets.iter().map(|s| s.activations).sum(),
            batch: number(&node.params, "batch", 500.0).min(examples.max(1.0)),
        };
        out.push(rule_of(node.kind.name).unwrap_or(scoring_rule)(&sizes));
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
            let (what, fix) = if e.params > 0.0 {
                (
                    format!(" ({} parameters)", show_count(e.params)),
                    "make the net or the batch smaller",
                )
            } else {
                (format!(" ({} of data)", show_bytes(e.dataset())), "make the dataset smaller")
            };
            Err(format!(
                "node `{}` ({}) would need about {} of memory{what}, more than the {} this run \
                 may use; {fix}, or raise max_memory in advpipe.toml if the machine has more",
                node.name,
                node.kind.name,
                show_bytes(e.memory),
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
        let e = estimate(&program, &crate::kinds::estimate_rule);
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
        let why = check_fits(&program, &e, 24 << 30).unwrap_err();
        assert!(why.contains("node `g` (gaussian)") && why.contains("of data), more than"), "{why}");
    }
}
