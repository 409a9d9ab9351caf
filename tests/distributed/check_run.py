"""check_run.py ONE_NODE.h5 NAME PLANDIR: every check of one distributed run
of check_distributed.sh, in one process (a Python start with h5py costs more
than most runs): the plan's predictions add up (check_plan.py); NAME.h5, the
run with dumps, equals the one-node run bit for bit (compare_bitwise.py); its
NAME.json meets the plan's predictions (check_stats.py) and its
NAME.trace.json agrees with them (check_trace.py); NAME_fused.h5, the run
without dumps, has the one-node output. Prints a line per comparison, the
details of a failing check, and exits 1 when any fails."""
import contextlib
import io
import os
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import check_plan  # noqa: E402
import check_stats  # noqa: E402
import check_trace  # noqa: E402
import compare_bitwise  # noqa: E402


def quietly(check, *args):
    """The check's failures; what it printed is shown only when it fails."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        failures = check(*args)
    if failures:
        print(printed.getvalue(), end="")
    return failures


def main():
    one, name, plan_dir = sys.argv[1:4]
    failures = [f"check_plan: {f}" for f in check_plan.check(plan_dir)]
    # Every tensor of the first file in the second: the one-node run's output
    # and layers in the run with dumps; the fused run's output in the one-node run's.
    for label, first, second in ((name, one, f"{name}.h5"), (f"{name}, fused", f"{name}_fused.h5", one)):
        print(f"{label:<22} ", end="")
        failure = compare_bitwise.compare(first, second)
        if failure:
            print(failure)
            failures.append(failure)
    failures += [f"check_stats: {f}" for f in quietly(check_stats.check, f"{name}.json")]
    failures += [f"check_trace: {f}" for f in quietly(check_trace.check, f"{name}.json", f"{name}.trace.json")]
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
