"""A store of about 1.4 million objects, for timing the command line on it (issue 5).

    python benches/python/million.py PATH            # builds PATH (must not exist)
    /usr/bin/time -f "%e s %M KB" python -m persist check PATH     # and gc, info, dump, ...
    /usr/bin/time -f "%e s %M KB" python -m persist compact PATH PATH2

200,000 entries under the root, each a dict of a str, an int, a float and a list of an int, a
str and a bytes: 400,001 containers and 1,399,801 objects in all (stats() counts every block
value: dicts, lists, strs, bytes, floats; small ints and short strs are inline words).
"""

from __future__ import annotations

import os
import sys
import time

import persist


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    if os.path.exists(path):
        sys.exit(f"{path} exists: give a new path")
    t = time.perf_counter()
    with persist.open(path) as s:
        root = s.root
        n, batch = 200_000, 20_000
        for b in range(0, n, batch):
            root.update(
                {
                    f"k{i:07d}": {
                        "name": f"user {i}",
                        "n": i,
                        "f": i / 7,
                        "tags": [i, str(i) * 3, b"b" * (i % 20)],
                    }
                    for i in range(b, b + batch)
                }
            )
        st = s.stats()
    objects = sum(st["objects"].values())
    print(
        f"built {path} in {time.perf_counter() - t:.1f} s: {objects:,} objects "
        f"{st['objects']}, {st['file_size']:,} bytes"
    )


if __name__ == "__main__":
    main()
