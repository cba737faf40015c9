# The warm Python start: a forkserver for ONE Python environment (slave/runner/forkservers.ts starts
# it as the spiders' user, with that environment's interpreter). It imports Scrapy, Twisted and
# every module Scrapy's default settings name once -- never a reactor -- and forks a child per job
# that runs `python -m scrapy crawl ...` exactly as a fresh interpreter would: runpy's
# _run_module_as_main (what `python -m` calls) runs scrapy's __main__ in a fresh __main__ with the
# job's argv, environment, cwd and sys.path (cwd, then PYTHONPATH -- the egg -- then the
# environment's own), in its own session (setsid, so the INT/TERM/KILL ladder on its process group
# works), stdout/stderr the job's log. A job a fresh interpreter would start differently (its own
# copy of a preloaded module, other PYTHON* start-up variables, user site-packages) is refused
# with {"error"}, and its keeper spawns it.
#
# Wire (unix socket, one connection per job, from the job's keeper): first a message carrying the
# log's two fds (SCM_RIGHTS), then one JSON line {"args": [...], "env": {...}, "cwd": "..."}.
# Answers, JSON lines: {"pid": N} once the child has its own session, {"exit": {"code", "signal"}}
# when it is reaped, or {"error": "..."}. The forkserver is the children's parent: it reaps them.
# It stops accepting when its stdin (the daemon's pipe) closes, and exits once its children ended,
# so the keepers of running jobs still hear their exit status after a daemon restart.
import gc, importlib.machinery, io, json, os, selectors, signal, socket, stat, sys, zipfile

import twisted.internet.defer  # noqa: F401  (Twisted, without installing a reactor)
import scrapy, scrapy.cmdline, scrapy.crawler, scrapy.commands.crawl, scrapy.utils.project  # noqa: F401,E401

SOCK = sys.argv[2]
BASE_PATH = [p for p in sys.path if p not in ('', os.getcwd())]

# --- preload: what every crawl imports, never the reactor -------------------------------------
class _ReactorBlocked(ImportError):
    pass


class _NoReactor:
    """Refuses twisted.internet.reactor while preloading: importing it installs a reactor, which a forked crawl must choose itself."""
    fired = 0

    def find_spec(self, name, path=None, target=None):
        if name == 'twisted.internet.reactor':
            _NoReactor.fired += 1
            raise _ReactorBlocked('the forkserver installs no reactor')
        return None


def preload_candidates():
    """Every module Scrapy's default settings name (components, handlers, queues...), and its commands."""
    import pkgutil
    import scrapy.commands
    from scrapy.settings import default_settings
    names = set()
    for key in dir(default_settings):
        if not key.isupper():
            continue
        value = getattr(default_settings, key)
        for v in (list(value.keys()) + list(value.values())) if isinstance(value, dict) else [value]:
            if isinstance(v, str) and v.startswith('scrapy.'):
                head, _, last = v.rpartition('.')
                names.add(head if last[:1].isupper() else v)  # a class path names its module
    names.update('scrapy.commands.' + m.name for m in pkgutil.iter_modules(scrapy.commands.__path__))
    # What a crawl imports besides (the reactors' modules are inert until installed).
    names.update(['twisted.internet.epollreactor', 'twisted.internet.default', 'twisted.internet.asyncioreactor',
                  'twisted.internet.selectreactor', 'twisted.conch.telnet', 'twisted.conch.insults.insults',
                  'twisted.cred.portal', 'twisted.cred.checkers', 'twisted.python.htmlizer', 'twisted.copyright',
                  'code', 'codeop', 'resource'])
    return sorted(names)


def preload(skip):
    import importlib
    guard = _NoReactor()
    sys.meta_path.insert(0, guard)
    try:
        for name in preload_candidates():
            if name in skip or name in sys.modules:
                continue
            before = _NoReactor.fired
            try:
                importlib.import_module(name)
            except _ReactorBlocked:
                continue  # it needs the reactor at import: it failed whole, nothing of it is kept; the child imports it
            except Exception:  # noqa: BLE001  (an optional module: h2, brotli... the child fails the same way)
                if _NoReactor.fired == before:
                    continue
            if _NoReactor.fired != before:
                # It caught the refusal and imported anyway (a fallback a real crawl would not take):
                # start again clean without it.
                os.execv(sys.executable, [sys.executable] + sys.argv + ['--skip', name])
    finally:
        sys.meta_path.remove(guard)
    if 'twisted.internet.reactor' in sys.modules:
        sys.exit('forkserver: a reactor was installed while preloading')
    # `scrapy` reads every installed distribution's entry points (its commands) at each start:
    # read them now, once (pkg_resources keeps them with each distribution).
    try:
        import pkg_resources
        for dist in pkg_resources.working_set:
            dist.get_entry_map()
    except Exception:  # noqa: BLE001  (no pkg_resources: nothing to warm)
        pass


