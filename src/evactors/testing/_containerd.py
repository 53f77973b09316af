"""A private, throw-away containerd for tests.

:func:`start_private_containerd` runs a real ``containerd`` whose root, state,
sockets, logs and IO fifos all live in one directory, and
:func:`stop_private_containerd` tears it down again so that no process, mount
or file is left behind.

Isolation from the host
-----------------------
containerd 1.6 hard-codes some paths below ``/run/containerd``: the shims'
sockets (``/run/containerd/s/<hash>``) and runc's state
(``/run/containerd/runc/<namespace>``). To keep those off the host, containerd
is started in a private mount namespace (``unshare --mount --propagation
private``) in which ``<dir>/run`` is bind-mounted over ``/run``. Everything
containerd, its shims and runc write under ``/run`` therefore lands in
``<dir>/run``, and the overlay mounts of the snapshotter stay inside that
namespace too: the host's mount table never sees them, and they vanish when the
last process of the namespace (containerd, shims, containers) exits.
``ctr`` runs on the host, so every helper that makes ``ctr`` open IO fifos
passes ``--fifo-dir <dir>/fifo`` (otherwise ctr would create
``/run/containerd/fifo``).

What is *not* private: containers still get cgroups named
``/<namespace>/<container id>`` in the host's cgroup hierarchy (runc removes the
leaf when a task is deleted; :func:`stop_private_containerd` removes leaves of
tasks it had to kill), and container ids share that cgroup namespace with any
other containerd on the machine, so use unique ids.

Shims
-----
A shim is ``containerd-shim-runc-v2 -namespace NS -id ID -address SOCK``; it
re-parents to init, keeps running after containerd dies, and a container whose
shim dies keeps running too. A shim belongs to a private containerd when its
command line carries ``-address <its socket>`` or its working directory (the
task bundle) is under its state directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = [
    "CtrError",
    "PrivateContainerd",
    "containerd_available",
    "find_shims",
    "mounts_under",
    "private_containerd",
    "start_private_containerd",
    "stop_private_containerd",
]

#: Longest socket path we accept: ``sun_path`` is 108 bytes including the NUL,
#: and containerd appends ``.ttrpc`` to the gRPC socket for its ttrpc socket.
_MAX_SOCKET_PATH = 100
_SOCKET_NAME = "containerd.sock"
_TASK_STATE = "io.containerd.runtime.v2.task"
_SHIM_COMM_PREFIX = "containerd-shim"


class CtrError(subprocess.CalledProcessError):
    """A ``ctr`` command exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list | tuple) else str(self.cmd)
        err = (self.stderr or "").strip()
        out = (self.stdout or "").strip()
        msg = f"`{cmd}` exited with {self.returncode}"
        if err:
            msg += f"\nstderr:\n{err}"
        if out:
            msg += f"\nstdout:\n{out}"
        return msg


def _ctr_binary() -> str:
    return shutil.which("ctr") or "ctr"


def _kv_args(flag: str, items: Mapping[str, str] | None) -> list[str]:
    return [arg for k, v in (items or {}).items() for arg in (flag, f"{k}={v}")]


def _container_args(
    image: str,
    container_id: str,
    cmd: Sequence[str],
    *,
    labels: Mapping[str, str] | None,
    env: Mapping[str, str] | None,
    extra_args: Sequence[str],
) -> list[str]:
    """The tail every `ctr` command that makes a container shares."""
    return [
        *_kv_args("--label", labels),
        *_kv_args("--env", env),
        *extra_args,
        image,
        container_id,
        *cmd,
    ]


def _not_found(err: CtrError) -> bool:
    text = f"{err.stderr or ''}{err.stdout or ''}".lower()
    return "not found" in text or "no such" in text


