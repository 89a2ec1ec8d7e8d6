"""catalog.safe_yaml.Loader gives exactly what the loader it speeds up gives (yaml.CSafeLoader with libyaml, else
yaml.SafeLoader), for plain documents and all the others, errors included."""

import pytest
import yaml

from catalog.safe_yaml import Loader

REFERENCE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DOCUMENTS = [
    "a: 1\nb: [1, 2.5, true, null, ~, 2024-01-02, 2024-01-02 10:00:00Z, '3', \"x\"]\n",
    "x: 0o17\ny: 0x1F\nz: 1_000\nw: .inf\nv: -.nan\nu: 1e3\nt: yes\ns: Off\n",
    "2024-01-01: a\n1: b\nnull: c\ntrue: d\n",
    "a: 1\na: 2\nb: 3\n",  # a repeated key: the last value, in the first key's place
    "- a\n- [b, {c: d}]\n- {e: [f]}\n",
    "a: |\n  multi\n  line\nb: >\n  folded\n  text\n",
    "x: !!binary aGVsbG8=\ny: !!str 12\nz: !!int '7'\nw: !!float 1\n",
    "a: !!map {b: 1}\nc: !!seq [1]\n",
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",  # merge keys
    "=: 1\nx: 2\n",  # the value key
    "!!set {a, b}\n",
    "!!omap [a: 1, b: 2]\n",
    "k: &anchor v\n",
    "",
    "---\na: 1\n---\nb: 2\n...\n",
]
BROKEN = [
    "? [1, 2]\n: x\n",  # an unhashable key
    "x: !custom 1\n",
    "!!python/object:os.system x\n",
    "a: [1, 2\n",
    "a: b: c\n",
]


def _load(text: str, loader: type, *, every: bool) -> object:
    return list(yaml.load_all(text, Loader=loader)) if every else yaml.load(text, Loader=loader)  # noqa: S506


@pytest.mark.parametrize(
    ("text", "every"),
    # yaml.load reads one document: streams of several are compared with load_all only.
    [(text, every) for text in DOCUMENTS for every in (True, False) if every or not text.startswith("---")],
)
def test_documents_load_exactly_as_with_the_reference_loader(text, every):
    expected = _load(text, REFERENCE, every=every)
    loaded = _load(text, Loader, every=every)
    assert repr(loaded) == repr(expected)  # repr: nan != nan, and key order counts


@pytest.mark.parametrize("text", BROKEN)
def test_errors_are_the_reference_loaders(text):
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.load(text, Loader=REFERENCE)  # noqa: S506
    with pytest.raises(type(expected.value)) as raised:
        yaml.load(text, Loader=Loader)  # noqa: S506
    assert str(raised.value) == str(expected.value)


def test_aliases_keep_sharing_one_object_and_recursion_works():
    shared = yaml.load("a: &a [1]\nb: *a\n", Loader=Loader)  # noqa: S506
    assert shared["a"] is shared["b"]
    looped = yaml.load("a: &a\n  b: *a\n", Loader=Loader)  # noqa: S506
    assert looped["a"]["b"] is looped["a"]


DEEP = [
    "a: " + "[" * 600 + "]" * 600 + "\n",  # flow lists, built by the plain path
    "a: " + "{b: " * 300 + "1" + "}" * 300 + "\n",  # flow mappings
    "".join("  " * level + "- \n" for level in range(150)) + "  " * 150 + "x\n",  # block lists
    "t: !!set {a}\na: " + "[" * 600 + "]" * 600 + "\n",  # not plain: PyYAML's constructor, checked first
]


@pytest.mark.parametrize("text", DEEP)
def test_deep_nesting_is_a_yaml_error_naming_its_line_not_a_recursion_error(text):
    with pytest.raises(yaml.YAMLError) as raised:
        list(yaml.load_all(text, Loader=Loader))  # noqa: S506
    assert isinstance(raised.value, yaml.MarkedYAMLError) and raised.value.problem_mark is not None
    assert "nested more than 100 levels deep" in str(raised.value)


def test_nesting_up_to_the_limit_loads():
    text = "a: " + "[" * 99 + "1" + "]" * 99 + "\n"  # the mapping and 99 lists: 100 levels
    value = yaml.load(text, Loader=Loader)  # noqa: S506
    for _ in range(100):
        value = value["a"] if isinstance(value, dict) else value[0]
    assert value == 1
