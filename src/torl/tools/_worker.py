"""The sandbox worker: a fork server that runs Python cells, one at a time, each in a fresh child.

Runs inside the sandbox (a container, a bwrap namespace or a plain process) as `python3 -c SOURCE`,
so it must stay self-contained: standard library only, Python 3.8+, no torl imports.

Protocol: JSON lines. The host writes a config line, the worker answers {"ready": ...} once the
preload imports are done; then the host writes requests ({"op": "run" | "open" | "close", "id"})
and the worker answers each with one line carrying the same "id".

Before forking anything the worker imports the preload modules and runs the warm-up code, so that
their lazy caches are filled once here and shared copy-on-write. A stateless cell runs in a child
forked from this warm process ahead of time (set up and waiting for its code), with its own session,
rlimits, cwd and output pipe. A session is a long-lived child that keeps its globals and runs each of
its cells in-process. A cell's answer is sent as soon as it is done; then, before the next request is
read, the worker kills whatever the cell left running (escaped children included), removes the files
it wrote and forks the next cell's process. Nothing outlives a cell but sessions.
"""

import errno
import json
import os
import re
import resource
import select
import signal
import socket
import sys
import time
import traceback

CHUNK = 65536
_CTX = {"drop_uid": None, "prefixes": [], "nproc": False}


def _send(out, obj):
    out.write((json.dumps(obj) + "\n").encode())
    out.flush()


def _close_fds(keep):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _harden():
    """Not dumpable: no ptrace and no /proc/PID/fd access for same-uid processes (the cells).
    Child subreaper: orphans of cells become our children, so we reap them after the sweep.
    Parent-death signal: if whoever started us (bwrap, the host) dies, so do we."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = SIGKILL
    except Exception:  # noqa: BLE001, S110
        pass


def _report(sock, status, error):
    if error is not None and len(error) > 2000:
        error = error[:1000] + " ... " + error[-1000:]
    sock.sendall((json.dumps({"status": status, "error": error}) + "\n").encode())


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


# ---------------------------------------------------------------------------------------------
# Inside a cell process


def _sanitize(text):
    for prefix, name in _CTX["prefixes"]:
        text = text.replace(prefix, name)
    return text


def _format_exc(exc):
    """The traceback a person would see: frames of the cell and the libraries it called, none of ours."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    if tb is None:  # a SyntaxError at compile time, or an error raised before the cell ran
        lines = traceback.format_exception_only(type(exc), exc)
    return _sanitize("".join(lines)), _sanitize(traceback.format_exception_only(type(exc), exc)[-1].strip())


def _classify(exc, limits):
    """(status, short reason) for an exception that ended a cell."""
    last = _format_exc(exc)[1]
    if isinstance(exc, MemoryError):
        return "memory", f"memory limit ({limits['memory_mb']} MB) exceeded: {last}"
    if (
        isinstance(exc, OSError)
        and exc.errno == errno.EAGAIN
        and "fork" in "".join(traceback.format_tb(exc.__traceback__))
    ):
        return "killed", f"process limit ({limits['max_procs']}) reached: {last}"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "killed", f"file size limit ({limits['fsize_mb']} MB) exceeded: {last}"
    return "error", last


def _run_cell(code, env, limits):
    """Run one cell in this process; return (status, error)."""
    import linecache

    me = os.getpid()
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    status, error = "ok", None
    try:
        exec(compile(code, "<cell>", "exec"), env)  # noqa: S102
    except SystemExit as e:
        if e.code not in (None, 0):
            status, error = "error", f"SystemExit: {e.code}"
    except BaseException as e:  # noqa: BLE001
        try:
            status, error = _classify(e, limits)
        except MemoryError:  # e.g. formatting the traceback of a very deep recursion
            status, error = "memory", f"memory limit ({limits['memory_mb']} MB) exceeded ({type(e).__name__})"
        except BaseException:  # noqa: BLE001
            status, error = "error", type(e).__name__
        if os.getpid() == me:
            try:
                sys.stderr.write(_format_exc(e)[0])
            except BaseException:  # noqa: BLE001, S110
                pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001, S110
        pass
    if os.getpid() != me:  # a child that the cell forked fell through to here: end it quietly
        os._exit(0 if status == "ok" else 1)
    return status, error


