"""Call scripts (config/call_scripts.yaml): a few numbered steps per alert category for the nurse's call.

Loaded and validated once per process (runtime.build_runtime): a malformed file stops start-up with a message
naming the file; a category without a script simply shows none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CallScriptError(ValueError):
    pass


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=120, pattern=r"[^\s]")
    steps: tuple[str, ...] = Field(min_length=3, max_length=5)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    scripts: dict[str, _Script]


@dataclass(frozen=True)
class CallScript:
    title: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class CallScripts:
    by_category: Mapping[str, CallScript] = field(default_factory=dict)

    def get(self, category: str) -> CallScript | None:
        return self.by_category.get(category)


def load_call_scripts(path: Path) -> CallScripts:
    try:
        data = _File.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise CallScriptError(f"{path.name}: {exc}") from None
    scripts: dict[str, CallScript] = {}
    for category, script in data.scripts.items():
        if not category.replace("_", "").isalnum() or not category.islower():
            raise CallScriptError(f"{path.name}: {category!r} is not an alert category name")
        for number, step in enumerate(script.steps, 1):
            if not step.strip() or len(step) > 300:
                raise CallScriptError(f"{path.name}: {category} step {number} must be 1-300 characters")
        scripts[category] = CallScript(script.title.strip(), tuple(s.strip() for s in script.steps))
    return CallScripts(scripts)
