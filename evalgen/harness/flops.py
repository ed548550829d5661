"""Counted training compute: FLOPs of real training steps, by `torch.utils.flop_counter`.

The convention (`FLOP_CONVENTION`, written into every record): a multiply-add is 2 FLOPs, as
PyTorch's formulas count matrix products, convolutions and attention. PyTorch counts nothing
else, so a model whose work is elementwise (planar layers), a scan (NADE's cumulative sums) or
Gibbs sampling would look almost free and a compute budget would give it far more training.
`counting_formulas` closes that hole: every elementwise op, reduction, scan, softmax, loss, norm
and random draw counts **1 FLOP per element** of its largest operand or result (for an
elementwise op that is its output, for a reduction its input), lists of tensors (the optimizers'
``_foreach`` ops) counting all their elements. Data movement (copies, views, indexing,
concatenation, filling) counts 0.

Counting runs every op of a step through a Python dispatch mode, which costs several times the
step itself, so `StepFlopCounter` counts few steps: a step's FLOPs depend on its shapes and on
which optimizers it stepped (a GAN's generator step every ``n_critic`` steps is another kind of
step than its critic steps). Each kind is counted until two consecutive counts agree, and every
later step of that kind is charged that count, so a run of thousands of steps counts three or
four (a GAN about a dozen). Counting does not change what a step computes; every bundled model's
charged counts equal its step-by-step counts (both tested).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["FLOP_CONVENTION", "StepFlopCounter", "StepKind", "count_flops", "counting_formulas"]

FLOP_CONVENTION = ("2 FLOPs per multiply-add (matmul, convolution, attention, as torch.utils.flop_counter); "
                   "1 FLOP per element of every elementwise op, reduction, scan, softmax, loss, norm and random draw "
                   "(its largest operand or result), of every scatter/index add per element added; data movement 0")
#: Ops without the ``pointwise`` or ``reduction`` tag that do per-element arithmetic.
_ELEMENTWISE_OPS = (
    "cumsum", "cumsum_", "cumprod", "cumprod_", "logcumsumexp", "cummax", "cummin", "_logcumsumexp",
    "_softmax", "_log_softmax", "_softmax_backward_data", "_log_softmax_backward_data",
    "bernoulli", "bernoulli_", "normal", "normal_", "uniform_", "exponential_", "multinomial", "rand", "randn",
    "rand_like", "randn_like", "randint", "randint_like",
    "binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
    "mse_loss", "mse_loss_backward", "nll_loss_forward", "nll_loss_backward", "nll_loss2d_forward",
    "nll_loss2d_backward", "smooth_l1_loss", "huber_loss",
    "native_layer_norm", "native_layer_norm_backward", "native_batch_norm", "native_batch_norm_backward",
    "_native_batch_norm_legit", "_native_batch_norm_legit_functional", "_native_batch_norm_legit_no_training",
    "native_dropout", "softplus_backward", "leaky_relu_backward", "elu_backward", "hardtanh_backward",
    "log_sigmoid_forward", "log_sigmoid_backward", "logsumexp", "sort", "topk", "kthvalue",
    "_foreach_add", "_foreach_add_", "_foreach_sub", "_foreach_sub_", "_foreach_mul", "_foreach_mul_",
    "_foreach_div", "_foreach_div_", "_foreach_addcmul", "_foreach_addcmul_", "_foreach_addcdiv",
    "_foreach_addcdiv_", "_foreach_sqrt", "_foreach_sqrt_", "_foreach_lerp", "_foreach_lerp_", "_foreach_neg",
    "_foreach_neg_", "_foreach_maximum", "_foreach_maximum_", "_foreach_norm", "_foreach_pow", "_foreach_pow_",
    "_foreach_reciprocal", "_foreach_reciprocal_", "_foreach_clamp_max_", "_foreach_clamp_min_", "_fused_adam_",
    "_fused_adamw_",
)
#: Pointwise-tagged ops that only move or copy data.
_NOT_ARITHMETIC = frozenset({"clone", "positive", "_conj_physical", "conj_physical", "conj_physical_"})


def _elements(value: Any) -> int:
    """Elements of a tensor, or of every tensor in a list or tuple of them (0 for anything else)."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_elements(item) for item in value)
    return 0