@attrs.frozen
class PrivateContainerd:
    """A running private containerd made by :func:`start_private_containerd`.

    ``dir`` holds everything it writes (``config.toml``, ``containerd.log``,
    ``root/``, ``state/``, ``run/``, ``fifo/``); ``address`` is its gRPC socket
    (its ttrpc socket is ``address`` + ``.ttrpc``), ``pid`` its process id.
    ``socket_dir`` is a short directory under ``/tmp`` holding the sockets when
    ``dir`` is too long for ``AF_UNIX`` paths, else ``None``.

    The object owns the process: release it with
    :func:`stop_private_containerd` (or use :func:`private_containerd`).
    """

    dir: Path
    address: Path
    pid: int
    socket_dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def root(self) -> Path:
        """containerd's persistent root (content store, snapshots, metadata)."""
        return self.dir / "root"

    @property
    def state(self) -> Path:
        """containerd's state dir (task bundles, one per running task)."""
        return self.dir / "state"

    @property
    def fifo_dir(self) -> Path:
        """Where helpers tell ``ctr`` to create IO fifos."""
        return self.dir / "fifo"

    @property
    def log_path(self) -> Path:
        """containerd's stdout and stderr."""
        return self.dir / "containerd.log"

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of containerd's log ("" if none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def ctr(
        self,
        *args: str,
        namespace: str = "default",
        check: bool = True,
        timeout: float = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr -a ADDRESS -n NAMESPACE ARGS...`` and return the result.

        Output is captured as text; stdin is ``input`` or ``/dev/null``. When
        ``check`` is true a non-zero exit raises :class:`CtrError` (whose
        message includes stderr). Past ``timeout`` seconds ctr is killed and
        :class:`subprocess.TimeoutExpired` is raised.
        """
        cmd = [_ctr_binary(), "-a", str(self.address), "-n", namespace, *args]
        proc = subprocess.run(
            cmd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CtrError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def version(self) -> str:
        """Return the server version as ``ctr version`` prints it (``1.6.20~ds1``)."""
        out = self.ctr("version").stdout
        in_server = False
        for line in out.splitlines():
            stripped = line.strip()
            if stripped == "Server:":
                in_server = True
            elif in_server and stripped.startswith("Version:"):
                return stripped.split(":", 1)[1].strip()
        raise RuntimeError(f"no server version in `ctr version` output:\n{out}")

    def import_image(self, tarball: Path, namespace: str = "default") -> None:
        """Import an image tarball (OCI layout or docker archive) into ``namespace``."""
        self.ctr("images", "import", str(tarball), namespace=namespace, timeout=60)

    def namespaces(self) -> list[str]:
        """Return the names of containerd's namespaces."""
        return self.ctr("namespaces", "ls", "-q").stdout.split()

    def containers(self, namespace: str = "default") -> list[str]:
        """Return the ids of the containers in ``namespace``."""
        return self.ctr("containers", "ls", "-q", namespace=namespace).stdout.split()

    def tasks(self, namespace: str = "default") -> dict[str, str]:
        """Return ``{container id: status}`` from ``ctr tasks ls`` (e.g. ``RUNNING``)."""
        out = self.ctr("tasks", "ls", namespace=namespace).stdout
        result: dict[str, str] = {}
        for line in out.splitlines()[1:]:  # first line is the TASK PID STATUS header
            fields = line.split()
            if len(fields) >= 3:
                result[fields[0]] = fields[2]
        return result

    def run(
        self,
        image: str,
        container_id: str,
        *cmd: str,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        namespace: str = "default",
        check: bool = True,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """``ctr run --rm``: run ``cmd`` in a new container and wait for it.

        The container and its task are removed when it exits. ``returncode``
        is the container's exit status (ctr passes it through; a command that
        cannot even start gives 1). IO goes through fifos in :attr:`fifo_dir`
        and is captured in the result.
        """
        return self.ctr(
            "run",
            "--rm",
            "--fifo-dir",
            str(self.fifo_dir),
            *_container_args(
                image, container_id, cmd, labels=labels, env=env, extra_args=extra_args
            ),
            namespace=namespace,
            check=check,
            timeout=timeout,
        )

    def create(
        self,
        image: str,
        container_id: str,
        *cmd: str,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        namespace: str = "default",
    ) -> None:
        """``ctr container create``: make a container (no task). Remove it with
        :meth:`delete_container`."""
        self.ctr(
            "containers",
            "create",
            *_container_args(
                image, container_id, cmd, labels=labels, env=env, extra_args=extra_args
            ),
            namespace=namespace,
        )

    def start_task(self, container_id: str, namespace: str = "default") -> None:
        """``ctr task start -d --null-io``: start the task of a created container
        and return at once (its IO goes to ``/dev/null``)."""
        self.ctr(
            "tasks",
            "start",
            "-d",
            "--null-io",
            "--fifo-dir",
            str(self.fifo_dir),
            container_id,
            namespace=namespace,
        )

    def start_detached(
        self,
        image: str,
        container_id: str,
        *cmd: str,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        namespace: str = "default",
    ) -> None:
        """``ctr run -d --null-io``: start a long-running container (e.g.
        ``sleep 1000``) and return once its task runs. Remove it with
        :meth:`delete_container`."""
        self.ctr(
            "run",
            "-d",
            "--null-io",
            "--fifo-dir",
            str(self.fifo_dir),
            *_container_args(
                image, container_id, cmd, labels=labels, env=env, extra_args=extra_args
            ),
            namespace=namespace,
        )

    def delete_container(self, container_id: str, namespace: str = "default") -> None:
        """Remove a container and its task, whatever state they are in.

        ``ctr task delete --force`` SIGKILLs a live task, waits for it and
        deletes it; then the container (and its snapshot) is deleted. A missing
        task or container is not an error.
        """
        for args in (
            ("tasks", "delete", "--force", container_id),
            ("containers", "delete", container_id),
        ):
            try:
                self.ctr(*args, namespace=namespace)
            except CtrError as err:
                if not _not_found(err):
                    raise

    def remove_namespace(self, namespace: str, timeout: float = 5.0) -> None:
        """Delete every container (with its task) and image of ``namespace``, then the
        namespace itself. Deleted containers' snapshots go with containerd's next
        garbage collection, and only an empty namespace can be removed: this retries
        for up to ``timeout`` seconds, then raises :class:`CtrError`."""
        for container_id in self.containers(namespace):
            self.delete_container(container_id, namespace=namespace)
        images = self.ctr("images", "ls", "-q", namespace=namespace).stdout.split()
        for image in images:
            self.ctr("images", "rm", "--sync", image, namespace=namespace, check=False)
        deadline = time.monotonic() + timeout
        while self.ctr("namespaces", "remove", namespace, check=False).returncode:
            if time.monotonic() > deadline:
                self.ctr("namespaces", "remove", namespace)  # raises, saying why
            time.sleep(0.02)


# --------------------------------------------------------------------------
# availability


def containerd_available() -> str | None:
    """Return ``None`` if a private containerd can run here, else why not.

    Needs root and ``containerd``, ``ctr``, ``runc``, ``unshare`` and ``mount``
    on ``PATH``.
    """
    if os.geteuid() != 0:
        return "a private containerd needs root"
    missing = [
        tool
        for tool in ("containerd", "ctr", "runc", "unshare", "mount")
        if shutil.which(tool) is None
    ]
    if missing:
        return f"not on PATH: {', '.join(missing)}"
    return None


# --------------------------------------------------------------------------
# start


def _config_toml(dir_: Path, address: Path) -> str:
    def q(p: Path) -> str:
        return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            "version = 2",
            f"root = {q(dir_ / 'root')}",
            f"state = {q(dir_ / 'state')}",
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "",
            "[grpc]",
            f"  address = {q(address)}",
            "",
            "[ttrpc]",
            f"  address = {q(Path(str(address) + '.ttrpc'))}",
            "",
            "[debug]",
            f"  address = {q(address.parent / 'debug.sock')}",
            "",
        ]
    )


