"""Regenerate evactors' Python protobuf modules and purerpc stubs from proto/.

Usage: python scripts/generate_protos.py [--out DIR]

Writes src/evactors/_generated/ (or DIR) anew: `*_pb2.py` and `*_pb2.pyi` for every file
under proto/, and purerpc stubs (`*_grpc.py`) for evactors' own services. protoc writes
imports as if each proto package were a top-level Python package (`from containerd.types
import mount_pb2`); this script rewrites them to live under `evactors._generated` so that
evactors puts nothing but `evactors` on sys.path. The output depends only on proto/ and on
the pinned grpcio-tools: tests/test_generated_code.py regenerates it and compares.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "src" / "evactors" / "_generated"
GENERATED_PACKAGE = "evactors._generated"
# Only evactors' own services get purerpc stubs: containerd is called through
# evactors.containerd's own client, which needs the messages only.
STUB_PROTOS = ("evactors/",)


def proto_files() -> list[str]:
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def run_protoc(out: Path, files: list[str]) -> None:
    stubs = [f for f in files if f.startswith(STUB_PROTOS)]
    plugin = shutil.which("protoc-gen-purerpc", path=str(Path(sys.executable).parent))
    if plugin is None:
        sys.exit("protoc-gen-purerpc not found next to this Python: pip install -e '.[dev]'")
    base = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}"]
    subprocess.run([*base, f"--python_out={out}", f"--pyi_out={out}", *files], check=True)
    subprocess.run(
        [*base, f"--plugin=protoc-gen-purerpc={plugin}", f"--purerpc_out={out}", *stubs],
        check=True,
    )


def rewrite_imports(out: Path) -> None:
    """Point imports of our own proto packages at evactors._generated."""
    packages = sorted(
        {p.parent.relative_to(out).as_posix().replace("/", ".") for p in out.rglob("*_pb2.py")},
        key=len,
        reverse=True,
    )
    alternatives = "|".join(re.escape(p) for p in packages)
    pattern = re.compile(rf"^(from|import) ({alternatives})(?=[ .])", re.MULTILINE)
    for path in sorted([*out.rglob("*.py"), *out.rglob("*.pyi")]):
        text = path.read_text()
        path.write_text(pattern.sub(rf"\1 {GENERATED_PACKAGE}.\2", text))


def add_package_markers(out: Path) -> None:
    for folder in sorted({out, *(p for p in out.rglob("*") if p.is_dir())}):
        (folder / "__init__.py").touch()


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        run_protoc(work, proto_files())
        rewrite_imports(work)
        add_package_markers(work)
        (work / "__init__.py").write_text(
            '"""Generated from proto/ by scripts/generate_protos.py. Do not edit."""\n'
        )
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
