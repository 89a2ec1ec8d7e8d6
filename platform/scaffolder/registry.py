"""The golden paths shipped in golden_paths/: each folder's template.yaml, read once and validated.

A path's parameters are a JSON Schema subset (strings with pattern/enum/length, bounded integers, booleans),
grouped into wizard steps. Answers are checked with jsonschema, and the errors are turned into per-field messages.
"""

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator

from portal.validators import BIDI_CONTROLS, bidi_controls_refuse

SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
# C0 controls except tab and newline, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
# Answers Runway adds itself; a path must not ask for them.
RESERVED = ("owner", "system", "golden_path", "golden_path_version", "author", "today", "runway_url")


class GoldenPathError(ValueError):
    """A template.yaml that cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True)
class Step:
    title: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class GoldenPath:
    name: str
    title: str
    description: str
    owner: str
    version: str
    tags: tuple[str, ...]
    schema: dict[str, Any]
    steps: tuple[Step, ...]
    folder: Path = field(compare=False)

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return self.schema.get("properties", {})

    def defaults(self) -> dict[str, Any]:
        return {name: spec["default"] for name, spec in self.properties.items() if "default" in spec}

    def validate(self, answers: dict[str, Any], *, only: tuple[str, ...] | None = None) -> dict[str, list[str]]:
        """Field errors for `answers` (all fields, or just `only`); an empty dict when they are valid."""
        errors: dict[str, list[str]] = {}
        for name in set(answers) - set(self.properties):
            errors.setdefault(name, []).append("This golden path has no such parameter.")
        for error in Draft202012Validator(self.schema).iter_errors(answers):
            if error.validator == "required":
                name = error.message.split("'")[1]
                message = "This field is required."
            else:
                name = str(error.path[0]) if error.path else "__all__"
                message = _message(error, self.properties.get(name, {}))
            errors.setdefault(name, []).append(message)
        for name, value in answers.items():
            spec = self.properties.get(name, {})
            if not isinstance(value, str):
                continue
            multiline = spec.get("maxLength", 0) > 120 and "pattern" not in spec
            if _CONTROL.search(value) or (not multiline and ("\n" in value or "\r" in value)):
                errors.setdefault(name, []).append("Control characters and line breaks are not allowed here.")
            elif BIDI_CONTROLS.search(value):
                try:
                    bidi_controls_refuse(value)
                except ValidationError as error:
                    errors.setdefault(name, []).extend(error.messages)
            elif "pattern" in spec and not errors.get(name) and re.fullmatch(spec["pattern"], value) is None:
                # jsonschema searches; a pattern ending in $ would accept a trailing newline.
                errors.setdefault(name, []).append(_message_for("pattern", spec))
        if only is not None:
            errors = {name: messages for name, messages in errors.items() if name in only}
        return errors


def _message(error: Any, spec: dict[str, Any]) -> str:
    """A sentence a person can act on, instead of jsonschema's repr of the value."""
    return _message_for(error.validator, spec) or error.message


def _message_for(kind: str, spec: dict[str, Any]) -> str:
    if kind == "pattern":
        return spec.get("patternDescription") or spec.get("description") or f"Use the form {spec['pattern']}."
    if kind == "minLength":
        return f"At least {spec['minLength']} characters."
    if kind == "maxLength":
        return f"At most {spec['maxLength']} characters."
    if kind == "minimum":
        return f"At least {spec['minimum']}."
    if kind == "maximum":
        return f"At most {spec['maximum']}."
    if kind == "enum":
        return f"Choose one of: {', '.join(str(v) for v in spec['enum'])}."
    if kind == "type":
        return {"integer": "Enter a whole number.", "boolean": "Choose yes or no.", "string": "Enter text."}.get(
            spec.get("type", ""), "This value has the wrong type."
        )
    return ""


def load(folder: Path) -> GoldenPath:
    """The golden path in `folder` (named as the folder), validated."""
    return _load(folder)


def _load(folder: Path) -> GoldenPath:
    source = folder / "template.yaml"
    try:
        data = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GoldenPathError(f"{source}: cannot be read: {error}") from error
    if not isinstance(data, dict):
        raise GoldenPathError(f"{source}: must be a mapping")
    name = data.get("name")
    if name != folder.name:
        raise GoldenPathError(f"{source}: name {name!r} must equal the folder name {folder.name!r}")
    if not SEMVER.match(str(data.get("version", ""))):
        raise GoldenPathError(f"{source}: version must look like 1.2.3")
    schema = data.get("parameters") or {"type": "object", "properties": {}}
    Draft202012Validator.check_schema(schema)
    properties = schema.get("properties", {})
    reserved = set(properties) & set(RESERVED)
    if reserved:
        raise GoldenPathError(f"{source}: {sorted(reserved)} are answered by Runway, not by the user")
    steps = tuple(Step(title=str(s["title"]), fields=tuple(s["fields"])) for s in data.get("steps") or [])
    listed = [name for step in steps for name in step.fields]
    if sorted(listed) != sorted(properties):
        raise GoldenPathError(f"{source}: every parameter must appear in exactly one step")
    return GoldenPath(
        name=name,
        title=str(data.get("title") or name),
        description=str(data.get("description") or ""),
        owner=str(data.get("owner") or ""),
        version=str(data["version"]),
        tags=tuple(data.get("tags") or ()),
        schema=schema,
        steps=steps,
        folder=folder,
    )


@functools.cache
def _all(root: str) -> dict[str, GoldenPath]:
    paths: dict[str, GoldenPath] = {}
    if not Path(root).is_dir():
        return paths
    for folder in sorted(Path(root).iterdir()):
        if (folder / "template.yaml").is_file():
            path = _load(folder)
            paths[path.name] = path
    return paths


def golden_path_list() -> list[GoldenPath]:
    return list(_all(str(settings.GOLDEN_PATHS_DIR)).values())


def golden_path_get(name: str) -> GoldenPath | None:
    return _all(str(settings.GOLDEN_PATHS_DIR)).get(name)
