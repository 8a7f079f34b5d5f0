"""`python -m apps.psp_simulator [--host 127.0.0.1] [--port 8090] [--server stdlib|gunicorn]`.

With `--port 0` the OS picks a free port; the first line on stdout always names the URL:
`PSP simulator listening on http://127.0.0.1:54321` (tests read it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.psp_simulator")
    parser.add_argument("--host", default=os.environ.get("PSP_SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PSP_SIMULATOR_PORT", "8090"))
    )
    parser.add_argument(
        "--server",
        choices=("stdlib", "gunicorn"),
        default="stdlib",
        help="stdlib: threaded wsgiref server; gunicorn: one gthread worker (production shape)",
    )
    parser.add_argument("--threads", type=int, default=128, help="gunicorn threads")
    parser.add_argument("--log-level", default=os.environ.get("PSP_SIMULATOR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    os.environ["PSP_SIMULATOR_LOG_LEVEL"] = args.log_level

    if args.server == "gunicorn":
        if args.port == 0:
            parser.error("--port 0 needs --server stdlib")
        print(f"PSP simulator listening on http://{args.host}:{args.port}", flush=True)
        # one worker: the simulator's state lives in that process's memory
        os.execvp(  # noqa: S606 (replace this process with gunicorn, no shell)
            sys.executable,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "apps.psp_simulator.wsgi:app",
                "-b",
                f"{args.host}:{args.port}",
                "-k",
                "gthread",
                "-w",
                "1",
                "--threads",
                str(args.threads),
                "--log-level",
                args.log_level.lower(),
            ],
        )

    from apps.psp_simulator.server import make_server
    from apps.psp_simulator.wsgi import app

    server = make_server(args.host, args.port, app)
    host, port = server.server_address[:2]
    print(f"PSP simulator listening on http://{host}:{port}", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