# Known to want the reactor (Scrapy 2.x): the telnet console (twisted.conch.manhole, which it
# imports in a try, so blocking it would keep a fallback) and the FTP handler.
KNOWN_SKIP = {'scrapy.extensions.telnet', 'scrapy.core.downloader.handlers.ftp'}
preload(KNOWN_SKIP | {sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == '--skip'})
# The top-level modules a job would find already imported: a job whose egg or folder holds one of
# its own (a vendored parsel, a scrapy.py) would import that one in a fresh interpreter, so it is
# spawned instead (see cannot_fork()).
PRELOADED = frozenset(n for n, m in list(sys.modules.items()) if '.' not in n and getattr(getattr(m, '__spec__', None), 'origin', None) not in (None, 'built-in', 'frozen'))
SUFFIXES = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
_zip_names = {}  # (path, mtime, size) -> the top-level names an egg provides
# Everything imported so far stays shared between the children, untouched: the collector never
# walks it, so a child neither pays for it nor copies its pages.
gc.freeze()
children = {}  # pid -> connection of the keeper that asked for it (or None once it went away)

rpipe, wpipe = os.pipe()
os.set_blocking(wpipe, False)
signal.set_wakeup_fd(wpipe)
signal.signal(signal.SIGCHLD, lambda *_: None)
# A Ctrl-C or hang-up meant for the daemon's terminal is not for us: the daemon's pipe closing is.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    os.unlink(SOCK)
except FileNotFoundError:
    pass
srv.bind(SOCK)
os.chmod(SOCK, 0o600)
srv.listen(64)
sel = selectors.DefaultSelector()
sel.register(srv, selectors.EVENT_READ, 'accept')
sel.register(rpipe, selectors.EVENT_READ, 'signal')
sel.register(sys.stdin.fileno(), selectors.EVENT_READ, 'daemon')
print(f'ready ({len(sys.modules)} modules preloaded)', flush=True)


def send(conn, obj):
    if conn is None:
        return
    try:
        conn.sendall((json.dumps(obj) + '\n').encode())
    except OSError:
        pass


def top_names(entry):
    """The top-level module names a sys.path entry provides: a folder's, or a zip's (an egg)."""
    try:
        st = os.stat(entry)
    except OSError:
        return set()
    if stat.S_ISDIR(st.st_mode):
        names = set()
        for f in os.listdir(entry):
            stem = next((f[:-len(s)] for s in SUFFIXES if f.endswith(s)), None)
            if stem is not None:
                names.add(stem)
            elif f in PRELOADED and any(os.path.isfile(os.path.join(entry, f, '__init__' + s)) for s in SUFFIXES):
                names.add(f)
        return names
    key = (entry, st.st_mtime_ns, st.st_size)
    if key not in _zip_names:
        names = set()
        try:
            with zipfile.ZipFile(entry) as z:
                for n in z.namelist():
                    parts = n.split('/')
                    if len(parts) == 1 and parts[0].endswith(('.py', '.pyc')):
                        names.add(parts[0].rsplit('.', 1)[0])
                    elif len(parts) == 2 and parts[1] in ('__init__.py', '__init__.pyc'):
                        names.add(parts[0])
        except (OSError, zipfile.BadZipFile):
            pass
        if len(_zip_names) > 256:
            _zip_names.clear()
        _zip_names[key] = names
    return _zip_names[key]


# The variables an interpreter reads once, at start (PYTHONHASHSEED, PYTHONWARNINGS, PYTHONHOME...),
# as this one started: a job that sets them otherwise needs an interpreter of its own. PYTHONPATH
# is applied in the child; PYTHONUNBUFFERED is what the child's streams do anyway.
APPLIED_IN_CHILD = ('PYTHONPATH', 'PYTHONUNBUFFERED')
STARTUP_ENV = {k: v for k, v in os.environ.items() if k.startswith('PYTHON') and k not in APPLIED_IN_CHILD}


def user_site(env):
    """The user site-packages folder a fresh interpreter with this environment would add, if it exists and this one lacks it."""
    import site
    if not site.ENABLE_USER_SITE:
        return None
    base = env.get('PYTHONUSERBASE') or os.path.join(env.get('HOME') or '/nonexistent', '.local')
    path = os.path.join(base, 'lib', f'python{sys.version_info[0]}.{sys.version_info[1]}', 'site-packages')
    return path if path not in BASE_PATH and os.path.isdir(path) else None


def cannot_fork(req):
    """Why a fresh interpreter would not be this one for the job (it is spawned instead), or None."""
    env = req['env']
    job_startup = {k: v for k, v in env.items() if k.startswith('PYTHON') and k not in APPLIED_IN_CHILD}
    if job_startup != STARTUP_ENV:
        names = sorted(k for k in set(job_startup) | set(STARTUP_ENV) if job_startup.get(k) != STARTUP_ENV.get(k))
        return f"the job sets {', '.join(names)} otherwise than this interpreter started with"
    site_dir = user_site(env)
    if site_dir:
        return f'the job has user site-packages ({site_dir}) that this interpreter did not start with'
    entries = [('folder', req['cwd'])] + [('PYTHONPATH', p) for p in str(env.get('PYTHONPATH', '')).split(':') if p]
    for where, entry in entries:
        clash = top_names(entry) & PRELOADED
        if clash:
            return f"the job's {where} has its own '{sorted(clash)[0]}', which a fresh interpreter would import instead of the forkserver's"
    return None


