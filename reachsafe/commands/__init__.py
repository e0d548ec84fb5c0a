"""One module per ``reachsafe`` subcommand: ``add_arguments(parser)`` and ``run(args) -> exit code``.

Modules here import heavy dependencies inside ``run`` only, so building the parser stays fast.
"""
