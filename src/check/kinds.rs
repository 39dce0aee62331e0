//! The registry of node kinds that compute something: their names, categories, versions
//! and parameter signatures. Layers live in `nn::layers::LAYERS`, attacks in
//! `attacks::ATTACKS`; the checker consults all three.
//!
//! `version` is part of every cache key: bump it when a kind's results change for the same
//! parameters, and stale cache entries stop matching.

use crate::params::{Category, Default, ParamSpec, ParamType};

/// A computing node kind.
#[derive(Debug)]
pub struct NodeKind {
    /// Its name in the language.
    pub name: &'static str,
    /// What it produces.
    pub category: Category,
    /// Bumped whenever its output changes for the same inputs.
    pub version: u32,
    /// The files that compute it, whose changes `tests/code_versions.rs` watches.
    pub sources: &'static [&'static str],
    /// Whether its artifact is stored; cheap kinds (reading data, grouping models) are
    /// recomputed when needed instead.
    pub cached: bool,
    /// One line for the reference.
    pub doc: &'static str,
    /// Its parameters, positional in this order.
    pub params: &'static [ParamSpec],
}

/// Examples per batch when scoring or crafting: memory is bounded by it, not by the dataset.
const EVAL_BATCH: ParamSpec =
    ParamSpec::with_default("batch", ParamType::Int, Default::Int(500), "examples per batch (bounds memory)").range(1.0, 100000.0);

/// The seed of a node that draws random numbers (random attacks, noise).
const NODE_SEED: ParamSpec = ParamSpec::with_default(
    "seed",
    ParamType::Int,
    Default::Optional,
    "seed of random attacks and noise (default: the file's seed)",
)
.range(0.0, 9.0e15);

/// `mnist(split, skip, take)`
pub const MNIST: NodeKind = NodeKind {
    name: "mnist",
    category: Category::Data,
    version: 1,
    sources: &["src/data/mnist.rs", "src/data/idx.rs", "src/data/mod.rs"],
    cached: false,
    doc: "MNIST digits, [1, 28, 28] in [0, 1], 10 classes",
    params: &[
        ParamSpec::required(
            "split",
            ParamType::Choice(&["train", "test"]),
            "which file pair: 60,000 train or 10,000 test",
        ),
        ParamSpec::with_default("skip", ParamType::Int, Default::Int(0), "examples dropped from the front").range(0.0, 60000.0),
        ParamSpec::with_default("take", ParamType::Int, Default::Optional, "examples kept after skip (default: all)").range(1.0, 60000.0),
        ParamSpec::with_default(
            "classes",
            ParamType::Classes,
            Default::Optional,
            "keep only these digits, e.g. [3, 7], relabelled 0, 1, ... (default: all)",
        ),
    ],
};

/// `fit(net, data, ...)`
pub const FIT: NodeKind = NodeKind {
    name: "fit",
    category: Category::Model,
    version: 4,
    sources: &["src/nn/train.rs", "src/exec/mod.rs", "src/exec/artifacts.rs"],
    cached: true,
    doc: "train a net on softmax cross-entropy (SGD with momentum, or Adam)",
    params: &[
        ParamSpec::required("net", ParamType::Net, "the architecture"),
        ParamSpec::required("data", ParamType::Dataset, "the training set"),
        ParamSpec::with_default(
            "loss",
            ParamType::Loss,
            Default::Optional,
            "training objective: clean (default), an attack, or a weighted sum such as 0.5 * clean + 0.5 * fgsm25",
        ),
        ParamSpec::with_default(
            "valid",
            ParamType::Dataset,
            Default::Optional,
            "validation set: its error is recorded every epoch",
        ),
        ParamSpec::with_default(
            "valid_attack",
            ParamType::Attack,
            Default::Optional,
            "measure validation error under this attack (early stopping on adversarial error)",
        ),
        ParamSpec::with_default("epochs", ParamType::Int, Default::Int(10), "most passes over the training set").range(1.0, 100000.0),
        ParamSpec::with_default("batch", ParamType::Int, Default::Int(100), "examples per step").range(1.0, 100000.0),
        ParamSpec::with_default("optimizer", ParamType::Choice(&["sgd", "adam"]), Default::Str("sgd"), "update rule"),
        ParamSpec::with_default("lr", ParamType::Number, Default::Number(0.1), "initial learning rate").range(1e-9, 100.0),
        ParamSpec::with_default(
            "lr_decay",
            ParamType::Number,
            Default::Number(1.0),
            "divide the learning rate by this after every update",
        )
        .range(1.0, 2.0),
        ParamSpec::with_default(
            "lr_min",
            ParamType::Number,
            Default::Number(0.0),
            "floor of the decayed learning rate",
        )
        .range(0.0, 100.0),
        ParamSpec::with_default("momentum", ParamType::Number, Default::Number(0.5), "momentum at epoch 1 (sgd)").range(0.0, 0.999),
        ParamSpec::with_default(
            "momentum_end",
            ParamType::Number,
            Default::Optional,
            "momentum reached at momentum_epochs (default: momentum)",
        )
        .range(0.0, 0.999),
        ParamSpec::with_default(
            "momentum_epochs",
            ParamType::Int,
            Default::Int(1),
            "epoch at which the linear ramp reaches momentum_end",
        )
        .range(1.0, 100000.0),
        ParamSpec::with_default(
            "max_norm",
            ParamType::Number,
            Default::Optional,
            "largest norm of a unit's incoming weights (default: none)",
        )
        .range(1e-6, 1000.0),
        ParamSpec::with_default(
            "init",
            ParamType::Number,
            Default::Number(0.005),
            "initial weights uniform in [-init, init]",
        )
        .range(0.0, 10.0),
        ParamSpec::with_default(
            "l1",
            ParamType::Number,
            Default::Number(0.0),
            "L1 weight decay on the first layer's weights (section 5)",
        )
        .range(0.0, 1.0),
        ParamSpec::with_default(
            "seed",
            ParamType::Int,
            Default::Optional,
            "initialisation, shuffling and dropout seed (default: the file's seed)",
        )
        .range(0.0, 9.0e15),
        ParamSpec::with_default(
            "patience",
            ParamType::Int,
            Default::Optional,
            "stop after this many epochs without validation improvement (needs valid)",
        )
        .range(1.0, 100000.0),
        ParamSpec::with_default(
            "after_stop",
            ParamType::Choice(&["best", "refit"]),
            Default::Str("best"),
            "after early stopping: keep the best epoch, or refit on train + valid for that many epochs",
        ),
    ],
};

