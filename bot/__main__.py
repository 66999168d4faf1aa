"""`python -m bot`: runs the chat bot (Discord, Slack or both); `sim`, `generate`, `check` and
`migrate` run the other tools."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "sim":
        from bot.sim.cli import main as sim_main

        return sim_main(argv[1:])
    if command == "check":
        from bot.frontends.launch import check

        return check(argv[1:])
    if command == "migrate":
        from bot.frontends.launch import migrate

        return migrate(argv[1:])
    if command == "generate":
        from bot.frontends.cli import main as cli_main

        return cli_main(argv)
    if command in ("-h", "--help"):
        print(__doc__ or "")
        print("usage: python -m bot [sim|generate|check|migrate] ...")
        return 0
    from bot.frontends.launch import main as bot_main

    return bot_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
