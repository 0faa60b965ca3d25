"""Stand-in base images, so that podman builds the generated Dockerfile where nothing can be pulled.

    uv run python -m tests.images.base_images PROJECT/Dockerfile [--redis]

makes, once per machine, every image that Dockerfile starts from or copies from, tagged with the
exact name it uses (tests/test_image.py calls `ensure_base_images`). An image that already
exists under that name is used as it is: the stand-ins are the cache, and a real image pulled
under the same name would do as well. Each stand-in carries the label STAND_IN_LABEL:
`podman images --filter label=io.github.cookiecutter-arq.stand-in` lists them, and
`podman rmi` of those names makes them again on the next run.

- `python:X.Y-slim`: Debian bookworm (`debootstrap --variant=minbase`, with the libraries and
  files the official image adds), and the CPython X.Y that this machine's pyenv installed, copied
  to /usr/local without its site-packages, test suite or Tk, as the official image has it.
  /usr/local/lib goes into ld.so.conf: pyenv's interpreter finds libpython through it.
  The Debian root is made once and shared by every Python version (DEBIAN_IMAGE).
- `ghcr.io/astral-sh/uv:VERSION`: `FROM scratch` with `/uv` and `/uvx` from PyPI's `uv` wheel of
  that version, as Astral's image has them.
- `redis:7-alpine` (with `--redis`, for the compose run): Debian's redis-server and redis-cli
  (7.0) on the same Debian root, run from /data as the official image does.

podman needs the settings in containers.conf beside this file (`podman_environment`).
"""

import argparse
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
STAND_IN_LABEL = "io.github.cookiecutter-arq.stand-in"
DEBIAN_IMAGE = "localhost/cookiecutter-arq-stand-in/debian:bookworm-minbase"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:X.Y-slim adds to Debian: certificates, /etc/services and time zones, and the shared
# libraries its interpreter's modules link to (ssl, sqlite3, ctypes, bz2, lzma, readline, ...).
DEBIAN_PACKAGES = [
    "ca-certificates",
    "netbase",
    "tzdata",
    "libssl3",
    "libsqlite3-0",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libreadline8",
    "libncursesw6",
    "libexpat1",
    "libuuid1",
    "zlib1g",
]
PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
REDIS_IMAGE = "docker.io/library/redis:7-alpine"


