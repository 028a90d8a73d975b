"""``python -m search.space check``, run as users run it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from search.errors import SettingsError
from search.space.cli import parse_shape


def check(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.space", "check", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_check_prints_space_survey_and_extreme_models(tmp_path):
    result = check("mnist", "--input", "28x28x1", "--samples", "300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "learning_rate" in out and "log-uniform [0.0001, 0.1]" in out
    assert "optimizer is sgd or rmsprop" in out  # momentum's condition
    assert "of 300 sampled configs can be trained on 28x28x1 images" in out
    assert "more than max_params 1,000,000" in out
    assert "Smallest model found" in out and "Largest model found" in out
    assert "block1_conv1" in out and "(28, 28," in out


def test_check_imports_neither_tensorflow_nor_ray(tmp_path):
    code = ("import sys; from search.space.cli import main; main(['check', 'default', "
            "'--samples', '20']); print(sorted(m for m in ('tensorflow', 'keras', 'ray') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_check_counts_grid_points(tmp_path):
    result = check("grid_optimizers", "--samples", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "grid points: 84 (84 trainable on 8x8x1 images)" in result.stdout


def test_check_of_a_space_that_cannot_fit_fails(tmp_path):
    (tmp_path / "deep.yaml").write_text("conv_blocks: 5\n")
    result = check("deep.yaml", "--input", "8x8x1", "--samples", "20", cwd=tmp_path)
    assert result.returncode == 2
    assert "0 of 20 sampled configs" in result.stdout
    assert "block4_pool: 2x2 pooling needs" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "convsearch: error: none of 20 sampled configs can be trained on 8x8x1 images"]


@pytest.mark.parametrize(("args", "message"), [
    (["nope.yaml", "--input", "8x8x1"], "space file not found: nope.yaml"),
    (["default", "--input", "8x8"], "--input '8x8' is not an image shape like 28x28x1"),
    (["bad.yaml"], "bad.yaml:1: optimizer.choices: 'adamw2' is not a Keras optimizer"),
    (["plain.yaml"], "plain.yaml gives no input_shape; pass --input HxWxC"),
])
def test_check_user_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("optimizer: {choices: [adamw2]}\n")
    (tmp_path / "plain.yaml").write_text("optimizer: adam\n")
    result = check(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_parse_shape():
    assert parse_shape("28x28x1") == (28, 28, 1)
    assert parse_shape(" 32 x 32 x 3 ") == (32, 32, 3)
    for bad in ("28x28", "0x4x4", "axbxc"):
        with pytest.raises(SettingsError):
            parse_shape(bad)


def test_docs_reference_is_rendered_from_the_registries():
    # Defaults live in search/space/parameters.py; docs/spaces.md is their rendering.
    from search.space.cli import render_reference
    from tests.conftest import REPO

    committed = (REPO / "docs" / "spaces.md").read_text()
    assert committed == render_reference(), \
        "docs/spaces.md is stale: run python -m search.space reference > docs/spaces.md"


def test_reference_command_prints_every_knob(tmp_path):
    from search.space.parameters import KNOBS

    result = subprocess.run([sys.executable, "-m", "search.space", "reference"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in KNOBS:
        if not name.startswith("block") or name.startswith("block1."):
            assert f"`{name.replace('block1.', 'block*N*.')}`" in result.stdout, name
