//! The define-by-run tape.
//!
//! Every op whose inputs need gradients attaches a [`Node`] to its output: the op's name, its
//! inputs, and a closure that maps the output's gradient to the inputs' gradients (capturing
//! whatever the op saved: activations, row statistics, indices). The nodes form a DAG from the
//! loss back to the leaves (parameters). [`Tensor::backward`] sorts that DAG topologically, walks it
//! from the loss to the leaves, sums the gradients that reach each tensor, and adds those that
//! reach a leaf into its `grad`. Each node is taken out as it runs, so the saved buffers and the
//! graph are freed as backward proceeds; a second backward through the same graph panics.

use super::tensor::Tensor;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Maps the gradient of an op's output to one optional gradient per input.
pub(crate) type BackwardFn = Box<dyn FnOnce(&Tensor) -> Vec<Option<Tensor>> + Send + Sync>;

/// One recorded op.
pub(crate) struct Node {
    pub op: &'static str,
    pub inputs: Vec<Tensor>,
    pub backward: BackwardFn,
    /// Set for ops whose gradient touches a small part of their input: the engine adds it into
    /// that part of the input's gradient instead of building a full-size tensor of zeros first.
    pub into: Option<Into>,
}

/// Where a partial gradient goes in its input's gradient (see [`Node::into`]).
pub(crate) enum Into {
    /// `narrow`: the slice's gradient goes to `start..` along `axis`.
    Region { axis: usize, start: usize },
    /// `embedding`: row `i` of the gradient (`[N, dim]`) is added to row `ids[i]` of the table's.
    Rows(Vec<u32>),
}

impl Drop for super::tensor::Inner {
    /// Frees a long chain of recorded nodes iteratively: the default recursive drop (tensor →
    /// node → input tensor → node → …) would overflow the stack on a graph thousands of ops deep
    /// that is dropped without running backward.
    fn drop(&mut self) {
        let Some(node) = self.node.get_mut().ok().and_then(|n| n.take()) else {
            return;
        };
        let mut stack = node.inputs;
        drop(node.backward);
        while let Some(t) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(t.0)
                && let Some(n) = inner.node.get_mut().ok().and_then(|n| n.take())
            {
                stack.extend(n.inputs);
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless inside a [`no_grad`] scope on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Disables recording until dropped (restores the previous state).
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    pub fn new() -> NoGradGuard {
        NoGradGuard {
            prev: GRAD_ENABLED.with(|g| g.replace(false)),
        }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Runs `f` without recording any op (inference, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Attaches a node to a freshly computed `out` when recording is on and an input needs a
/// gradient; otherwise returns `out` as is. `backward` must not capture `out` itself (that
/// would be a reference cycle); capture `out.detach()` instead.
/// Like [`record`] for an op whose gradient lands in part of its one input (`narrow`, an
/// embedding lookup): the backward is the identity, and the engine adds the gradient `into`
/// that part of the input's gradient.
pub(crate) fn record_into(out: Tensor, op: &'static str, input: &Tensor, into: Into) -> Tensor {
    let out = record(out, op, &[input], |g| vec![Some(g.clone())]);
    if let Some(node) = out.0.node.lock().unwrap().as_mut() {
        node.into = Some(into);
    }
    out
}

pub(crate) fn record(
    out: Tensor,
    op: &'static str,
    inputs: &[&Tensor],
    backward: impl FnOnce(&Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
) -> Tensor {
    if !is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
        return out;
    }
    assert_eq!(
        Arc::strong_count(&out.0),
        1,
        "{op}: output of a recorded op must be freshly made"
    );
    let node = Node {
        op,
        inputs: inputs.iter().map(|&t| t.clone()).collect(),
        backward: Box::new(backward),
        into: None,
    };
    *out.0.node.lock().unwrap() = Some(node);
    out.0.requires_grad.store(true, Ordering::Relaxed);
    out
}

type Key = *const super::tensor::Inner;

fn key(t: &Tensor) -> Key {
    Arc::as_ptr(&t.0)
}

impl Tensor {
    /// True for a leaf marked with [`Tensor::requires_grad`] and for every tensor computed from one
    /// while recording.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// This tensor as a leaf that accumulates gradients (shares storage with `self`).
    pub fn requires_grad_(self) -> Tensor {
        let t = self.detach();
        t.0.requires_grad.store(true, Ordering::Relaxed);
        t.0.leaf.store(true, Ordering::Relaxed);
        t
    }

    /// A tensor sharing this one's storage, cut off from the graph.
    pub fn detach(&self) -> Tensor {
        self.view_raw(
            self.shape().to_vec(),
            self.strides().to_vec(),
            self.offset(),
        )
    }

    /// True when this tensor was made by a recorded op (not a leaf).
    pub fn is_leaf(&self) -> bool {
        !self.requires_grad() || self.0.leaf.load(Ordering::Relaxed)
    }

    /// The name of the op that made this tensor, while its graph is alive.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.node.lock().unwrap().as_ref().map(|n| n.op)
    }

    /// The accumulated gradient of a leaf, if backward has reached it.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap().clone()
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap() = None;
    }

    /// Replaces the accumulated gradient (e.g. after clipping).
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap() = g;
    }

    /// The recorded graph behind this tensor, one line per tensor, inputs before outputs:
    /// `%id = op(%in, ...) shape`, leaves as `%id = leaf shape`. For teaching and debugging.
    pub fn graph(&self) -> String {
        let order = topo_order(self);
        let ids: HashMap<Key, usize> = order.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
        let mut s = String::new();
        for (i, t) in order.iter().enumerate() {
            let node = t.0.node.lock().unwrap();
            let line = match node.as_ref() {
                Some(n) => {
                    let args: Vec<String> = n
                        .inputs
                        .iter()
                        .map(|x| {
                            ids.get(&key(x))
                                .map_or("const".to_string(), |j| format!("%{j}"))
                        })
                        .collect();
                    format!("%{i} = {}({}) {:?}\n", n.op, args.join(", "), t.shape())
                }
                None if t.0.leaf.load(Ordering::Relaxed) => {
                    format!("%{i} = leaf {:?}\n", t.shape())
                }
                None => format!("%{i} = (graph freed by backward) {:?}\n", t.shape()),
            };
            s.push_str(&line);
        }
        s
    }

    /// Backpropagates from a scalar: adds d(self)/d(leaf) into every leaf's `grad`.
    pub fn backward(&self) {
        assert_eq!(
            self.numel(),
            1,
            "backward: called on a tensor of shape {:?}; reduce it to a scalar first",
            self.shape()
        );
        let seed = super::backend::full(self.shape(), 1.0, self.dtype(), self.device());
        self.backward_with(&seed);
    }

    /// Backpropagates with an explicit output gradient `g` (same shape as `self`).
    pub fn backward_with(&self, g: &Tensor) {
        assert_eq!(
            self.shape(),
            g.shape(),
            "backward_with: shapes {:?} and {:?}",
            self.shape(),
            g.shape()
        );
        assert!(
            self.requires_grad(),
            "backward: tensor does not require grad (no leaf with requires_grad_ reached it)"
        );
        let _guard = NoGradGuard::new();
        let was = super::profile::set_in_backward(true);
        self.run_backward(g);
        super::profile::set_in_backward(was);
    }

    fn run_backward(&self, g: &Tensor) {
        let order = topo_order(self);
        let mut grads: HashMap<Key, Tensor> = HashMap::new();
        grads.insert(key(self), g.clone());
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&key(t)) else {
                continue;
            };
            let node = t.0.node.lock().unwrap().take();
            match node {
                None => {
                    assert!(
                        t.0.leaf.load(Ordering::Relaxed),
                        "backward: the graph was already freed (backward called twice?)"
                    );
                    accumulate_leaf(t, g);
                }
                Some(node) => {
                    let (op, into) = (node.op, node.into);
                    let inputs = node.inputs;
                    let gs = (node.backward)(&g);
                    assert_eq!(
                        gs.len(),
                        inputs.len(),
                        "{op}: backward returned the wrong count"
                    );
                    for (inp, gi) in inputs.iter().zip(gs) {
                        let Some(gi) = gi.filter(|_| inp.requires_grad()) else {
                            continue;
                        };
                        let k = key(inp);
                        let prev = grads.remove(&k);
                        grads.insert(k, add_gradient(op, inp, prev, &gi, into.as_ref()));
                    }
                }
            }
        }
    }
}