def _vm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    return 0


def _setlimit(res, soft, hard=None):
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(res, (soft, hard))
    except (ValueError, OSError):
        pass


def _enter_cell_process(out_w, workdir, limits, session):
    """Set up a freshly forked child: own session, no stdin, output to the pipe, limits, no privileges."""
    _prepare_cell_process(out_w, workdir)
    _apply_limits(limits, session)


def _prepare_cell_process(out_w, workdir):
    """What a cell process needs before it knows its cell: own session, no stdin, output to the pipe,
    no privileges, its folder."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(out_w if out_w is not None else devnull, 1)
    os.dup2(out_w if out_w is not None else devnull, 2)
    os.close(devnull)
    uid = _CTX["drop_uid"]
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdin = open(0, "r", closefd=False)  # noqa: SIM115


def _apply_limits(limits, session):
    mb = 1024 * 1024
    _setlimit(resource.RLIMIT_CORE, 0)
    _setlimit(resource.RLIMIT_FSIZE, limits["fsize_mb"] * mb)
    _setlimit(resource.RLIMIT_AS, _vm_kb() * 1024 + limits["memory_mb"] * mb)
    if session:
        _setlimit(resource.RLIMIT_CPU, resource.RLIM_INFINITY)
    else:  # from now: a pre-forked cell process has used a little CPU already
        used = int(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]))
        _setlimit(resource.RLIMIT_CPU, used + limits["cpu_s"], used + limits["cpu_s"] + 1)
    if _CTX["nproc"]:  # the cells' uid is ours alone, so RLIMIT_NPROC counts only our processes
        _setlimit(resource.RLIMIT_NPROC, _count_procs(_CTX["drop_uid"]) + limits["max_procs"])


def _cell_process(ctrl, out_w, workdir):
    """A stateless cell's process, forked before its cell is known: set up, wait for the cell (length-
    prefixed JSON with code and limits) on `ctrl`, run it, report. Never returns."""
    reported = False
    try:
        try:
            _close_fds({out_w, ctrl.fileno()})
            _prepare_cell_process(out_w, workdir)
            os.close(out_w)
        except BaseException as e:  # noqa: BLE001
            _report(ctrl, "sandbox_error", f"cell setup failed: {type(e).__name__}: {e}")
            os._exit(1)
        try:
            head = _recv_exact(ctrl, 8)
            req = json.loads(_recv_exact(ctrl, int(head)).decode())
        except (OSError, EOFError, ValueError):  # the worker went away, or never needed us
            os._exit(0)
        try:
            _apply_limits(req["limits"], False)
        except BaseException as e:  # noqa: BLE001
            _report(ctrl, "sandbox_error", f"cell setup failed: {type(e).__name__}: {e}")
            os._exit(1)
        env = {"__name__": "__main__", "__builtins__": __builtins__}
        status, error = _run_cell(req["code"], env, req["limits"])
        _report(ctrl, status, error)
        reported = True
    finally:
        # A cell that ends here without a report did not succeed: never exit 0 then.
        os._exit(0 if reported else 1)


def _proc_uid(pid):
    """Real uid of a process (from /proc/PID/status: its owner shows root when it is not dumpable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _still(proc):
    """Is the process (pid, start time) still in /proc (alive, dying or an unreaped zombie)?"""
    try:
        with open(f"/proc/{proc[0]}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19] == proc[1]
    except (OSError, IndexError):
        return False


def _count_procs(uid):
    pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    return len(pids) if uid is None else sum(1 for p in pids if _proc_uid(p) == uid)


def _session_loop(ctrl, limits):
    """A session process: keep globals, run each cell received on `ctrl` (with its output fd)."""
    env = {"__name__": "__main__", "__builtins__": __builtins__}
    devnull = os.open(os.devnull, os.O_RDWR)
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(ctrl, 8, 1)
            head += _recv_exact(ctrl, 8 - len(head))
            req = json.loads(_recv_exact(ctrl, int(head)).decode())
        except (OSError, EOFError, ValueError):
            os._exit(0)
        os.dup2(fds[0], 1)
        os.dup2(fds[0], 2)
        os.close(fds[0])
        lim = req["limits"]
        used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        _setlimit(resource.RLIMIT_CPU, int(used) + lim["cpu_s"], resource.RLIM_INFINITY)
        status, error = _run_cell(req["code"], env, lim)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _report(ctrl, status, error)


# ---------------------------------------------------------------------------------------------
# In the worker


class _Collector:
    """Keeps the head and the tail of a byte stream, counting what falls in between."""

    def __init__(self, limit):
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data):
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self):
        kept = len(self.head) + len(self.tail)
        if kept <= 2 * self.half and kept == self.total:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace"), False
        tail = bytes(self.tail[-self.half :])
        cut = self.total - len(self.head) - len(tail)
        marker = f"\n[... {cut} bytes of output truncated ...]\n"
        return bytes(self.head).decode("utf-8", "replace") + marker + tail.decode("utf-8", "replace"), True