def _per_element(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """1 FLOP per element of the largest operand or result."""
    return max([_elements(out_val), *(_elements(arg) for arg in args), *(_elements(v) for v in kwargs.values())])


# Raw tensors, not shapes: FlopCounterMode would otherwise map every call's arguments through
# pytree to shapes, which costs more than the rest of the counting together.
_per_element._get_raw = True  # type: ignore[attr-defined]


def _matrix_vector(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """mv, addmv, addr, dot, vdot, ger: 2 FLOPs per multiply-add, as PyTorch counts mm (it has no
    formula for these). The product has as many multiply-adds as its matrix has elements: the
    (m, n) operand of mv/addmv, the (m, n) result of addr/ger, the length of a dot product."""
    return 2 * max(_elements(arg) for arg in (*args, out_val))


_matrix_vector._get_raw = True  # type: ignore[attr-defined]
_MATRIX_VECTOR_OPS = ("mv", "addmv", "addmv_", "addr", "addr_", "dot", "vdot", "outer", "ger")
#: ops adding a source tensor into another: 1 FLOP per source element, like an elementwise add.
_SCATTER_OPS = ("scatter_add", "scatter_add_", "index_add", "index_add_", "scatter_reduce", "scatter_reduce_",
                "index_put", "index_put_")


def _arithmetic_ops() -> Iterable[str]:
    """Every aten op tagged pointwise or reduction, and `_ELEMENTWISE_OPS`."""
    wanted = (torch.Tag.pointwise, torch.Tag.reduction)
    for name in torch._C._dispatch_get_all_op_names():
        namespace, _, rest = name.partition("::")
        base = rest.split(".")[0]
        if namespace != "aten" or base in _NOT_ARITHMETIC:
            continue
        packet = getattr(torch.ops.aten, base, None)
        if packet is not None and any(tag in getattr(packet, overload).tags
                                      for overload in packet.overloads() for tag in wanted):
            yield base
    yield from _ELEMENTWISE_OPS


def _source_elements(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """scatter_add / index_add / index_put(accumulate): 1 FLOP per element added in."""
    return max(_elements(arg) for arg in args[1:]) if len(args) > 1 else 0


_source_elements._get_raw = True  # type: ignore[attr-defined]


@functools.cache
def counting_formulas() -> dict[Any, Callable[..., int]]:
    """The formulas added to PyTorch's: op packet -> FLOPs (built once per process)."""
    formulas = {}
    for base in _arithmetic_ops():
        packet = getattr(torch.ops.aten, base, None)
        if packet is not None:
            formulas[packet] = _per_element
    for names, formula in ((_MATRIX_VECTOR_OPS, _matrix_vector), (_SCATTER_OPS, _source_elements)):
        for base in names:
            packet = getattr(torch.ops.aten, base, None)
            if packet is not None:
                formulas[packet] = formula
    return formulas


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: every count goes to "Global".

    The tracker's hooks break ``torch.autograd.grad`` inside the counted region (a WGAN-GP's
    gradient penalty: pytorch/pytorch#131753) and cost time per module call; totals need none
    of its per-module attribution."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(torch_formulas_only: bool = False) -> FlopCounterMode:
    """A FLOP counter with `counting_formulas` (PyTorch's alone if ``torch_formulas_only``), no
    table printed, totals only; ``.get_total_flops()`` after."""
    counter = FlopCounterMode(display=False, custom_mapping={} if torch_formulas_only else counting_formulas())
    counter.mod_tracker = _GlobalOnly()  # see _GlobalOnly
    return counter


class StepFlopCounter:
    """Training FLOPs step by step, counting as few steps as it can (see the module).

    A step's *kind* is which optimizers stepped, how often (a WGAN's critic-only step and its
    critic-and-generator step are two kinds). The FLOPs of a kind are counted, step by step under
    `count_flops`, until two consecutive counts of it agree; every later step of that kind is
    charged that count. Use ``with counter.step():`` around each training step; ``total`` is the
    FLOPs of every step so far (a step of a kind not yet confirmed is added once it is).
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        self.total = 0
        self.counted_steps = 0
        #: counted steps whose count differed from their confirmed kind's (0 for every bundled model)
        self.disagreements = 0
        self._confirmed: dict[StepKind, int] = {}
        self._last_count: dict[StepKind, int] = {}
        self._uncharged: Counter[StepKind] = Counter()
        self._calls: Counter[str] = Counter()
        self._handles = [optimizer.register_step_post_hook(functools.partial(self._stepped, name))
                         for name, optimizer in optimizers.items()]

    def _stepped(self, name: str, *_: object) -> None:
        self._calls[name] += 1

    def step(self) -> _StepScope:
        return _StepScope(self, counting=len(self._confirmed) == 0 or bool(self._uncharged) or self._unsure)

    @property
    def _unsure(self) -> bool:
        """A kind was counted once and not yet confirmed."""
        return any(kind not in self._confirmed for kind in self._last_count)

    def _finished(self, flops: int | None) -> None:
        kind: StepKind = tuple(sorted(self._calls.items()))
        self._calls.clear()
        if kind in self._confirmed:
            self.total += self._confirmed[kind]
            if flops is not None:  # counted while another kind awaited confirmation: a check
                self.counted_steps += 1
                self.disagreements += flops != self._confirmed[kind]
            return
        if flops is None:
            self._uncharged[kind] += 1
            return
        self.counted_steps += 1
        self.total += flops
        if self._last_count.get(kind) == flops:
            self._confirmed[kind] = flops
            self.total += flops * self._uncharged.pop(kind, 0)
        self._last_count[kind] = flops

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def describe(self) -> dict[str, Any]:
        """How the count was made, for the record."""
        kinds = {_kind_label(kind): flops for kind, flops in sorted(self._confirmed.items())}
        return {"convention": FLOP_CONVENTION, "counted_steps": self.counted_steps, "flops_per_step_kind": kinds,
                "unconfirmed_steps": sum(self._uncharged.values()), "disagreements": self.disagreements}


#: Which optimizers stepped in one training step, how often: (name, calls), sorted.
StepKind = tuple[tuple[str, int], ...]


def _kind_label(kind: StepKind) -> str:
    return " + ".join(f"{name}" + (f" x{calls}" if calls > 1 else "") for name, calls in kind) or "no optimizer step"


class _StepScope:
    """Counts one step under `count_flops` when asked to, and tells the counter its kind."""

    def __init__(self, counter: StepFlopCounter, counting: bool) -> None:
        self.counter = counter
        self.mode = count_flops() if counting else None

    def __enter__(self) -> _StepScope:
        if self.mode is not None:
            self.mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode is not None:
            self.mode.__exit__(*exc)
        if exc[0] is None:
            self.counter._finished(None if self.mode is None else self.mode.get_total_flops())
