"""The GUI's relay, run by `trackday dr gui` inside a container on the runs' network
(`python3 -c` of this file, in the simulator image: standard library only, Python 3.8+).

It passes every connection on GUI_PORT to one simulation worker's VNC server,
GUI_UPSTREAM:GUI_UPSTREAM_PORT (its address on the runs' overlay network), and nothing else,
so it is no open proxy.
"""

import contextlib
import os
import socket
import threading


def pump(source, target):
    """Copy `source` to `target` until either end closes (trackday/dr_viewer.py's SSH
    forwarding uses it too)."""
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                break
            target.sendall(chunk)
    except OSError:
        pass
    finally:  # shut both down: that wakes the pump reading the other way
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                end.close()


def relay(client, upstream_address):
    try:
        upstream = socket.create_connection(upstream_address, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    pump(upstream, client)


def main():
    upstream = (os.environ["GUI_UPSTREAM"], int(os.environ.get("GUI_UPSTREAM_PORT", "5900")))
    listener = socket.create_server(("0.0.0.0", int(os.environ.get("GUI_PORT", "5900"))))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()


if __name__ == "__main__":
    main()
