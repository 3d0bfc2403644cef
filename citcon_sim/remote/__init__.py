"""Commands that drive a running simulator from another process, as the Stripe CLI does:
``citcon-sim pay|fail|expire|cancel``, ``advance``, ``trigger payment``, ``logs``,
``listen`` and ``ipn resend``. Everything goes through the simulator's HTTP surfaces (the
merchant API and ``/_sim/``), so the simulator may run anywhere the CLI can reach: in a
container, on a QA box. ``client`` talks HTTP; ``commands`` is the click layer.
"""