def _socket_answers(address: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(address))
        except OSError:
            return False
    return True


def start_private_containerd(base_dir: Path, *, timeout: float = 20.0) -> PrivateContainerd:
    """Start a containerd that keeps everything in ``base_dir`` and wait until
    it answers ``ctr version``.

    ``base_dir`` is created if needed (it should be empty: it is removed by
    :func:`stop_private_containerd`). If its path is too long for the sockets,
    they go to a fresh short directory under ``/tmp`` instead. containerd runs
    in a private mount namespace (see the module doc) with its output in
    ``base_dir/containerd.log``. If it exits or does not answer within
    ``timeout`` seconds, it is stopped, the directories are removed and
    :class:`RuntimeError` is raised with the log's tail.
    """
    reason = containerd_available()
    if reason is not None:
        raise RuntimeError(f"cannot start a private containerd: {reason}")
    dir_ = base_dir.absolute()
    dir_.mkdir(parents=True, exist_ok=True)
    for sub in ("root", "state", "run", "fifo"):
        (dir_ / sub).mkdir(exist_ok=True)

    socket_dir: Path | None = None
    address = dir_ / _SOCKET_NAME
    if len(os.fsencode(f"{address}.ttrpc")) > _MAX_SOCKET_PATH:
        socket_dir = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
        address = socket_dir / _SOCKET_NAME

    config = dir_ / "config.toml"
    config.write_text(_config_toml(dir_, address))

    # unshare execs sh which execs containerd: the child's pid is containerd's.
    cmd = [
        shutil.which("unshare") or "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        'mount --bind "$1" /run && exec containerd --config "$2"',
        "sh",
        str(dir_ / "run"),
        str(config),
    ]
    with (dir_ / "containerd.log").open("ab") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=dir_,
            start_new_session=True,  # a ^C in the terminal must not hit it first
        )
    ctd = PrivateContainerd(
        dir=dir_, address=address, pid=process.pid, socket_dir=socket_dir, process=process
    )

    try:
        problem = _wait_ready(ctd, process, timeout)
    except BaseException:
        stop_private_containerd(ctd)
        raise
    if problem is None:
        return ctd
    tail = ctd.log_tail()
    stop_private_containerd(ctd)
    raise RuntimeError(f"private containerd in {dir_} {problem}; log tail:\n{tail}")


