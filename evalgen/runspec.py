"""What one run is: the identity of a result."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """One (plugin, model, dataset, budget, seed) with the plugin options.

    ``importance_samples`` overrides the budget's test-set sample count for an importance-sampled
    likelihood (IWAE's K); None keeps the budget's.
    """

    plugin: str
    model: str
    dataset: str
    budget: str
    seed: int
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    importance_samples: int | None = None

    @property
    def key(self) -> str:
        """File-name-safe identity; plugin options add a short hash."""
        key = f"{self.plugin}--{self.model}--{self.dataset}--{self.budget}--seed{self.seed}"
        if self.config:
            blob = json.dumps(self.config, sort_keys=True).encode()
            key += "--cfg" + hashlib.sha256(blob).hexdigest()[:10]
        if self.importance_samples is not None:
            key += f"--K{self.importance_samples}"
        return key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
