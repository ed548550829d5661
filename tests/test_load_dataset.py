"""The public data API (`evalgen.load_dataset`, `evalgen.split_inputs`): a third party scoring a
model with its own code gets exactly the inputs the harness scores a run on."""

from __future__ import annotations

import math

import pytest
import torch

import evalgen
from evalgen import DataKind, ModelSpec, Representation
from evalgen.datasets.base import LoadContext
from evalgen.errors import EvalgenError
from evalgen.harness.data import ModelData
from evalgen.metrics.nll import nll_nats
from evalgen.plugins import load_plugins

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return evalgen.load_dataset("digits")


def test_load_dataset_gives_the_registered_dataset_with_its_fixed_splits(digits, tmp_path):
    again = load_plugins().datasets.get("digits").load(LoadContext(tmp_path, allow_download=False))
    assert digits.checksum == again.checksum
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(digits, split).x, getattr(again, split).x)
    assert (digits.kind, digits.levels, digits.shape) == (DataKind.DISCRETE, 17, (1, 8, 8))


def test_an_unknown_dataset_is_an_error_with_a_suggestion():
    with pytest.raises(EvalgenError, match="did you mean 'digits'"):
        evalgen.load_dataset("digit")


@pytest.mark.parametrize("representation", [Representation.DEQUANTIZED, Representation.LEVELS])
def test_split_inputs_are_what_the_harness_scores(digits, representation):
    data = ModelData(digits, representation, CPU)
    assert torch.equal(evalgen.split_inputs(digits, "test", representation), data.test_x)
    assert torch.equal(evalgen.split_inputs(digits, "valid", representation), data.valid_x)
    if representation is Representation.LEVELS:
        assert torch.equal(data.test_x, digits.test.x)


def test_the_fixed_dequantization_is_unchanged(digits):
    """The noise of the validation subset is drawn first, then the test set's, from one
    generator seeded 20240601: the numbers of every committed result depend on it."""
    noise = torch.Generator().manual_seed(20_240_601)
    valid = (digits.valid.x[:2048] + torch.rand(digits.valid.x[:2048].shape, generator=noise)) / 17
    test = (digits.test.x + torch.rand(digits.test.x.shape, generator=noise)) / 17
    assert torch.equal(evalgen.split_inputs(digits, "valid", "dequantized"), valid)
    assert torch.equal(evalgen.split_inputs(digits, "test", Representation.DEQUANTIZED), test)
    assert float(test.min()) >= 0 and float(test.max()) < 1


def test_a_model_spec_gives_its_representation(digits):
    flow = ModelSpec("flow", "a density", frozenset(DataKind), dequantize=True)
    pmf = ModelSpec("pmf", "a mass function", frozenset(DataKind))
    assert torch.equal(evalgen.split_inputs(digits, "test", flow),
                       evalgen.split_inputs(digits, "test", Representation.DEQUANTIZED))
    assert torch.equal(evalgen.split_inputs(digits, "test", pmf), digits.test.x)


def test_the_offset_turns_a_density_into_nats_of_the_levels(digits):
    """The uniform density on [0, 1)^D (log_prob 0) is the uniform mass function: D log L nats."""
    x = evalgen.split_inputs(digits, "test", Representation.DEQUANTIZED)
    nll = nll_nats(torch.zeros(x.shape[0]), Representation.DEQUANTIZED, math.prod(digits.shape), digits.levels)
    assert torch.allclose(nll, torch.full_like(nll, 64 * math.log(17)))


def test_bad_arguments_are_errors(digits):
    with pytest.raises(EvalgenError, match=r"unknown split 'train'.*fresh dequantization noise"):
        evalgen.split_inputs(digits, "train", Representation.LEVELS)
    with pytest.raises(EvalgenError, match="unknown representation 'dequantised'"):
        evalgen.split_inputs(digits, "test", "dequantised")
    moons = evalgen.load_dataset("two-moons")
    with pytest.raises(EvalgenError, match="continuous: it has no dequantized representation"):
        evalgen.split_inputs(moons, "test", Representation.DEQUANTIZED)
    assert torch.equal(evalgen.split_inputs(moons, "test", Representation.CONTINUOUS), moons.test.x)