/// `evaluate(model, data, attack: ...)`
pub const EVALUATE: NodeKind = NodeKind {
    name: "evaluate",
    category: Category::Eval,
    version: 5,
    sources: &["src/eval/mod.rs", "src/eval/paper.rs", "src/exec/mod.rs"],
    cached: true,
    doc: "error and confidences of a model on a dataset, optionally under attack",
    params: &[
        ParamSpec::required("model", ParamType::Model, "the model scored"),
        ParamSpec::required("data", ParamType::Dataset, "the examples"),
        ParamSpec::with_default("attack", ParamType::Attack, Default::Optional, "perturb each batch first"),
        EVAL_BATCH,
        NODE_SEED,
    ],
};

/// `input([1, 28, 28])`: starts a layer stack.
pub const INPUT: NodeKind = NodeKind {
    name: "input",
    category: Category::Net,
    version: 1,
    sources: &[],
    cached: false,
    doc: "the start of a net: the shape of one example",
    params: &[ParamSpec::required(
        "shape",
        ParamType::Shape,
        "one example's shape, e.g. [1, 28, 28]",
    )],
};

/// `craft(model, data, attack)`: the adversarial version of a dataset, stored.
pub const CRAFT: NodeKind = NodeKind {
    name: "craft",
    category: Category::Data,
    version: 3,
    sources: &["src/eval/mod.rs", "src/exec/mod.rs", "src/exec/artifacts.rs"],
    cached: true,
    doc: "adversarial examples of a dataset against a model (stored as float32)",
    params: &[
        ParamSpec::required("model", ParamType::Model, "the model (or ensemble) attacked"),
        ParamSpec::required("data", ParamType::Dataset, "the clean examples"),
        ParamSpec::required("attack", ParamType::Attack, "the attack"),
        EVAL_BATCH,
        NODE_SEED,
    ],
};

/// `gaussian(n, shape)`: noise inputs that belong to no class (appendix A).
pub const GAUSSIAN: NodeKind = NodeKind {
    name: "gaussian",
    category: Category::Data,
    version: 1,
    sources: &["src/data/mod.rs", "src/exec/mod.rs"],
    cached: false,
    doc: "n samples of N(0, I) in a given shape, labelled 0 (inputs of no class, for rubbish)",
    params: &[
        ParamSpec::required("n", ParamType::Int, "how many samples").range(1.0, 1.0e6),
        ParamSpec::with_default(
            "shape",
            ParamType::Shape,
            Default::Optional,
            "one sample's shape (default [1, 28, 28])",
        ),
        ParamSpec::with_default("classes", ParamType::Int, Default::Int(10), "classes of the models it is fed to").range(2.0, 100000.0),
        NODE_SEED,
    ],
};

/// `load(path, net)`: a model from a safetensors checkpoint.
pub const LOAD: NodeKind = NodeKind {
    name: "load",
    category: Category::Model,
    version: 1,
    sources: &["src/exec/mod.rs"],
    cached: false,
    doc: "a model from a safetensors file with advpipe's tensor names (layers.{i}.weight [in, out], layers.{i}.bias [out])",
    params: &[
        ParamSpec::required("path", ParamType::Text, "the .safetensors file, relative to the working folder"),
        ParamSpec::required("net", ParamType::Net, "the architecture the tensors belong to"),
    ],
};