def podman_environment(environment: dict[str, str] | None = None) -> dict[str, str]:
    """`environment` (else this process's) with podman's settings for this machine."""
    return {**(environment or os.environ), "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with this folder's settings; its output is captured as text."""
    result = subprocess.run(
        ["podman", *args],
        env=podman_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def qualified(name: str) -> str:
    """The name podman (and Docker) resolve a short image name to: `python:3.12-slim` is
    `docker.io/library/python:3.12-slim`."""
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def images_used_by(dockerfile: str) -> list[str]:
    """The images a Dockerfile starts from (`FROM`) or copies from (`COPY --from`), in order,
    without its own stage names."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.splitlines():
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE):
            source, stage = match.groups()
        elif match := re.match(r"COPY\s+--from=(\S+)", line.strip(), re.IGNORECASE):
            source, stage = match.group(1), None
        else:
            continue
        if source not in stages and source not in images:
            images.append(source)
        if stage:
            stages.add(stage)
    return images


def ensure_base_images(dockerfile: Path, environment: dict[str, str] | None = None) -> list[str]:
    """Make every image `dockerfile` uses that podman does not have; return their names.

    `environment` is the one to find `pythonX.Y` in (pyenv's shims need PYENV_VERSION).
    """
    images = images_used_by(dockerfile.read_text())
    for name in images:
        if not image_exists(name):
            make_image(name, environment)
    return images


def make_image(name: str, environment: dict[str, str] | None = None) -> None:
    repository, _, tag = qualified(name).rpartition(":")
    if repository == "docker.io/library/python" and (match := re.fullmatch(r"3\.\d+", tag[:4])):
        make_python_image(name, match.group(0), environment)
    elif repository == "ghcr.io/astral-sh/uv":
        make_uv_image(name, tag)
    elif qualified(name) == REDIS_IMAGE:
        make_redis_image(name)
    else:
        raise RuntimeError(f"no stand-in for {name}: only python:3.X-slim, uv and redis")


def make_debian_image() -> None:
    """Debian bookworm, minbase, with DEBIAN_PACKAGES: debootstrap (about a minute), then
    `podman import`."""
    if image_exists(DEBIAN_IMAGE):
        return
    with tempfile.TemporaryDirectory(prefix="stand-in-debian-") as workdir:
        root = Path(workdir) / "root"
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
            "bookworm",
            str(root),
            DEBIAN_MIRROR,
        )
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = Path(workdir) / "root.tar"
        run("tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), ".")
        podman(
            "import",
            "--change",
            f"ENV PATH={PATH}",
            "--change",
            'CMD ["bash"]',
            "--change",
            f"LABEL {STAND_IN_LABEL}=debootstrap-bookworm-minbase",
            str(archive),
            DEBIAN_IMAGE,
        )


def python_prefix(version: str, environment: dict[str, str] | None) -> Path:
    """Where this machine's CPython `version` (X.Y) is installed (pyenv's, or any on PATH)."""
    try:
        found = subprocess.run(
            [f"python{version}", "-c", "import sys; print(sys.base_prefix)"],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        message = f"no python{version} on this machine for python:{version}-slim: {error}"
        raise RuntimeError(message) from error
    return Path(found.stdout.strip())


def copy_python(prefix: Path, version: str, destination: Path) -> None:
    """The interpreter under `prefix` as the official image has it in /usr/local: bin/python*,
    lib/libpython*, lib/pythonX.Y without site-packages' contents, the test suite, Tk and the
    static library."""
    (destination / "bin").mkdir(parents=True)
    shutil.copy2(prefix / "bin" / f"python{version}", destination / "bin" / f"python{version}")
    for alias in ("python3", "python"):
        (destination / "bin" / alias).symlink_to(f"python{version}")
    (destination / "lib").mkdir()
    for library in (prefix / "lib").glob("libpython*"):
        shutil.copy2(library, destination / "lib" / library.name, follow_symlinks=False)
    left_out = {"test", "idlelib", "tkinter", "turtledemo"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == prefix / "lib" / f"python{version}":
            return left_out & set(names)
        if here.name == "site-packages":
            return {name for name in names if name != "README.txt"}
        return {name for name in names if name.endswith(".a")}  # config-X.Y-*/libpython*.a

    shutil.copytree(
        prefix / "lib" / f"python{version}",
        destination / "lib" / f"python{version}",
        symlinks=True,
        ignore=ignore,
    )


def make_python_image(name: str, version: str, environment: dict[str, str] | None) -> None:
    make_debian_image()
    prefix = python_prefix(version, environment)
    with tempfile.TemporaryDirectory(prefix="stand-in-python-") as context:
        copy_python(prefix, version, Path(context) / "python")
        build_image(
            name,
            context,
            f"""\
FROM {DEBIAN_IMAGE}
COPY python/ /usr/local/
RUN echo /usr/local/lib > /etc/ld.so.conf.d/usr-local.conf && ldconfig && python3 --version
ENV PATH={PATH} LANG=C.UTF-8
LABEL {STAND_IN_LABEL}="debian bookworm with CPython from {prefix}"
CMD ["python3"]
""",
            network="none",
        )


def make_uv_image(name: str, version: str) -> None:
    """`FROM scratch` with /uv and /uvx from the `uv` wheel of `version` for this machine."""
    with tempfile.TemporaryDirectory(prefix="stand-in-uv-") as context:
        # uv installs its own wheel: its binaries land in bin/ (uv is on every machine that
        # runs these tests; pip is not in every environment).
        wheel = Path(context) / "wheel"
        run("uv", "pip", "install", "--quiet", "--no-deps", f"--target={wheel}", f"uv=={version}")
        for binary in ("uv", "uvx"):
            shutil.copy2(wheel / "bin" / binary, Path(context) / binary)
        shutil.rmtree(wheel)
        build_image(
            name,
            context,
            f"""\
FROM scratch
COPY uv uvx /
LABEL {STAND_IN_LABEL}="uv {version} from PyPI's wheel"
""",
            network="none",
        )


def make_redis_image(name: str) -> None:
    """Debian's redis-server and redis-cli (apt, over the host's network), in /data."""
    make_debian_image()
    with tempfile.TemporaryDirectory(prefix="stand-in-redis-") as context:
        build_image(
            name,
            context,
            f"""\
FROM {DEBIAN_IMAGE}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
VOLUME /data
LABEL {STAND_IN_LABEL}="Debian's redis-server"
CMD ["redis-server"]
""",
            network="host",
        )


def build_image(name: str, context: str, containerfile: str, *, network: str) -> None:
    Path(context, "Containerfile").write_text(containerfile)
    podman(
        "build",
        "--pull=never",
        "--layers=false",
        f"--network={network}",
        "--tag",
        qualified(name),
        context,
    )


def run(*command: str) -> None:
    """Run a command; on failure, raise with the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = io.StringIO(result.stdout + result.stderr).readlines()[-20:]
        raise RuntimeError(f"{command[0]} exited {result.returncode}:\n{''.join(output)}")


def main(argv: Sequence[str] | None = None) -> None:
    from ..conftest import tool_environment

    parser = argparse.ArgumentParser(prog="python -m tests.images.base_images")
    parser.add_argument("dockerfile", type=Path, help="a generated project's Dockerfile")
    parser.add_argument("--redis", action="store_true", help=f"also {REDIS_IMAGE}")
    args = parser.parse_args(argv)
    names = ensure_base_images(args.dockerfile, tool_environment())
    if args.redis and not image_exists(REDIS_IMAGE):
        make_redis_image(REDIS_IMAGE)
    for name in [*names, *([REDIS_IMAGE] if args.redis else [])]:
        print(name)


if __name__ == "__main__":
    main()
