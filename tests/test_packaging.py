"""The distribution: what a user's ``pip install django-perf[...]`` actually receives."""

import email
import subprocess
import sys
import zipfile

import pytest

import django_perf
from tests.support.env import ROOT

EXTRAS = {"redis", "postgres", "channels", "memory", "prometheus", "speedups", "all", "dev"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (path,) = out.glob("django_perf-*.whl")
    return zipfile.ZipFile(path)


def tracked_package_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "django_perf"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {name for name in listed.stdout.split() if not name.endswith(".gitkeep")}


def test_the_wheel_ships_every_package_file_and_the_type_marker(wheel):
    names = set(wheel.namelist())
    assert "django_perf/py.typed" in names
    assert "django_perf/migrations/0001_initial.py" in names
    missing = tracked_package_files() - names
    assert not missing, f"files in git but not in the wheel: {sorted(missing)}"


def test_the_version_has_one_source(wheel):
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Version"] == django_perf.__version__
    assert metadata["Requires-Python"] == ">=3.11"


def test_core_dependencies_stay_small_and_the_rest_are_extras(wheel):
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    requires = metadata.get_all("Requires-Dist")
    core = sorted(r.split(">")[0].split("<")[0] for r in requires if "extra ==" not in r)
    assert core == ["Django", "psutil"]
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    assert any(r.startswith("django-redis") and 'extra == "redis"' in r for r in requires)
    assert any(r.startswith("psycopg[") and 'extra == "postgres"' in r for r in requires)