def _wait_ready(
    ctd: PrivateContainerd, process: subprocess.Popen[bytes], timeout: float
) -> str | None:
    """Poll until ``ctr version`` answers (``None``) or say what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            return f"exited with status {process.returncode}"
        # ctr spends 10 s dialling a socket that is not there: probe it first
        if ctd.address.exists() and _socket_answers(ctd.address):
            probe = ctd.ctr("--connect-timeout", "2s", "version", check=False, timeout=10)
            if probe.returncode == 0 and "Server:" in probe.stdout:
                return None
        if time.monotonic() > deadline:
            return f"did not answer within {timeout} s"
        time.sleep(0.05)


# --------------------------------------------------------------------------
# stop


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    # the state follows the parenthesised comm, which may itself hold spaces
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` is alive; return those still alive."""
    left = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for pid in left if _pid_alive(pid)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _containerd_running(ctd: PrivateContainerd) -> bool:
    """Whether containerd still runs; through our Popen (which reaps it, so a
    later call never signals a recycled pid) when we started it."""
    if ctd._process is not None:
        return ctd._process.poll() is None
    return _pid_alive(ctd.pid)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _is_under(path: str, parent: Path) -> bool:
    return path == str(parent) or path.startswith(str(parent).rstrip("/") + "/")


def find_shims(ctd: PrivateContainerd) -> list[int]:
    """Return the pids of live shim processes belonging to ``ctd``.

    A process is one of its shims when its ``comm`` starts with
    ``containerd-shim`` and either its command line has ``-address <socket>``
    or its working directory (the shim runs in the task bundle) is under
    ``ctd.state``. This also catches the short-lived ``... delete`` shim
    invocations containerd makes.
    """
    address = str(ctd.address)
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if not (entry / "comm").read_text(encoding="utf-8").startswith(_SHIM_COMM_PREFIX):
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        mine = any(
            a in {"-address", "--address"} and i + 1 < len(args) and args[i + 1] == address
            for i, a in enumerate(args)
        )
        if not mine:
            with contextlib.suppress(OSError):
                mine = _is_under(os.readlink(entry / "cwd"), ctd.state)
        if mine and _pid_alive(pid):
            pids.append(pid)
    return pids


def _task_bundles(ctd: PrivateContainerd) -> list[tuple[str, str, Path]]:
    """(namespace, container id, bundle dir) of every task bundle in the state dir."""
    base = ctd.state / _TASK_STATE
    found: list[tuple[str, str, Path]] = []
    with contextlib.suppress(OSError):
        for ns_dir in base.iterdir():
            if ns_dir.is_dir():
                found.extend((ns_dir.name, b.name, b) for b in ns_dir.iterdir() if b.is_dir())
    return found


def _container_inits(ctd: PrivateContainerd) -> list[int]:
    """Pids from the bundles' ``init.pid`` whose process is still in that
    container's cgroup (so a recycled pid is never killed)."""
    pids: list[int] = []
    for ns, cid, bundle in _task_bundles(ctd):
        try:
            pid = int((bundle / "init.pid").read_text(encoding="utf-8").strip())
            cgroups = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
        if any(line.endswith(f"/{ns}/{cid}") for line in cgroups.splitlines()):
            pids.append(pid)
    return pids


