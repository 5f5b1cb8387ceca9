"""Run every benchmark: ``python -m bench`` (or ``python -m bench NAME ...``).

A benchmark is a module ``bench/<name>.py`` with a ``main()`` function. Each
runs in its own process, since each sets Django up for its own database.
"""

import ast
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def benchmarks():
    """Names of the modules in bench/ that define a top-level main()."""
    names = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            names.append(path.stem)
    return names


def run(name):
    print(f"\n=== bench.{name} ===", flush=True)
    started = time.monotonic()
    code = f"import sys; sys.argv = ['bench.{name}']; import bench.{name} as b; b.main()"
    result = subprocess.run([sys.executable, "-c", code], cwd=BENCH_DIR.parent, check=False)
    print(f"=== bench.{name}: exit {result.returncode}, {time.monotonic() - started:.1f} s ===", flush=True)
    return result.returncode


def main(argv=None):
    available = benchmarks()
    wanted = (argv if argv is not None else sys.argv[1:]) or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(
            f"Unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr
        )
        return 2
    failures = [name for name in wanted if run(name) != 0]
    if failures:
        print(f"\nFailed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
