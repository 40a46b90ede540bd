"""Without starknet-py: the plugin and the simulator import and work; the provider says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["starknet_py"] = None  # as if the extra were not installed

    import reconcile_paradex
    import reconcile_paradex.testing
    from reconcile_core.errors import UsageError

    assert "starknet_py" not in [name for name, module in sys.modules.items() if module is not None]
    sim = reconcile_paradex.testing.ParadexSimulator(seed=1)
    assert sim.issue_token(sim.accounts[0])
    for attempt in (
        lambda: reconcile_paradex.StarknetKeyTokenProvider(account="0xabc", private_key=0x1234),
        lambda: sim.register_starknet_key(sim.accounts[0], 0x1234),
    ):
        try:
            attempt()
        except UsageError as exc:
            print(exc)
        else:
            raise SystemExit("no UsageError")
    """
)


def test_without_the_extra_only_key_auth_is_unavailable() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all("pip install 'reconcile-trading[starknet]'" in line for line in lines)