def _remove_task_cgroups(ctd: PrivateContainerd) -> None:
    """rmdir the (empty) cgroup leaves ``/<ns>/<id>`` of leftover task bundles."""
    roots = [Path("/sys/fs/cgroup")]
    with contextlib.suppress(OSError):
        roots += [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    for ns, cid, _ in _task_bundles(ctd):
        for root in roots:
            leaf = root / ns / cid
            if leaf.is_dir():
                with contextlib.suppress(OSError):
                    leaf.rmdir()


def _unescape_mountinfo(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    """Mount points at or below ``path`` in ``mountinfo``, deepest first."""
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    points = [_unescape_mountinfo(line.split()[4]) for line in lines if len(line.split()) > 4]
    return sorted((p for p in points if _is_under(p, path)), key=len, reverse=True)


def _unmount_all(path: Path) -> None:
    umount = shutil.which("umount") or "umount"
    for _ in range(3):
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            done = subprocess.run([umount, point], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run([umount, "--lazy", point], capture_output=True, check=False)


def _rmtree(path: Path) -> None:
    for attempt in range(20):
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return
        except OSError:
            if attempt == 19:
                raise
            time.sleep(0.05)
        else:
            return


def _cleanup_via_api(ctd: PrivateContainerd) -> None:
    """Delete every task (SIGKILL) and container in every namespace."""
    try:
        namespaces = ctd.namespaces()
    except (CtrError, subprocess.TimeoutExpired):
        return
    for ns in namespaces:
        with contextlib.suppress(CtrError, subprocess.TimeoutExpired):
            for cid in ctd.ctr("tasks", "ls", "-q", namespace=ns, timeout=10).stdout.split():
                with contextlib.suppress(CtrError, subprocess.TimeoutExpired):
                    ctd.ctr("tasks", "delete", "--force", cid, namespace=ns, timeout=10)
            for cid in ctd.containers(ns):
                with contextlib.suppress(CtrError, subprocess.TimeoutExpired):
                    ctd.ctr("containers", "delete", cid, namespace=ns, timeout=10)


def stop_private_containerd(ctd: PrivateContainerd, *, timeout: float = 10.0) -> None:
    """Stop ``ctd`` and remove every trace of it.

    In order, each step best effort: delete all tasks (SIGKILL) and containers
    in all namespaces through the API; SIGTERM containerd, SIGKILL it after
    ``timeout`` seconds, and reap it; SIGKILL container init processes still
    recorded in task bundles, then every shim of this containerd (see
    :func:`find_shims`) and wait for them; unmount whatever is still mounted
    under its directories in this mount namespace; remove leftover task
    cgroup leaves; remove ``ctd.dir`` and ``ctd.socket_dir``. Safe to call
    twice. Raises only if the directories cannot be removed.
    """
    if _containerd_running(ctd):
        _cleanup_via_api(ctd)
        _kill(ctd.pid, signal.SIGTERM)
        if _wait_gone([ctd.pid], timeout):
            _kill(ctd.pid, signal.SIGKILL)
            _wait_gone([ctd.pid], timeout)
    if ctd._process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            ctd._process.wait(timeout)

    for _ in range(5):
        victims = _container_inits(ctd) + find_shims(ctd)
        if not victims:
            break
        for pid in victims:
            _kill(pid, signal.SIGKILL)
        _wait_gone(victims, timeout)

    for path in (ctd.dir, ctd.socket_dir):
        if path is not None:
            _unmount_all(path)
    _remove_task_cgroups(ctd)
    for path in (ctd.dir, ctd.socket_dir):
        if path is not None:
            _rmtree(path)


@contextlib.contextmanager
def private_containerd(base_dir: Path, *, timeout: float = 20.0) -> Generator[PrivateContainerd]:
    """Context manager: :func:`start_private_containerd` on entry,
    :func:`stop_private_containerd` on exit (also on errors)."""
    ctd = start_private_containerd(base_dir, timeout=timeout)
    try:
        yield ctd
    finally:
        stop_private_containerd(ctd)
