"""What one run is: the identity of a result."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """One (plugin, model, dataset, budget, seed) with the plugin options."""

    plugin: str
    model: str
    dataset: str
    budget: str
    seed: int
    config: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """File-name-safe identity; plugin options add a short hash."""
        key = f"{self.plugin}--{self.model}--{self.dataset}--{self.budget}--seed{self.seed}"
        if self.config:
            blob = json.dumps(self.config, sort_keys=True).encode()
            key += "--cfg" + hashlib.sha256(blob).hexdigest()[:10]
        return key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