def run_child(req, fds, ready_w):
    """In the forked child: become the job, then run scrapy's __main__ as `python -m scrapy` does."""
    os.setsid()
    os.close(ready_w)  # the parent learns the pid only now: the process group exists
    signal.set_wakeup_fd(-1)
    for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets it at start
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    os.closerange(3, 65536)
    # PYTHONUNBUFFERED, as the spawned spider has it: every write reaches the log at once.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, 'r', closefd=False), encoding='utf-8')
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, 'w', closefd=False), encoding='utf-8', write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, 'w', closefd=False), encoding='utf-8', errors='backslashreplace', write_through=True)
    env = req['env']
    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(env)
    extra = [p for p in env.get('PYTHONPATH', '').split(':') if p]
    sys.path[:] = [os.getcwd()] + extra + BASE_PATH
    # The distributions a fresh interpreter would see there too (an egg's entry points: its commands).
    if 'pkg_resources' in sys.modules:
        try:
            for entry in [os.getcwd()] + extra:
                sys.modules['pkg_resources'].working_set.add_entry(entry)
        except Exception:  # noqa: BLE001
            pass
    args = req['args']  # ['-m', 'scrapy', 'crawl', SPIDER, ...]
    sys.orig_argv = [sys.executable] + args
    import builtins, runpy, types
    # A fresh __main__, as `python -m` has: the module runs in its namespace, not in this script's.
    main = types.ModuleType('__main__')
    main.__builtins__ = builtins
    sys.modules['__main__'] = main
    code = 0
    try:
        sys.argv = ['-m'] + args[2:]  # runpy puts the module's file in argv[0], as `python -m` does
        runpy._run_module_as_main(args[1], alter_argv=True)  # what `python -m` itself calls
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xff
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException as e:  # noqa: BLE001
        # Reported as the interpreter does (sys.excepthook, which the crawl may have replaced), from
        # runpy's frame on: the traceback a spawned spider prints, without this function in it.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        try:
            sys.excepthook(type(e), e.with_traceback(tb), tb)
        except BaseException:  # noqa: BLE001
            pass
        # An uncaught KeyboardInterrupt ends CPython by SIGINT itself (below).
        code = -signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1
    try:
        import threading
        threading._shutdown()  # type: ignore[attr-defined]  # wait for non-daemon threads, as at exit
    except BaseException:
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass
    if code == -signal.SIGINT:
        # An uncaught KeyboardInterrupt ends CPython by SIGINT itself: the exit status says so.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    os._exit(code)


def handle(conn):
    conn.settimeout(10)
    fds = []
    try:
        msg, fds, _flags, _addr = socket.recv_fds(conn, 16, 4)
        if len(fds) != 2:
            raise ValueError('expected the log fds')
        buf = b''
        while not buf.endswith(b'\n'):
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError('connection closed before the job')
            buf += chunk
            if len(buf) > 8 << 20:
                raise ValueError('job line too long')
        req = json.loads(buf)
        if not (isinstance(req.get('args'), list) and req['args'][:2] == ['-m', 'scrapy'] and isinstance(req.get('env'), dict) and isinstance(req.get('cwd'), str)):
            raise ValueError('not a scrapy job')
        why = cannot_fork(req)
        if why:
            raise ValueError(why)
    except Exception as e:  # noqa: BLE001
        send(conn, {'error': f'forkserver: {e}'})
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            srv.close()
            run_child(req, fds, ready_w)
        finally:
            os._exit(1)
    os.close(ready_w)
    for fd in fds:
        os.close(fd)
    os.read(ready_r, 1)  # EOF once the child called setsid
    os.close(ready_r)
    conn.settimeout(None)
    children[pid] = conn
    send(conn, {'pid': pid})
    sel.register(conn, selectors.EVENT_READ, 'conn')


def reap():
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if os.WIFSIGNALED(status):
            n = os.WTERMSIG(status)
            try:
                name = signal.Signals(n).name
            except ValueError:
                name = f'SIG{n}'
            result = {'code': None, 'signal': name}
        else:
            result = {'code': os.waitstatus_to_exitcode(status), 'signal': None}
        if conn is not None:
            send(conn, {'exit': result})
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()


accepting = True
while accepting or children:
    for key, _ in sel.select():
        what = key.data
        if what == 'accept':
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            handle(conn)
        elif what == 'signal':
            try:
                os.read(rpipe, 4096)
            except BlockingIOError:
                pass
            reap()
        elif what == 'daemon':
            if not os.read(sys.stdin.fileno(), 4096):
                accepting = False
                sel.unregister(sys.stdin.fileno())
                sel.unregister(srv)
                srv.close()
        elif what == 'conn':
            if key.fileobj.fileno() < 0:
                continue  # closed by reap() earlier in this batch of events: nothing to forget
            # The keeper went away (a keeper never sends more): its child runs on; forget the link.
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b''
            if not data:
                sel.unregister(key.fileobj)
                for pid, c in list(children.items()):
                    if c is key.fileobj:
                        children[pid] = None
                key.fileobj.close()
    reap()