/// `ensemble([m1, m2, ...])`: one classifier predicting its members' mean probability.
pub const ENSEMBLE: NodeKind = NodeKind {
    name: "ensemble",
    category: Category::Model,
    version: 1,
    sources: &["src/exec/mod.rs"],
    cached: false,
    doc: "average the members' softmax probabilities",
    params: &[ParamSpec::required(
        "models",
        ParamType::ModelList,
        "the members, e.g. [m1, m2, m3]",
    )],
};

/// `agreement(source, other, data)`: section 8's class agreement.
pub const AGREEMENT: NodeKind = NodeKind {
    name: "agreement",
    category: Category::Eval,
    version: 3,
    sources: &["src/eval/mod.rs", "src/exec/mod.rs"],
    cached: true,
    doc: "how often `other` predicts the class `source` predicts (metrics: rate, examples)",
    params: &[
        ParamSpec::required("source", ParamType::Model, "the reference model"),
        ParamSpec::required("other", ParamType::Model, "the model compared with it"),
        ParamSpec::required("data", ParamType::Dataset, "the examples (often a crafted set)"),
        ParamSpec::with_default(
            "over",
            ParamType::Choice(&["source_wrong", "both_wrong", "all"]),
            Default::Str("source_wrong"),
            "which examples count: those source gets wrong, those both get wrong, or all",
        ),
        EVAL_BATCH,
    ],
};

/// `rubbish(model, data)`: appendix A's rubbish-class rate.
pub const RUBBISH: NodeKind = NodeKind {
    name: "rubbish",
    category: Category::Eval,
    version: 3,
    sources: &["src/eval/mod.rs", "src/exec/mod.rs"],
    cached: true,
    doc: "fraction of inputs given some class probability above a threshold (metrics: rate, confidence, examples, share_<k>)",
    params: &[
        ParamSpec::required("model", ParamType::Model, "the model"),
        ParamSpec::required("data", ParamType::Dataset, "inputs of no class, e.g. gaussian(n: 10000)"),
        ParamSpec::with_default(
            "threshold",
            ParamType::Number,
            Default::Number(0.5),
            "a probability above this counts",
        )
        .range(0.0, 1.0),
        EVAL_BATCH,
    ],
};

/// `transfer([m1, m2], data, attack)`: the transfer matrix.
pub const TRANSFER: NodeKind = NodeKind {
    name: "transfer",
    category: Category::Eval,
    version: 3,
    sources: &["src/eval/mod.rs", "src/exec/mod.rs"],
    cached: true,
    doc: "error of every model on examples crafted against every model (metrics: error_<source>_<target>, by list index)",
    params: &[
        ParamSpec::required("models", ParamType::ModelList, "the models, e.g. [mx, mx_at]"),
        ParamSpec::required("data", ParamType::Dataset, "the clean examples"),
        ParamSpec::required("attack", ParamType::Attack, "the attack"),
        EVAL_BATCH,
        NODE_SEED,
    ],
};

/// `examples(model, data, attack)`: the report's picture of an attack.
pub const EXAMPLES: NodeKind = NodeKind {
    name: "examples",
    category: Category::Examples,
    version: 2,
    sources: &["src/eval/mod.rs", "src/exec/mod.rs", "src/exec/artifacts.rs"],
    cached: true,
    doc: "the first n examples clean, their perturbation and adversarial version, with predictions (drawn as examples-NAME.svg)",
    params: &[
        ParamSpec::required("model", ParamType::Model, "the model attacked"),
        ParamSpec::required("data", ParamType::Dataset, "where the examples come from"),
        ParamSpec::required("attack", ParamType::Attack, "the attack"),
        ParamSpec::with_default("n", ParamType::Int, Default::Int(8), "how many examples").range(1.0, 100.0),
        NODE_SEED,
    ],
};

/// `weights([m1, m2], n)`: the paper's figure 3.
pub const WEIGHTS: NodeKind = NodeKind {
    name: "weights",
    category: Category::Figure,
    version: 1,
    sources: &["src/eval/weights.rs", "src/exec/mod.rs"],
    cached: true,
    doc: "the first layer's weights of each model as images, one row per unit and one column per maxout piece (drawn as figure-NAME.svg)",
    params: &[
        ParamSpec::required("models", ParamType::ModelList, "the models shown side by side, e.g. [mx, mx_at]"),
        ParamSpec::with_default("n", ParamType::Int, Default::Int(10), "how many units (the first n)").range(1.0, 100.0),
    ],
};

/// Every computing kind plus `input`.
pub const KINDS: &[&NodeKind] = &[
    &MNIST, &GAUSSIAN, &CRAFT, &FIT, &LOAD, &ENSEMBLE, &EVALUATE, &AGREEMENT, &RUBBISH, &TRANSFER, &EXAMPLES, &WEIGHTS, &INPUT,
];

/// Looks a kind up by name.
pub fn find(name: &str) -> Option<&'static NodeKind> {
    KINDS.iter().copied().find(|k| k.name == name)
}
