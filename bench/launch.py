"""Starts one client and reports its exact resource usage.

Usage: python -S -I launch.py RESULT_JSON CLIENT_ARGV...

Why a launcher: on Linux a process's ``ru_maxrss`` starts from the RSS of the
process that forked it (the kernel carries the old address space's high-water
mark across ``exec``). Spawned straight from the benchmark, every client would
inherit the benchmark's own RSS. Spawned from this small interpreter, the floor
is a few MB. Stdlib only, no site packages: it starts in ~15 ms.
"""

import json
import os
import sys
import time


def main() -> int:
    result_path, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with open(result_path, "w") as f:
        json.dump(
            {
                "pid": pid,
                "exitcode": os.waitstatus_to_exitcode(status),
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "maxrss": usage.ru_maxrss * 1024,  # KiB on Linux
            },
            f,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
