"""Sample-quality evaluation: PNG folder + torch-fidelity (the common way) vs evalgen in memory.

Both paths score the same generated images with the same feature extractor and compute the
same numbers: IS, FID and KID against the whole reference split and, unless --no-prc,
precision/recall on equal numbers of generated and reference images (Kynkäänniemi et al. 2019;
the reference images are the subset `evalgen.metrics.fidelity.prc_subsets` picks):

  (A) common: write the samples as PNG files, then run torch-fidelity on the generated folder and
      a folder of reference PNGs (prepared once, untimed), as `fidelity --input1 DIR --input2 DIR`
      does, and for precision/recall once more against a folder of the equal-sized reference
      subset; torch-fidelity re-extracts the features every time.
  (B) evalgen: `evalgen.metrics.fidelity.sample_quality` on the tensor, in memory, with the
      reference statistics cached on disk (warmed once, untimed).

Run: python benchmarks/fidelity_inmemory.py [--dataset digits|mnist] [--num-samples 2000]
(mnist needs EVALGEN_DATA_DIR). Prints per-round times, medians and the ratio A/B.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def fake_samples(train: torch.Tensor, levels: int, n: int, seed: int) -> torch.Tensor:
    """Samples of the per-pixel categorical fitted to the training set (stored values)."""
    flat = train.reshape(len(train), -1).long().numpy()
    probs = np.stack([np.bincount(col, minlength=levels) + 0.5 for col in flat.T])
    probs /= probs.sum(1, keepdims=True)
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.choice(levels, size=n, p=p) for p in probs], axis=1)
    return torch.from_numpy(draws).float().reshape(n, *train.shape[1:])


def write_pngs(images_uint8: torch.Tensor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images_uint8[:, 0].numpy()):
        Image.fromarray(img, mode="L").save(folder / f"{i:06d}.png")


def common_way(samples_uint8: torch.Tensor, reference_dir: Path, prc_reference_dir: Path | None, extractor,
               kid_subset: int) -> dict:
    from torch_fidelity import calculate_metrics

    settings = dict(cuda=False, feature_extractor=extractor.name, samples_find_ext="png", cache=False,
                    feature_extractor_weights_path=str(extractor.path), verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(samples_uint8, Path(tmp))
        out = calculate_metrics(input1=tmp, input2=str(reference_dir), isc=True, fid=True, kid=True,
                                kid_subset_size=kid_subset, **settings)
        if prc_reference_dir is not None:
            out.update(calculate_metrics(input1=tmp, input2=str(prc_reference_dir), prc=True, **settings))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-prc", dest="prc", action="store_false",
                        help="Skip precision/recall in both paths.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # torch-fidelity's folder loader
    if args.threads:
        torch.set_num_threads(args.threads)

    from evalgen.datasets.files import load_context_from_env
    from evalgen.metrics.extractors import ensure_extractor, to_uint8
    from evalgen.metrics.fidelity import prc_subsets, sample_quality
    from evalgen.plugins import load_plugins

    dataset = load_plugins().datasets.get(args.dataset).load(load_context_from_env())
    if args.prc and args.num_samples > len(dataset.test):
        parser.error(f"--num-samples must be at most {len(dataset.test)} (the reference split) with precision/recall")
    samples = fake_samples(dataset.train.x, dataset.levels, args.num_samples, seed=0)
    extractor = ensure_extractor(dataset.feature_extractor, dataset=dataset)
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads; {args.dataset}: "
          f"{args.num_samples} generated vs {len(dataset.test)} reference images, extractor {extractor.name}, "
          f"metrics IS, FID, KID{', precision/recall' if args.prc else ''}")

    with tempfile.TemporaryDirectory() as ref_tmp:
        reference_dir = Path(ref_tmp) / "reference"
        write_pngs(to_uint8(dataset.test.x, dataset.levels), reference_dir)
        prc_reference_dir = None
        if args.prc:
            _, ref_idx = prc_subsets(args.num_samples, len(dataset.test))
            prc_reference_dir = Path(ref_tmp) / "prc-reference"
            write_pngs(to_uint8(dataset.test.x[ref_idx], dataset.levels), prc_reference_dir)
        generated = to_uint8(samples, dataset.levels)
        kid_subset = min(1000, args.num_samples, len(dataset.test))
        warm = sample_quality(samples, dataset)  # fills the reference cache
        times: dict[str, list[float]] = {"png": [], "evalgen": []}
        for round_ in range(args.repeats):
            order = ("png", "evalgen") if round_ % 2 == 0 else ("evalgen", "png")
            for which in order:
                start = time.perf_counter()
                if which == "png":
                    common = common_way(generated, reference_dir, prc_reference_dir, extractor, kid_subset)
                else:
                    ours = sample_quality(samples, dataset, precision_recall=args.prc)
                times[which].append(time.perf_counter() - start)
            print(f"round {round_ + 1}: png+folder {times['png'][-1]:.2f} s, evalgen {times['evalgen'][-1]:.2f} s")

    png, mem = statistics.median(times["png"]), statistics.median(times["evalgen"])
    pairs = [a / b for a, b in zip(times["png"], times["evalgen"])]
    print(f"FID: png path {common['frechet_inception_distance']:.4f}, evalgen {ours.fid:.4f} "
          f"(reference cached: {ours.reference_cached}; warm-up run cached: {warm.reference_cached})")
    if args.prc:
        print(f"precision/recall on {ours.precision_recall_samples} vs {ours.precision_recall_samples}: png path "
              f"{common['precision']:.4f}/{common['recall']:.4f}, evalgen {ours.precision:.4f}/{ours.recall:.4f}")
    print(f"png+folder / evalgen = {png / mem:.2f}x (medians {png:.2f} s vs {mem:.2f} s; "
          f"per-round ratios {min(pairs):.2f}-{max(pairs):.2f})")
    print("PASS (>= 2x faster)" if png / mem >= 2 else "BELOW TARGET (< 2x)")


if __name__ == "__main__":
    main()