def _signame(sig):
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    desc = {
        "SIGSEGV": "segmentation fault",
        "SIGBUS": "bus error",
        "SIGABRT": "aborted",
        "SIGKILL": "killed",
        "SIGILL": "illegal instruction",
        "SIGFPE": "arithmetic error",
    }
    return f"{name} ({desc[name]})" if name in desc else name


def _oom_kills():
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key:
                        return int(v)
        except (OSError, ValueError):
            pass
    return 0


def _mount_points():
    """Mount points of our mount namespace (from /proc/self/mountinfo; octal escapes decoded)."""
    points = set()
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                field = line.split()[4]
                points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    except (OSError, IndexError):
        pass
    return points


def _parents(path):
    """The folders above `path`, up to (not including) "/"."""
    out = []
    while True:
        path = os.path.dirname(path)
        if path in ("/", ""):
            return out
        out.append(path)


class Worker:
    def __init__(self, out, cfg):
        self.out = out
        self.sessions = {}  # id -> [pid or None, ctrl socket, workdir]
        self.tmp = cfg.get("tmp") or "/tmp"
        self.uid = cfg.get("drop_uid")
        self.pid1 = os.getpid() == 1
        self.counter = 0
        # The cleanup keeps our folder and the mount points, and only empties the folders above them.
        # Mounts do not change under us: cells cannot mount in our namespace.
        self.keep = {os.path.abspath(self.tmp)}
        self.mounts = {m for m in _mount_points() if m.startswith(("/tmp/", "/dev/shm/"))}
        self.around = {p for m in self.mounts | self.keep for p in _parents(m)}
        self.broken = None  # set when cleaning up after a cell failed: the next request is refused
        self.pending = None  # the cleanup of the last cell, run once its answer is sent
        self.spare = None  # (pid, output pipe, control socket) of the next cell's process
        self.dying = set()  # (pid, start time) of processes killed after the last cell

    # -- processes ----------------------------------------------------------------------------
    def _stale(self, protect, cell_sid):
        """Processes a cell may have left: all of our pid namespace, or of the cells' own uid, or
        (as a plain process with no uid of its own) those still in the cell's session.
        Returns (live processes as (pid, start time), True if some are our unreaped zombies): a
        fork bomb can wrap the pid space, so a pid alone does not name a process for long."""
        me = os.getpid()
        pids, zombies = [], False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid == me or pid in protect:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if not (
                self.pid1
                or (self.uid is not None and _proc_uid(pid) == self.uid)
                or (cell_sid is not None and int(fields[3]) == cell_sid)
            ):
                continue
            if fields[0] in "ZX":  # dead: our child (we are a subreaper), to reap; it may have forked
                zombies = zombies or int(fields[1]) == me
            else:
                pids.append((pid, fields[19]))
        return pids, zombies

    def _sweep(self, protect, cell_sid=None, patience=10.0, wait=True):
        """Kill every leftover process and reap our zombies, until a pass finds neither (a process
        seen dying may have forked after we listed /proc; a fork bomb keeps forking; a killed
        process can take a while to die on a loaded host).

        With wait=False a pass only looks for processes not yet killed: one with SIGKILL pending
        can neither run code nor fork again, so it is left to finish dying (`self.dying`) while we
        go on; `settle_dying` waits for them before the next cell starts."""
        deadline = time.monotonic() + patience
        killed = set()
        while True:
            procs, zombies = self._stale(protect, cell_sid)
            if wait:
                new = procs
            else:
                new = [p for p in procs if p not in killed]
            if not new and (not zombies or not wait):
                break
            for pid, _ in new:
                self._kill(pid)
            killed.update(new)
            self._reap()
            if time.monotonic() > deadline:
                break
            if new and wait:
                time.sleep(0.0005)
        if not wait:
            self.dying |= killed
        self._reap()

    def settle_dying(self, timeout=2.0):
        """Wait until the processes killed after the last cell are gone from /proc (at most `timeout`):
        they exit by themselves; orphans are reparented to us and reaped here."""
        end = time.monotonic() + timeout
        while self.dying:
            self._reap()
            self.dying = {p for p in self.dying if _still(p)}
            left = end - time.monotonic()
            if not self.dying or left <= 0:
                break
            try:
                pidfd = os.pidfd_open(next(iter(self.dying))[0])
            except (AttributeError, OSError):
                time.sleep(0.0005)
                continue
            ready, _, _ = select.select([pidfd], [], [], min(left, 0.1))
            os.close(pidfd)
            if ready:  # exited, but maybe not reaped yet (its parent was dying too)
                time.sleep(0.0002)
        self.dying.clear()

    @staticmethod
    def _kill(pid):
        Worker._signal(pid, signal.SIGKILL)

    @staticmethod
    def _signal(pid, sig):
        try:
            os.kill(pid, sig)
        except OSError:
            pass

    def _reap(self):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for s in self.sessions.values():
                if s[0] == pid:  # a session died between cells
                    s[0] = None
            if self.spare is not None and self.spare[0] == pid:  # the next cell's process died
                _, out_r, ctrl, _ = self.spare
                self.spare = None
                os.close(out_r)
                ctrl.close()

    def _workdir(self):
        """A fresh folder for a session (owned by the cells' uid)."""
        self.counter += 1
        path = os.path.join(self.tmp, f"s{self.counter}")
        os.mkdir(path, 0o700)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def _cell_dir(self):
        """The stateless cells' folder: reused, and emptied whenever a cell left something in it
        (or rebuilt, with our own folder, when a cell broke them)."""
        path = os.path.join(self.tmp, "cell")
        try:
            if not os.path.islink(self.tmp) and not os.path.islink(path) and not os.listdir(path):
                return path
        except OSError:
            pass
        if os.path.islink(self.tmp) or not os.path.isdir(self.tmp):
            self._rmtree(self.tmp)
            os.makedirs(self.tmp, 0o711)
        self._rmtree(path)
        os.mkdir(path, 0o700)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def _clean_scratch(self):
        """Remove what cells wrote to the shared scratch folders (/tmp, /dev/shm) outside our own
        folder: everything there in a private namespace, the cells' uid's files otherwise."""
        if not (self.pid1 or self.uid is not None):
            return
        for top in ("/tmp", "/dev/shm"):
            self._clean_dir(top)

    def _clean_dir(self, top):
        """Empty `top` of what cells could write. Never our own folder, never a mount point: bwrap
        bind-mounts a Python installation that lives under /tmp (a CI checkout's virtualenv) into our
        /tmp read-only, and walking it costs every cell ~100k failing unlinks. The folders on the way
        to a mount point are cleaned around it."""
        try:
            dev = os.lstat(top).st_dev
            names = os.listdir(top)
        except OSError:
            return
        for name in names:
            path = os.path.join(top, name)
            if path in self.keep or path in self.mounts:
                continue
            try:
                st = os.lstat(path)
                if st.st_dev != dev:  # a mount the table did not show (e.g. no /proc)
                    continue
                if path in self.around:
                    self._clean_dir(path)
                elif self.pid1 or st.st_uid == self.uid:
                    self._rmtree(path)
            except OSError:
                pass

    @staticmethod
    def _rmtree(path):
        """Remove a folder tree, first giving back the permissions a cell may have taken away."""
        import shutil

        def unlock(p):
            try:
                os.chmod(p, 0o700)
                with os.scandir(p) as it:
                    subdirs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
            except OSError:
                return
            for d in subdirs:
                unlock(d)

        if os.path.isdir(path) and not os.path.islink(path):
            unlock(path)
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)

    # -- the wait loop ------------------------------------------------------------------------
    def _wait(self, pid, ctrl, out_r, limits):
        """Collect output until the cell reports, or its process ends, or time runs out.

        Returns (collector, report, wait status or None, timed out?). A report that is
        not a well-formed line (the cell wrote to our socket) kills the cell."""
        col = _Collector(limits["max_output"])
        deadline = time.monotonic() + limits["timeout_s"]
        report, died, timed_out, buf = None, None, False, b""
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        fds = [out_r, ctrl] + ([pidfd] if pidfd is not None else [])
        ctrl.setblocking(False)
        while report is None and died is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            r, _, _ = select.select(fds, [], [], min(left, 1.0 if pidfd is not None else 0.02))
            if out_r in r:
                data = os.read(out_r, CHUNK)
                if data:
                    col.add(data)
                else:
                    fds.remove(out_r)
            if ctrl in r:
                try:
                    data = ctrl.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    fds.remove(ctrl)
                elif data:
                    buf += data
                    if b"\n" in buf:
                        try:
                            report = json.loads(buf.split(b"\n", 1)[0].decode())
                            err = report.get("error")
                            report = {
                                "status": str(report["status"]),
                                "error": None if err is None else str(err),
                            }
                        except Exception:  # noqa: BLE001
                            report = {
                                "status": "killed",
                                "error": "the cell wrote to the sandbox's control channel",
                            }
                            self._kill(pid)
                    elif len(buf) > 1 << 16:
                        report = {
                            "status": "killed",
                            "error": "the cell wrote to the sandbox's control channel",
                        }
                        self._kill(pid)
            if pidfd is None or pidfd in r:
                try:
                    got, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    got, st = pid, 0
                if got:
                    died = st
        if pidfd is not None:
            os.close(pidfd)
        if timed_out:
            self._kill(pid)
        return col, report, died, timed_out

    @staticmethod
    def _waitpid(pid, timeout):
        """Wait for our child `pid` (killing it after `timeout`); its wait status, or 0 if gone."""
        end = time.monotonic() + timeout
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            while True:
                try:
                    got, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return 0
                if got:
                    return st
                left = end - time.monotonic()
                if left <= 0:
                    Worker._kill(pid)
                    try:
                        return os.waitpid(pid, 0)[1]
                    except ChildProcessError:
                        return 0
                if pidfd is not None:  # sleep until it exits (no polling)
                    select.select([pidfd], [], [], left)
                else:
                    time.sleep(0.0005)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    @staticmethod
    def _drain_now(out_r, col):
        """Read what is in the pipe now, without waiting for its writers to close it."""
        os.set_blocking(out_r, False)
        while True:
            try:
                data = os.read(out_r, CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            col.add(data)
        os.set_blocking(out_r, True)

    @staticmethod
    def _drain(out_r, col, timeout=0.5):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([out_r], [], [], max(end - time.monotonic(), 0))
            if not r:
                break
            data = os.read(out_r, CHUNK)
            if not data:
                break
            col.add(data)

    def _result(self, col, report, died, timed_out, limits, oom_before):
        output, truncated = col.text()
        res = {"output": output, "truncated": truncated}
        if timed_out:
            res.update(
                status="timeout", error="wall-clock limit ({:g} s) exceeded".format(limits["timeout_s"])
            )
        elif report is not None:
            res.update(status=report["status"], error=report["error"])
        elif died is not None and os.WIFSIGNALED(died):
            sig = os.WTERMSIG(died)
            if sig == signal.SIGXCPU:
                res.update(status="timeout", error=f"CPU time limit ({limits['cpu_s']} s) exceeded")
            elif sig == signal.SIGKILL and _oom_kills() > oom_before:
                res.update(status="memory", error="memory limit exceeded (killed by the OOM killer)")
            else:
                res.update(status="killed", error="killed by " + _signame(sig))
        elif died is not None and os.WIFEXITED(died) and os.WEXITSTATUS(died) != 0:
            res.update(status="error", error=f"exited with code {os.WEXITSTATUS(died)}")
        else:
            res.update(status="ok", error=None)
        return res

    # -- requests -----------------------------------------------------------------------------
    def run(self, req):
        limits = req["limits"]
        if req.get("session") is not None:
            return self._run_in_session(req["session"], req["code"], limits)
        self.settle_dying()  # the last cell's processes are gone before this one starts
        pid, out_r, ctrl = self._take_spare()
        oom_before = _oom_kills()
        body = json.dumps({"code": req["code"], "limits": limits}).encode()
        try:
            ctrl.settimeout(5.0)
            ctrl.sendall(b"%08d" % len(body) + body)
        except OSError:  # it died or stopped: `_wait` says how
            pass
        col, report, died, timed_out = self._wait(pid, ctrl, out_r, limits)
        if report is not None and not timed_out:
            # The cell is done and all it wrote before reporting is in the pipe: answer now, and end
            # what it left (its exit, escaped processes, files) before reading the next request.
            self._drain_now(out_r, col)
            self.pending = lambda: self._finish(pid, died, out_r, ctrl, None)
        else:
            died = self._finish(pid, died, out_r, ctrl, col)
        return self._result(col, report, died, timed_out, limits, oom_before)

    # -- the next cell's process, forked ahead -------------------------------------------------
    def fork_spare(self):
        """Fork and set up the process of the next stateless cell now, while nothing waits for it."""
        if self.spare is not None:
            return
        out_r, out_w = os.pipe()
        ctrl, child_ctrl = socket.socketpair()
        workdir = self._cell_dir()
        pid = os.fork()
        if pid == 0:
            _cell_process(child_ctrl, out_w, workdir)
        os.close(out_w)
        child_ctrl.close()
        self.spare = (pid, out_r, ctrl, self._dir_id(workdir))

    @staticmethod
    def _dir_id(path):
        """The identity and emptiness of a folder: (dev, inode, empty?) or None."""
        try:
            st = os.lstat(path)
            return st.st_dev, st.st_ino, not os.listdir(path)
        except OSError:
            return None

    def _drop_spare(self):
        pid, out_r, ctrl, _ = self.spare
        self.spare = None
        self._kill(pid)
        self._waitpid(pid, 2.0)
        os.close(out_r)
        ctrl.close()

    def _take_spare(self):
        """The forked-ahead cell process; a new one if it died or its folder is no longer the clean
        one it was given (a session's cell ran since and may have written there)."""
        if self.spare is not None:
            try:
                dead = os.waitpid(self.spare[0], os.WNOHANG)[0] != 0
            except ChildProcessError:
                dead = True
            if dead:  # killed while it waited (a session's cell can do that)
                _, out_r, ctrl, _ = self.spare
                self.spare = None
                os.close(out_r)
                ctrl.close()
            elif self._dir_id(os.path.join(self.tmp, "cell")) != self.spare[3]:
                self._drop_spare()
            else:  # a session's cell may have stopped it
                self._signal(self.spare[0], signal.SIGCONT)
        self.fork_spare()
        spare, self.spare = self.spare, None
        return spare[:3]

    def _finish(self, pid, died, out_r, ctrl, col):
        """After a cell: reap it, kill what it left, collect late output (into `col`), clean files.

        Once the answer is sent (no `col`), its processes are killed but not waited for: they finish
        dying while the next cell's process is forked, and `run` waits for them before the next cell."""
        if col is None:
            self._kill(pid)
            self._sweep(self._session_pids(), cell_sid=pid, wait=False)
        else:
            if died is None:
                died = self._waitpid(pid, 2.0)
            self._sweep(self._session_pids(), cell_sid=pid)
            self._drain(out_r, col)
        os.close(out_r)
        ctrl.close()
        self._clean_scratch()
        return died

    def settle(self):
        """Finish the cleanup of the last cell (after its answer was sent); a failure there marks
        this worker broken, so the host replaces it instead of running a cell in a dirty sandbox."""
        pending, self.pending = self.pending, None
        try:
            if pending is not None:
                pending()
        except Exception as e:  # noqa: BLE001
            self.broken = f"cleanup after a cell failed: {type(e).__name__}: {e}"
            return
        try:
            self.fork_spare()
        except BlockingIOError:  # the process limit, while the last cell's processes die: wait for them
            self.settle_dying()
            try:
                self.fork_spare()
            except OSError:  # `run` tries again when the cell comes
                pass
        except OSError:
            pass

    def _session_pids(self):
        """The processes a sweep must spare: the sessions' and the next cell's (forked ahead)."""
        return {s[0] for s in self.sessions.values() if s[0]} | ({self.spare[0]} if self.spare else set())

    def open(self, sid, limits):
        if sid in self.sessions:
            return {"status": "error", "error": f"session {sid!r} is already open"}
        ctrl, child_ctrl = socket.socketpair()
        workdir = self._workdir()
        pid = os.fork()
        if pid == 0:
            try:
                _close_fds({child_ctrl.fileno()})
                _enter_cell_process(None, workdir, limits, True)
                _session_loop(child_ctrl, limits)
            finally:
                os._exit(0)
        child_ctrl.close()
        self.sessions[sid] = [pid, ctrl, workdir]
        return {"status": "ok"}

    def _run_in_session(self, sid, code, limits):
        if sid not in self.sessions:
            return {
                "status": "error",
                "error": f"unknown session {sid!r} (not open, or already ended)",
                "output": "",
            }
        self._reap()
        pid, ctrl, _ = self.sessions[sid]
        ended = {
            "status": "error",
            "error": "session ended earlier (its process died); its state is lost",
            "output": "",
            "session_ended": True,
        }
        if pid is None:
            self.close(sid)
            return ended
        out_r, out_w = os.pipe()
        oom_before = _oom_kills()
        try:
            body = json.dumps({"code": code, "limits": limits}).encode()
            ctrl.settimeout(5.0)
            socket.send_fds(ctrl, [b"%08d" % len(body)], [out_w])
            ctrl.sendall(body)
        except OSError:
            os.close(out_w)
            os.close(out_r)
            self.close(sid)
            return ended
        os.close(out_w)
        col, report, died, timed_out = self._wait(pid, ctrl, out_r, limits)
        lost = report is None or died is not None
        if lost:
            self._kill(pid)
            died = died if died is not None else self._waitpid(pid, 2.0)
            self.sessions[sid][0] = None
        self._sweep(self._session_pids(), cell_sid=pid)
        self._drain(out_r, col)
        os.close(out_r)
        res = self._result(col, report, died, timed_out, limits, oom_before)
        if lost:
            self.close(sid)
            res["error"] = "{}; the session ended and its state is lost".format(res["error"])
            if res["status"] == "ok":
                res["status"] = "error"
            res["session_ended"] = True
        return res

    def close(self, sid):
        s = self.sessions.pop(sid, None)
        if s is None:
            return {"status": "ok"}
        pid, ctrl, workdir = s
        ctrl.close()
        if pid:
            self._kill(pid)
            self._waitpid(pid, 2.0)
            self._sweep(self._session_pids(), cell_sid=pid)
        self._rmtree(workdir)
        return {"status": "ok"}


def main():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 these are then ignored: a cell can't stop us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out = os.fdopen(os.dup(1), "wb")
    inp = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.set_inheritable(out.fileno(), False)
    os.set_inheritable(inp.fileno(), False)
    cfg = json.loads(inp.readline().decode())
    os.environ.clear()
    os.environ.update(cfg.get("env") or {})
    _CTX["prefixes"] = [tuple(p) for p in cfg.get("prefixes") or []]
    uid = cfg.get("drop_uid")
    if cfg.get("tmp"):
        os.makedirs(cfg["tmp"], exist_ok=True)
        if cfg.get("become_uid") is not None:
            os.chown(cfg["tmp"], cfg["become_uid"], cfg["become_uid"])
    if cfg.get("become_uid") is not None:  # drop privileges for good (we are PID 1 of a namespace)
        u = cfg["become_uid"]
        os.setgroups([])
        os.setgid(u)
        os.setuid(u)
        uid = None
    _CTX["drop_uid"] = uid
    _CTX["nproc"] = bool(cfg.get("nproc_limit"))
    _harden()
    preloaded, failed = [], []
    for name in cfg.get("preload") or []:
        try:
            __import__(name)
            preloaded.append(name)
        except BaseException as e:  # noqa: BLE001
            failed.append(f"{name}: {type(e).__name__}")
    warm_start, warm_failed = time.monotonic(), 0
    for code in cfg.get("warmup") or []:  # fill lazy caches once here, not in every forked cell
        try:
            exec(compile(code, "<warmup>", "exec"), {"__name__": "__warmup__"})  # noqa: S102
        except BaseException:  # noqa: BLE001
            warm_failed += 1
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may reach a forked cell's output
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    warm_s = time.monotonic() - warm_start
    import gc

    gc.collect()
    gc.freeze()  # the preloaded objects: never scanned again, so forked cells do not copy their pages
    w = Worker(out, dict(cfg, drop_uid=uid))
    _send(
        out,
        {
            "ready": True,
            "preloaded": preloaded,
            "failed": failed,
            "warmup_s": round(warm_s, 3),
            "warmup_failed": warm_failed,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
        },
    )
    w.settle()  # forks the first cell's process
    for line in inp:
        req = json.loads(line.decode())
        try:
            op = req["op"]
            if w.broken:
                res = {"status": "sandbox_error", "error": w.broken, "output": ""}
            elif op == "run":
                res = w.run(req)
            elif op == "open":
                res = w.open(req["session"], req["limits"])
            elif op == "close":
                res = w.close(req["session"])
            elif op == "ping":
                res = {"status": "ok"}
            else:
                res = {"status": "sandbox_error", "error": f"unknown op {op!r}"}
        except Exception as e:  # noqa: BLE001
            res = {
                "status": "sandbox_error",
                "error": f"worker: {type(e).__name__}: {e}",
                "output": "",
            }
        res["id"] = req.get("id")
        _send(out, res)
        w.settle()
    for sid in list(w.sessions):
        w.close(sid)
    w._sweep(set())


if __name__ == "__main__":
    main()
