"""``python -m xchannels.asgi APP [options]``: see :mod:`xchannels.asgi`."""

import sys

if __name__ == "__main__":
    try:
        from xchannels.asgi import main

        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the server handles it: nothing was started
        sys.exit(130)
