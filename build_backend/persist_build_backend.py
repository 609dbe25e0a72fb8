"""The build backend of persist-store: maturin's, except that it never downloads Rust.

Where ``cargo`` is not on PATH, maturin's backend installs a Rust toolchain (several hundred MB)
into a temporary directory without asking. This backend stops instead, with a message that says
what to install; setting ``PERSIST_BUILD_INSTALL_RUST=1`` restores maturin's behaviour.

pyproject.toml names it (``build-backend``, with ``backend-path``); it ships in the sdist.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

# maturin reads this before it would fetch a toolchain (in get_requires_for_build_* and
# before every command it runs); set before maturin is imported.
if os.environ.get("PERSIST_BUILD_INSTALL_RUST") != "1":
    os.environ["MATURIN_NO_INSTALL_RUST"] = "1"

import maturin  # noqa: E402 - after the environment it reads

NO_CARGO = """
persist-store: building from source needs Rust's cargo (Rust 1.85 or newer), and there is no
`cargo` on PATH.
  - Install Rust (https://rustup.rs, or the system's package manager) and run pip again, or
  - install a prebuilt wheel instead: pip install --only-binary persist-store persist-store
To let the build download a temporary Rust toolchain (several hundred MB) instead, set
PERSIST_BUILD_INSTALL_RUST=1.
"""


def _need_cargo() -> None:
    if os.environ.get("PERSIST_BUILD_INSTALL_RUST") == "1":
        return
    if shutil.which("cargo") is None:
        sys.stderr.write(NO_CARGO)
        sys.stderr.flush()
        raise SystemExit(1)


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(
    config_settings: Mapping[str, Any] | None = None,
) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_editable(config_settings)


def get_requires_for_build_sdist(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    _need_cargo()
    return maturin.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    _need_cargo()
    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    _need_cargo()
    return maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _need_cargo()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _need_cargo()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    _need_cargo()
    return maturin.build_sdist(sdist_directory, config_settings)
