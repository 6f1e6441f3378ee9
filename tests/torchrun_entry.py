"""``translate`` as torchrun starts it in tests/test_multinode.py, with a fault to inject.

``CRASH_AFTER_STEP=k`` makes rank 1 exit hard (``os._exit``, no cleanup, as a lost node)
after its step ``k``, once: the file ``CRASH_MARKER`` records that it happened, so the
restarted group runs to the end. Each start adds the step it starts from to ``started_<rank>``
in the run directory, which shows that a restart resumed.
"""

from __future__ import annotations

import os
from pathlib import Path

from translate.cli import main
from translate.training.engine import Engine


def _patch() -> None:
    crash_step = int(os.environ.get("CRASH_AFTER_STEP", "0"))
    marker = Path(os.environ.get("CRASH_MARKER", "crashed"))
    fit, save_checkpoint = Engine.fit, Engine.save_checkpoint

    def started(self: Engine) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)  # rank 0 may not have made it yet
        with open(self.run_dir / f"started_{self.ranks.rank}", "a") as f:
            f.write(f"{self.step}\n")
        return fit(self)

    def crashing(self: Engine) -> None:
        save_checkpoint(self)
        if self.ranks.rank == 1 and self.step == crash_step and not marker.exists():
            marker.write_text(str(self.step))
            os._exit(1)

    Engine.fit, Engine.save_checkpoint = started, crashing


if __name__ == "__main__":
    _patch()
    main()