/// The gradient of `inp` so far (`prev`) plus `g` from op `op`: where `into` says when it is
/// partial, else the whole tensor.
fn add_gradient(
    op: &str,
    inp: &Tensor,
    prev: Option<Tensor>,
    g: &Tensor,
    into: Option<&Into>,
) -> Tensor {
    let Some(into) = into else {
        assert_eq!(
            g.shape(),
            inp.shape(),
            "{op}: backward gave a gradient of the wrong shape"
        );
        return match prev {
            Some(prev) => accumulate(prev, g, None),
            None => g.clone(),
        };
    };
    let zeros = || super::backend::full(inp.shape(), 0.0, inp.dtype(), inp.device());
    let base = prev.unwrap_or_else(zeros);
    match into {
        Into::Region { axis, start } => accumulate(base, g, Some((*axis, *start))),
        Into::Rows(ids) => {
            let base = owned(base);
            let dim = *inp.shape().last().expect("rows of a 2-d table");
            super::backend::add_rows(&base, &g.reshape(&[ids.len(), dim]), ids);
            base
        }
    }
}

/// `t` itself when nothing else sees its buffer, else a copy that may be changed in place.
fn owned(t: Tensor) -> Tensor {
    if exclusively_owned(&t) {
        t
    } else {
        super::backend::copy(&t)
    }
}

/// True when nothing else can see `t`'s buffer, so it may be changed in place.
fn exclusively_owned(t: &Tensor) -> bool {
    Arc::strong_count(&t.0) == 1
        && Arc::strong_count(&t.0.storage) == 1
        && t.is_contiguous()
        && t.offset() == 0
        && t.0.storage.read().unwrap().len() == t.numel()
}

/// `acc + g` (into `region` of `acc` when given), in place when `acc` is exclusively owned.
fn accumulate(acc: Tensor, g: &Tensor, region: Option<(usize, usize)>) -> Tensor {
    let acc = owned(acc);
    super::backend::add_into(&acc, g, region);
    acc
}

/// Adds `g` into a leaf's gradient. The stored gradient always owns its storage, so an optimizer
/// may scale it in place without touching another tensor.
fn accumulate_leaf(t: &Tensor, g: Tensor) {
    let mut slot = t.0.grad.lock().unwrap();
    let new = match slot.take() {
        Some(prev) => accumulate(prev, &g, None),
        None if exclusively_owned(&g) => g,
        None => super::backend::copy(&g),
    };
    *slot = Some(new);
}

/// Every tensor that reaches `root` through recorded nodes, inputs before outputs (DFS post-order,
/// iterative so deep graphs do not overflow the stack).
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(key(&t)) {
            continue;
        }
        let inputs: Vec<Tensor> = match t.0.node.lock().unwrap().as_ref() {
            Some(n) => n
                .inputs
                .iter()
                .filter(|i| i.requires_grad())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        stack.push((t, true));
        // Reversed so that the first input is visited (and numbered) first.
        for i in inputs.into_iter().rev() {
            if !seen.contains(&key(&i)) {
                stack.push((i, false));
            }
        }
    }
    order
}
