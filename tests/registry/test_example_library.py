"""The example library shipped in prompts/ lints clean and every sample renders."""

from __future__ import annotations

import pytest

from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.prompts.lint import ERROR, lint_library


@pytest.fixture
def example_library(project_root) -> PromptLibrary:
    if not (project_root / "prompts").is_dir():
        pytest.fail("the example library prompts/ is missing")
    return PromptLibrary(project_root)


def test_the_example_library_has_prompts(example_library):
    assert len(example_library.list()) >= 3


def test_the_example_library_lints_without_errors(example_library):
    errors = [str(f) for f in lint_library(example_library) if f.severity == ERROR]
    assert errors == []


def test_every_sample_of_every_example_prompt_renders(example_library):
    rendered = 0
    for name in example_library.list():
        version = example_library.get(name)
        assert version.prompt.samples, f"{name} has no samples"
        for sample in version.prompt.samples:
            result = version.render(sample)
            if result.is_chat:
                assert result.messages, name
                assert all(m.content for m in result.messages), name
            else:
                assert result.text, name
            rendered += 1
    assert rendered >= len(example_library.list())
