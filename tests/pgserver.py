"""A throwaway PostgreSQL server for the sweep tests: Debian's binaries (package
``postgresql``), a cluster in a temporary folder, listening on 127.0.0.1 at a free port,
trust authentication. As root the server runs as the ``postgres`` user (PostgreSQL
refuses to run as root). ``IRNN_REQUIRE_POSTGRES=1`` (set by .ci/run) turns "not
installed" from a skip into a failure, so CI cannot pass without running these tests.
"""
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def find_bindir():
    for pattern in ('/usr/lib/postgresql/*/bin',):
        for d in sorted(glob.glob(pattern), reverse=True):
            if os.path.exists(os.path.join(d, 'initdb')):
                return d
    initdb = shutil.which('initdb')
    return os.path.dirname(initdb) if initdb else None


def require_bindir():
    bindir = find_bindir()
    if bindir is None:
        message = ('PostgreSQL server binaries not found (Debian: apt-get install postgresql)')
        if os.environ.get('IRNN_REQUIRE_POSTGRES') == '1':
            pytest.fail(message + ' and IRNN_REQUIRE_POSTGRES=1')
        pytest.skip(message)
    return bindir


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database='irnn'):
    """Yields a URL postgresql://postgres@127.0.0.1:PORT/DATABASE of a fresh server."""
    bindir = require_bindir()
    root = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix='irnn-pg-')
    data = os.path.join(base, 'data')
    port = free_port()

    def run(*cmd):
        cmd = [os.path.join(bindir, cmd[0])] + list(cmd[1:])
        if root:
            cmd = ['runuser', '-u', 'postgres', '--'] + cmd
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=120)

    if root:
        shutil.chown(base, 'postgres', 'postgres')
    r = run('initdb', '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync')
    assert r.returncode == 0, r.stdout
    r = run('pg_ctl', '-D', data, '-l', os.path.join(base, 'server.log'), '-w', '-t', '60',
            '-o', '-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off' % (port, base), 'start')
    assert r.returncode == 0, r.stdout + open(os.path.join(base, 'server.log')).read()
    try:
        import psycopg
        deadline = time.time() + 30
        while True:
            try:
                conn = psycopg.connect(host='127.0.0.1', port=port, user='postgres', dbname='postgres',
                                       autocommit=True)
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        conn.execute('CREATE DATABASE %s' % database)
        conn.close()
        yield 'postgresql://postgres@127.0.0.1:%d/%s' % (port, database)
    finally:
        run('pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop')
        shutil.rmtree(base, ignore_errors=True)


def new_database(url, name):
    """A new empty database on the server of ``url``; its URL."""
    import psycopg
    base, _, _ = url.rpartition('/')
    host_port = base.split('@', 1)[1]
    host, port = host_port.split(':')
    with psycopg.connect(host=host, port=int(port), user='postgres', dbname='postgres',
                         autocommit=True) as conn:
        conn.execute('CREATE DATABASE %s' % name)
    return '%s/%s' % (base, name)
