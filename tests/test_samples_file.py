"""Samples from anywhere (evalgen.harness.samples_file): every format gives the same stored
values, and every bad input is one line naming the file and what to change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from evalgen.errors import EvalgenError
from evalgen.harness.samples_file import SampleTarget, read_samples

MNIST = SampleTarget("mnist", (1, 28, 28), 256, min_count=3, min_count_reason="FID needs a full-rank covariance")
BINARY = SampleTarget("binarized-mnist", (1, 28, 28), 2)


def _images(n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


def _png_folder(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[0]).save(folder / f"{i:05d}.png")
    return folder


def test_every_format_gives_the_same_values(tmp_path):
    images = _images()
    np.save(tmp_path / "s.npy", images)
    np.savez(tmp_path / "one.npz", samples=images)
    np.savez(tmp_path / "two.npz", samples=images, labels=np.arange(5))
    torch.save(torch.from_numpy(images), tmp_path / "s.pt")
    np.save(tmp_path / "last.npy", images.transpose(0, 2, 3, 1))  # channels last
    np.save(tmp_path / "flat.npy", images[:, 0])  # no channel axis
    np.save(tmp_path / "floats.npy", images / 255.0)
    expected = torch.from_numpy(images.astype(np.float32))
    for name, options in [("s.npy", {}), ("one.npz", {}), ("two.npz", {"key": "samples"}), ("s.pt", {}),
                          ("last.npy", {}), ("flat.npy", {}), ("floats.npy", {"float01": True})]:
        assert torch.equal(read_samples(tmp_path / name, MNIST, **options), expected), name
    assert torch.equal(read_samples(_png_folder(tmp_path / "png", images), MNIST), expected)


def test_binary_images_use_the_two_levels(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (4, 1, 28, 28), dtype=np.uint8)
    assert torch.equal(read_samples(_png_folder(tmp_path / "png", bits * 255), BINARY), torch.from_numpy(bits).float())
    np.save(tmp_path / "bits.npy", bits)
    assert torch.equal(read_samples(tmp_path / "bits.npy", BINARY), torch.from_numpy(bits).float())


def _bad_cases(tmp_path):
    images = _images()
    np.save(tmp_path / "rgb.npy", np.repeat(images, 3, axis=1))
    np.save(tmp_path / "small.npy", images[:, :, :20, :20])
    np.save(tmp_path / "range.npy", images.astype(np.int16) + 1)
    nan = images.astype(np.float32)
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "few.npy", images[:2])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)
    np.savez(tmp_path / "two.npz", a=images, b=images)
    torch.save({"samples": torch.from_numpy(images)}, tmp_path / "dict.pt")
    (tmp_path / "text.npy").write_text("not numpy")
    (tmp_path / "s.csv").write_text("1,2,3")
    folder = _png_folder(tmp_path / "mixed", images)
    (folder / "notes.txt").write_text("hello")
    broken = _png_folder(tmp_path / "broken", images)
    (broken / "00009.png").write_bytes(b"\x89PNG not really")
    np.save(tmp_path / "floats.npy", images / 255.0)
    return [
        ("rgb.npy", {}, "images have 3 channel(s); dataset 'mnist' has 1"),
        ("small.npy", {}, "shape (5, 1, 20, 20) does not fit dataset 'mnist': it needs (N, 1, 28, 28)"),
        ("range.npy", {}, "values out of range (1..256): dataset 'mnist' takes integers 0..255"),
        ("nan.npy", {}, "1 value(s) are NaN"),
        ("few.npy", {}, "2 samples are fewer than 3 (FID needs a full-rank covariance)"),
        ("objects.npy", {}, "holds Python objects (pickled)"),
        ("two.npz", {}, "holds 2 arrays (a, b); choose one with --key"),
        ("two.npz", {"key": "c"}, "unknown array 'c'"),
        ("dict.pt", {}, "holds a dict, not a tensor"),
        ("text.npy", {}, "is not a valid .npy file"),
        ("s.csv", {}, "give a .npy, .npz or .pt file, or a folder of PNG/JPEG images"),
        ("missing.npy", {}, "not a file"),
        ("mixed", {}, "'notes.txt' is not a PNG or JPEG image file"),
        ("broken", {}, "'00009.png' cannot be decoded as an image"),
        ("floats.npy", {}, "values out of range"),
        ("s.csv", {"key": "x"}, "give a .npy"),
    ]


def test_every_bad_input_is_one_line(tmp_path):
    for name, options, message in _bad_cases(tmp_path):
        with pytest.raises(EvalgenError) as caught:
            read_samples(tmp_path / name, MNIST, **options)
        text = str(caught.value)
        assert message in text and str(tmp_path / name) in text and "\n" not in text, (name, text)


def test_an_unsafe_pt_file_is_refused_without_running_it(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(EvalgenError, match="not a tensor file torch can load safely"):
        read_samples(tmp_path / "evil.pt", MNIST)


def test_a_symlink_in_a_samples_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(_images(1)[0, 0]).save(secret)
    folder = _png_folder(tmp_path / "png", _images(3))
    (folder / "00003.png").symlink_to(secret)
    with pytest.raises(EvalgenError, match=r"'00003\.png' is not a PNG or JPEG image file"):
        read_samples(folder, MNIST)


def test_huge_values_and_infinities_are_out_of_range(tmp_path):
    values = _images().astype(np.float64)
    values[0, 0, 0, 0] = 1e300
    np.save(tmp_path / "huge.npy", values)
    values[0, 0, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", values)
    for name in ("huge.npy", "inf.npy"):
        with pytest.raises(EvalgenError, match="values out of range"):
            read_samples(tmp_path / name, MNIST)
